using System.Text.Json;
using Melious.Gateway.Upstream;

namespace Melious.Gateway.Translation;

/// <summary>What one upstream SSE event, read before the client's response is committed, says about the response.</summary>
internal enum FirstEventKind : byte
{
    /// <summary>Nothing yet: a role-only or empty chunk, a blank event, a named side event. Read on.</summary>
    None,

    /// <summary>The answer has begun (content, reasoning, a tool call, a finish reason, <c>[DONE]</c>), or the event is
    /// something <see cref="OpenAIStreamTranslator"/> will itself report (a chunk that is not JSON).</summary>
    Start,

    /// <summary>The upstream reports an error before any output: the client gets it as an HTTP error.</summary>
    Error,
}

/// <summary>
/// Reads an OpenAI stream's first events as <see cref="OpenAIStreamTranslator"/> will (the same <see cref="ChatChunk"/>
/// parse, the same error tests), to decide whether the upstream failed before its first output. vLLM, SGLang and
/// llama.cpp answer 200 and send an error as the first event when a request fails after the stream began on their
/// side (a prompt longer than the context, an overloaded scheduler); OpenRouter sends a role chunk first. Such an
/// error is mapped like an HTTP error of its status (<see cref="UpstreamErrors.FromStreamError"/>), so that protocol.md
/// §E holds: the status is decided before the stream is committed.
/// </summary>
internal static class FirstEvent
{
    private static readonly byte[] Done = "[DONE]"u8.ToArray();

    /// <summary>Classifies one event; <paramref name="error"/> is set for <see cref="FirstEventKind.Error"/>.</summary>
    public static FirstEventKind Classify(string eventType, ReadOnlySpan<byte> data, List<ToolCallFragment> fragments, UpstreamContext context, out GatewayError? error)
    {
        error = null;
        var trimmed = data.Trim(" \t\r\n"u8);
        if (trimmed.IsEmpty)
        {
            return FirstEventKind.None;
        }

        if (trimmed.SequenceEqual(Done))
        {
            return FirstEventKind.Start;
        }

        ChatChunk chunk;
        try
        {
            chunk = ChatChunk.Parse(trimmed, fragments);
        }
        catch (JsonException)
        {
            switch (eventType)
            {
                case "error":
                    error = UpstreamErrors.FromStreamError(trimmed, context);
                    return FirstEventKind.Error;
                case "message":
                    return FirstEventKind.Start;
                default:
                    return FirstEventKind.None;
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FormatException)
        {
            return FirstEventKind.Start;
        }

        if (chunk.IsError || eventType == "error")
        {
            error = UpstreamErrors.FromStreamError(trimmed, context);
            return FirstEventKind.Error;
        }

        var output = (chunk.Content.IsPresent && !chunk.Content.IsEmpty)
            || (chunk.Reasoning.IsPresent && !chunk.Reasoning.IsEmpty)
            || (chunk.ReasoningContent.IsPresent && !chunk.ReasoningContent.IsEmpty)
            || fragments.Count > 0
            || chunk.FinishReason.IsPresent;
        return output ? FirstEventKind.Start : FirstEventKind.None;
    }
}

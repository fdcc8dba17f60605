using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Gateway.Protocol;

namespace Melious.Gateway.Translation;

/// <summary>
/// Some Anthropic-native upstreams (or proxies in front of them) answer a <c>stream: true</c> Messages request with
/// one <c>application/json</c> <c>message</c>. This rewrites that message as the events a stream would have carried:
/// <c>message_start</c> (the message without content, stop reason and output tokens), per block a
/// <c>content_block_start</c> / deltas / <c>content_block_stop</c>, a <c>message_delta</c> with stop reason, stop
/// sequence, the full usage (and <c>context_management</c>), and <c>message_stop</c>. Every field the gateway does not
/// know is kept; blocks of unknown types are sent whole in their <c>content_block_start</c>, as the API does for
/// <c>redacted_thinking</c> and server tool results.
/// </summary>
internal static class MessageAsEvents
{
    /// <summary>True when <paramref name="root"/> is an error body (<c>{"type":"error",…}</c> or <c>{"error":…}</c>).</summary>
    public static bool IsError(JsonObject root) =>
        root["type"] is JsonValue type && type.GetValueKind() == JsonValueKind.String && type.GetValue<string>() == "error"
        || (root.ContainsKey("error") && root["error"] is not null && !root.ContainsKey("content"));

    /// <summary>True when <paramref name="root"/> is a Messages response (<c>"type":"message"</c> with a content list).</summary>
    public static bool IsMessage(JsonObject root) =>
        root["content"] is JsonArray
        && (root["type"] is null || root["type"] is JsonValue type && type.GetValueKind() == JsonValueKind.String && type.GetValue<string>() == "message");

    /// <summary>The stream events (name, data) for <paramref name="message"/>, in order.</summary>
    public static IEnumerable<(string Event, JsonObject Data)> Convert(JsonObject message)
    {
        var start = message.DeepClone().AsObject();
        start["type"] = "message";
        start["content"] = new JsonArray();
        start["stop_reason"] = null;
        start["stop_sequence"] = null;
        start.Remove("context_management");
        var usage = message["usage"] as JsonObject;
        if (usage is not null)
        {
            var startUsage = usage.DeepClone().AsObject();
            startUsage["output_tokens"] = 0;
            start["usage"] = startUsage;
        }

        yield return ("message_start", new JsonObject { ["type"] = "message_start", ["message"] = start });

        var index = 0;
        foreach (var node in message["content"]!.AsArray())
        {
            if (node is not JsonObject block)
            {
                continue;
            }

            foreach (var e in Block(block, index))
            {
                yield return e;
            }

            yield return ("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = index });
            index++;
        }

        var delta = new JsonObject
        {
            ["type"] = "message_delta",
            ["delta"] = new JsonObject
            {
                ["stop_reason"] = message["stop_reason"]?.DeepClone(),
                ["stop_sequence"] = message["stop_sequence"]?.DeepClone(),
            },
            ["usage"] = usage?.DeepClone() ?? new JsonObject { ["output_tokens"] = 0 },
        };
        if (message["context_management"] is { } contextManagement)
        {
            delta["context_management"] = contextManagement.DeepClone();
        }

        yield return ("message_delta", delta);
        yield return ("message_stop", new JsonObject { ["type"] = "message_stop" });
    }

    private static IEnumerable<(string Event, JsonObject Data)> Block(JsonObject block, int index)
    {
        var type = block["type"] is JsonValue t && t.GetValueKind() == JsonValueKind.String ? t.GetValue<string>() : null;
        var start = block.DeepClone().AsObject();
        var deltas = new List<JsonObject>();
        switch (type)
        {
            case "text" when String(block, "text") is { } text:
                start["text"] = "";
                if (block["citations"] is JsonArray citations)
                {
                    start["citations"] = new JsonArray();
                    foreach (var citation in citations)
                    {
                        deltas.Add(new JsonObject { ["type"] = "citations_delta", ["citation"] = citation?.DeepClone() });
                    }
                }

                if (text.Length > 0)
                {
                    deltas.Add(new JsonObject { ["type"] = "text_delta", ["text"] = text });
                }

                break;
            case "thinking" when String(block, "thinking") is { } thinking:
                start["thinking"] = "";
                start["signature"] = "";
                if (thinking.Length > 0)
                {
                    deltas.Add(new JsonObject { ["type"] = "thinking_delta", ["thinking"] = thinking });
                }

                if (String(block, "signature") is { Length: > 0 } signature)
                {
                    deltas.Add(new JsonObject { ["type"] = "signature_delta", ["signature"] = signature });
                }

                break;
            case "tool_use" or "server_tool_use" or "mcp_tool_use" when block["input"] is JsonObject input:
                start["input"] = new JsonObject();
                deltas.Add(new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = input.ToJsonString(WireJson.NodeOptions) });
                break;
        }

        yield return ("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = index, ["content_block"] = start });
        foreach (var delta in deltas)
        {
            yield return ("content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = index, ["delta"] = delta });
        }
    }

    private static string? String(JsonObject node, string name) =>
        node[name] is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;
}

using System.Text;
using System.Text.Json;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Protocol.OpenAI;
using Melious.Gateway.Routing;
using Melious.Gateway.Translation;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Tests.Support;

/// <summary>Upstream model entries the request cases translate for.</summary>
internal static class TestModels
{
    /// <summary>vLLM serving a Qwen3 coder with a reasoning parser and vision.</summary>
    public static ModelEntry Vllm { get; } = new()
    {
        Id = "qwen3-coder",
        BaseUrl = "http://upstream.test/v1",
        Flavor = "vllm",
        ContextWindow = 131_072,
        MaxOutputTokens = 32_768,
        Vision = true,
        Thinking = true,
    };

    public static ModelEntry VllmTextOnly { get; } = Vllm with { Vision = false };

    /// <summary>protocol.md §D.4 case 18: <c>{context:32768, maxOutput:8192}</c>.</summary>
    public static ModelEntry Small { get; } = Vllm with { ContextWindow = 32_768, MaxOutputTokens = 8_192 };

    public static ModelEntry Ollama { get; } = Vllm with { Id = "qwen3:8b", Flavor = "ollama" };

    public static ModelEntry OpenAIHosted { get; } = Vllm with { Id = "gpt-4.1", Flavor = "openai" };

    public static ModelEntry NoThinking { get; } = Vllm with { Thinking = false };
}

internal static class RequestHarness
{
    private static readonly RequestParser Parser = new(Options.Create(new GatewayOptions()));

    /// <summary>Parses and validates a client body the way the endpoint does; fails the test on a 400.</summary>
    public static MessagesRequest Parse(string json)
    {
        var (request, error) = Parser.Parse(Encoding.UTF8.GetBytes(json), requireMaxTokens: true);
        Assert.True(error is null, $"the gateway rejected the request: {error?.Status} {error?.Message}");
        return request!;
    }

    public static TranslatedRequest Translate(string json, ModelEntry model, long estimatedInputTokens) =>
        OpenAIRequestTranslator.Translate(Parse(json), model, estimatedInputTokens);

    /// <summary>The upstream body bytes exactly as OpenAIForwarder writes them.</summary>
    public static string Serialize(ChatCompletionRequest request)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true }))
        {
            JsonSerializer.Serialize(writer, request, OpenAIJsonContext.Default.ChatCompletionRequest);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}

using Melious.Gateway.Upstream;

namespace Melious.Gateway.Tests.Upstream;

public sealed class UpstreamErrorsTests
{
    private static readonly UpstreamContext Context = new("claude-sonnet-4-5", "qwen3-coder", "sk-upstream-secret", 32_768, 17_000);

    [Theory]
    [InlineData("This model's maximum context length is 32768 tokens and your request has 40000 input tokens (32000 > 32768 - 40000).", "prompt is too long: 40000 tokens > 32768 maximum")]
    [InlineData("request (24071 tokens) exceeds the available context size (8192 tokens), try increasing it", "prompt is too long: 24071 tokens > 8192 maximum")]
    [InlineData("The input (233864 tokens) is longer than the model's context length (202752 tokens).", "prompt is too long: 233864 tokens > 202752 maximum")]
    [InlineData("This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.", "prompt is too long: 130000 tokens > 128000 maximum")]
    [InlineData("This model's maximum context length is 32768 tokens. However, you requested 40000 tokens (39000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.", "prompt is too long: 40000 tokens > 32768 maximum")]
    [InlineData("This model's maximum context length is 32768 tokens. However, you requested 1000 output tokens and your prompt contains at least 32001 input tokens, for a total of at least 33001 tokens. Please reduce the length of the input prompt or the number of requested output tokens.", "prompt is too long: 33001 tokens > 32768 maximum")]
    [InlineData("Requested token count exceeds the model's maximum context length of 16384 tokens. You requested a total of 20000 tokens: 19000 tokens from the input messages and 1000 tokens for the completion. Please reduce the number of tokens in the input messages or the completion to fit within the limit.", "prompt is too long: 20000 tokens > 16384 maximum")]
    public void ContextLengthErrors_BecomePromptIsTooLong(string upstream, string expected)
    {
        var error = UpstreamErrors.FromStatus(400, upstream, null, Context);
        Assert.Equal(400, error.Status);
        Assert.Equal("invalid_request_error", error.Type);
        Assert.Equal(expected, error.Message);
    }

    [Theory]
    [InlineData(429, 429, "rate_limit_error")]
    [InlineData(503, 529, "overloaded_error")]
    [InlineData(502, 529, "overloaded_error")]
    [InlineData(500, 500, "api_error")]
    [InlineData(504, 504, "timeout_error")]
    [InlineData(401, 502, "api_error")]
    [InlineData(403, 502, "api_error")]
    [InlineData(404, 404, "not_found_error")]
    [InlineData(413, 413, "request_too_large")]
    [InlineData(422, 400, "invalid_request_error")]
    public void Statuses_MapToAnthropicErrors(int upstream, int status, string type)
    {
        var error = UpstreamErrors.FromStatus(upstream, "boom", "7", Context);
        Assert.Equal(status, error.Status);
        Assert.Equal(type, error.Type);

        // Only the gateway's own rejected credential is permanent (x-should-retry: false); the rest keep the client's rules.
        Assert.Equal(upstream is 401 or 403 ? false : null, error.ShouldRetry);
    }

    [Fact]
    public void RetryAfter_IsKeptOn429()
    {
        var error = UpstreamErrors.FromStatus(429, null, "7", Context);
        Assert.Equal("7", error.RetryAfter);
    }

    [Fact]
    public void Messages_NeverCarryTheUpstreamKeyOrModel()
    {
        var error = UpstreamErrors.FromStatus(400, "bad key sk-upstream-secret for model qwen3-coder", null, Context);
        Assert.DoesNotContain("sk-upstream-secret", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("qwen3-coder", error.Message, StringComparison.Ordinal);
        Assert.Contains("claude-sonnet-4-5", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(400, "BadRequestError", "This model's maximum context length is 32768 tokens. However, you requested 40000 tokens.", "invalid_request_error", "prompt is too long: 40000 tokens > 32768 maximum")]
    [InlineData(422, null, "The input (40000 tokens) is longer than the model's context length (32768 tokens).", "invalid_request_error", "prompt is too long: 40000 tokens > 32768 maximum")]
    // A 400 that is not about the context, and llama.cpp's code-500 "context size exceeded" while generating: as before.
    [InlineData(400, "BadRequestError", "invalid grammar", "api_error", "invalid grammar")]
    [InlineData(500, "server_error", "Context size has been exceeded.", "api_error", "Context size has been exceeded.")]
    [InlineData(503, null, "busy", "overloaded_error", "busy")]
    [InlineData(429, null, "slow down", "rate_limit_error", "slow down")]
    public void MidStreamErrors_MapByCode_AContextLength400IsPromptIsTooLong(long code, string? type, string message, string expectedType, string expectedMessage)
    {
        Assert.Equal((expectedType, expectedMessage), UpstreamErrors.ForMidStream(code, type, message, Context));
    }

    [Fact]
    public void MidStreamContextLengthError_WithoutARequestContext_UsesTheMessagesNumbersOnly()
    {
        Assert.Equal(("invalid_request_error", "prompt is too long: 40000 tokens > 32768 maximum"), UpstreamErrors.ForMidStream(400, null, "maximum context length is 32768 tokens. However, you requested 40000 tokens", null));
        Assert.Equal(("api_error", "the request exceeds the available context size"), UpstreamErrors.ForMidStream(400, null, "the request exceeds the available context size", null));
    }

    [Theory]
    [InlineData("""{"error":{"message":"nested","type":"x"}}""", "nested")]
    [InlineData("""{"error":"flat"}""", "flat")]
    [InlineData("""{"object":"error","message":"vllm-old","type":"BadRequestError"}""", "vllm-old")]
    [InlineData("""{"detail":"fastapi"}""", "fastapi")]
    [InlineData("plain text failure", "plain text failure")]
    [InlineData("<html><body>502 Bad Gateway</body></html>", null)]
    public void ExtractMessage_ReadsCommonErrorBodies(string body, string? expected) =>
        Assert.Equal(expected, UpstreamErrors.ExtractMessage(System.Text.Encoding.UTF8.GetBytes(body)));
}

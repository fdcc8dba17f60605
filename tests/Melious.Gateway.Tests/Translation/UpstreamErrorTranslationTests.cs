using System.Text;
using Melious.Gateway.Upstream;

namespace Melious.Gateway.Tests.Translation;

/// <summary>
/// protocol.md §D.4 case 38 and §C.7: upstream HTTP errors before streaming become Anthropic errors (status,
/// type, message, retry-after), decided before any SSE byte is written.
/// </summary>
public sealed class UpstreamErrorTranslationTests
{
    private static readonly UpstreamContext Context = new("claude-sonnet-4-5-20250929", "qwen3-coder", "sk-upstream-secret", 32_768, 40_000);

    [Fact]
    public void Rate_limit_keeps_retry_after()
    {
        var error = UpstreamErrors.FromStatus(429, "Too many requests", "7", Context);
        Assert.Equal((429, "rate_limit_error"), (error.Status, error.Type));
        Assert.Equal("7", error.RetryAfter);
    }

    [Fact]
    public void Payment_required_is_a_billing_error_not_a_retryable_500()
    {
        var error = UpstreamErrors.FromStatus(402, "Insufficient credits", null, Context);
        Assert.Equal((402, "billing_error"), (error.Status, error.Type));
        Assert.Equal("Insufficient credits", error.Message);
    }

    [Theory]
    [InlineData(502)]
    [InlineData(503)]
    public void Unavailable_becomes_overloaded_529(int status)
    {
        var error = UpstreamErrors.FromStatus(status, null, null, Context);
        Assert.Equal((529, "overloaded_error"), (error.Status, error.Type));
    }

    [Theory]
    [InlineData("This model's maximum context length is 32768 tokens. However, your request has 40000 input tokens. Please reduce the length of the input messages.")]
    [InlineData("This model's maximum context length is 32768 tokens and your request has 40000 input tokens (32000 > 32768 - 40000).")]
    [InlineData("request (40000 tokens) exceeds the available context size (32768 tokens), try increasing it")]
    public void Context_overflow_uses_anthropic_wording(string upstreamMessage)
    {
        var error = UpstreamErrors.FromStatus(400, upstreamMessage, null, Context);
        Assert.Equal((400, "invalid_request_error"), (error.Status, error.Type));
        Assert.Equal("prompt is too long: 40000 tokens > 32768 maximum", error.Message);
    }

    [Fact]
    public void The_upstream_model_and_key_never_reach_the_client()
    {
        var error = UpstreamErrors.FromStatus(400, "model qwen3-coder rejected key sk-upstream-secret", null, Context);
        Assert.DoesNotContain("qwen3-coder", error.Message);
        Assert.DoesNotContain("sk-upstream-secret", error.Message);
        Assert.Equal((400, "invalid_request_error"), (error.Status, error.Type));
    }

    [Fact]
    public void Upstream_auth_failure_is_the_gateways_problem_not_the_clients()
    {
        var error = UpstreamErrors.FromStatus(401, "invalid api key", null, Context);
        Assert.NotEqual(401, error.Status);
        Assert.Equal("api_error", error.Type);
    }

    [Theory]
    [InlineData("""{"error":{"message":"CUDA OOM","type":"InternalServerError","code":500}}""", "CUDA OOM")]
    [InlineData("""{"object":"error","message":"old vLLM","type":"BadRequestError","code":400}""", "old vLLM")]
    [InlineData("""{"detail":"FastAPI says no"}""", "FastAPI says no")]
    [InlineData("plain text failure", "plain text failure")]
    [InlineData("<html><body>502 Bad Gateway</body></html>", null)]
    public void Extracts_the_message_from_the_usual_error_bodies(string body, string? expected)
    {
        Assert.Equal(expected, UpstreamErrors.ExtractMessage(Encoding.UTF8.GetBytes(body)));
    }

    [Theory]
    [InlineData(429, null, "rate_limit_error")]
    [InlineData(0, "rate_limit_exceeded", "rate_limit_error")]
    [InlineData(503, null, "overloaded_error")]
    [InlineData(500, "InternalServerError", "api_error")]
    public void Mid_stream_error_types(long code, string? type, string expected)
    {
        Assert.Equal(expected, UpstreamErrors.TypeForMidStream(code, type));
    }
}

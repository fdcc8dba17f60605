using System.Text.Json.Nodes;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Upstream;

namespace Melious.Gateway.Tests.Upstream;

/// <summary>An error body an Anthropic-native upstream sends with a 2xx status becomes the error that status would.</summary>
public sealed class AnthropicErrorBodyTests
{
    private static readonly UpstreamContext Context = new("claude-sonnet-4-5", "acme/coder-70b", "sk-upstream-secret", 32768, 1000);

    [Theory]
    [InlineData("""{"type":"error","error":{"type":"overloaded_error","message":"acme/coder-70b is overloaded"}}""", 529, "overloaded_error", "claude-sonnet-4-5 is overloaded")]
    [InlineData("""{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}""", 429, "rate_limit_error", "slow down")]
    [InlineData("""{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 40000 tokens > 32768 maximum"}}""", 400, "invalid_request_error", "prompt is too long: ")]
    [InlineData("""{"type":"error","error":{"type":"authentication_error","message":"bad key sk-upstream-secret"}}""", 502, "api_error", "gateway's credentials")]
    [InlineData("""{"type":"error","error":{"type":"not_found_error","message":"no such model"}}""", 404, "not_found_error", "claude-sonnet-4-5")]
    [InlineData("""{"type":"error","error":{"type":"billing_error","message":"Your credit balance is too low"}}""", 402, "billing_error", "credit balance")]
    [InlineData("""{"error":{"message":"Insufficient credits","code":402}}""", 402, "billing_error", "Insufficient credits")]
    [InlineData("""{"error":{"message":"Rate limit reached","type":"requests","code":429}}""", 429, "rate_limit_error", "Rate limit reached")]
    [InlineData("""{"error":{"message":"busy","type":"server_error","code":"503"}}""", 529, "overloaded_error", "busy")]
    [InlineData("""{"error":{"message":"model is overloaded","type":"server_error"}}""", 500, "api_error", "model is overloaded")]
    [InlineData("""{"error":"Unauthorized"}""", 500, "api_error", "Unauthorized")]
    public void Maps_like_the_status_it_stands_for(string body, int status, string type, string messageContains)
    {
        var error = AnthropicForwarder.UpstreamErrorBody(JsonNode.Parse(body)!.AsObject(), Context);

        Assert.Equal(status, error.Status);
        Assert.Equal(type, error.Type);
        Assert.Contains(messageContains, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-upstream-secret", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("acme/coder-70b", error.Message, StringComparison.Ordinal);
    }
}

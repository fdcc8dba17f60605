using System.Net;
using System.Text.Json;

namespace Melious.Gateway.FunctionalTests.Http;

internal static class ErrorAssert
{
    /// <summary>Asserts an Anthropic-shaped error: status, <c>{"type":"error","error":{type,message}}</c>, request-id header.</summary>
    public static async Task<JsonElement> IsErrorAsync(HttpResponseMessage response, HttpStatusCode status, string type, string? messageContains = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.True(response.Headers.TryGetValues("request-id", out var ids), "request-id header missing");
        var json = JsonDocument.Parse(text).RootElement;
        Assert.Equal("error", json.GetProperty("type").GetString());
        Assert.Equal(type, json.GetProperty("error").GetProperty("type").GetString());
        var message = json.GetProperty("error").GetProperty("message").GetString()!;
        Assert.False(string.IsNullOrWhiteSpace(message));
        Assert.Equal(ids!.Single(), json.GetProperty("request_id").GetString());
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", text, StringComparison.Ordinal);
        if (messageContains is not null)
        {
            Assert.Contains(messageContains, message, StringComparison.OrdinalIgnoreCase);
        }

        return json;
    }
}

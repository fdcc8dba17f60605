using System.Net;
using System.Text;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests;

public sealed class SmokeTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task NonStreamingRequest_ReturnsTranslatedMessage()
    {
        await using var upstream = await ScriptedUpstream.OpenAIAsync(Sse.TextAnswer(["Hel", "lo"]));
        await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, upstream.OpenAIBaseUrl);
        var key = await gateway.CreateKeyAsync();
        using var client = gateway.Client(key);
        var body = """{"model":"claude-sonnet-4-5-20250929","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}""";
        var response = await client.PostAsync("/v1/messages", new StringContent(body, Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(text);
        Assert.Equal("claude-sonnet-4-5-20250929", json.RootElement.GetProperty("model").GetString());
        Assert.Equal("Hello", json.RootElement.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("secondary-model", upstream.Last.Json.GetProperty("model").GetString());
    }
}

using System.Net;
using System.Text;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Http;

public abstract class EndpointTests(IGatewayTarget target)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("HEAD")]
    [InlineData("GET")]
    public async Task Root_Answers200_ForClaudeCodePreconnect(string method)
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        using var anonymous = new HttpClient { BaseAddress = new Uri(s.Gateway.BaseUrl) };
        var response = await anonymous.SendAsync(new HttpRequestMessage(new HttpMethod(method), "/"), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.Contains("request-id"));
    }

    [Theory]
    [InlineData("HEAD")]
    [InlineData("GET")]
    public async Task ApiHello_Answers200_ForClaudeCodeWarmUp(string method)
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        using var anonymous = new HttpClient { BaseAddress = new Uri(s.Gateway.BaseUrl) };
        var response = await anonymous.SendAsync(new HttpRequestMessage(new HttpMethod(method), "/api/hello"), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.Contains("request-id"));
        Assert.Empty(s.Upstream.Requests);
        var post = await anonymous.PostAsync("/api/hello", new StringContent("{}", Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
    }

    [Fact]
    public async Task DoubledV1_Gets404_ThatExplainsTheBaseUrl()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var response = await s.PostAsync(Scenario.Body(), "/v1/v1/messages?beta=true");
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.NotFound, "not_found_error", "must not end in /v1");
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task UnknownRoute_Gets404_AndWrongMethod_Gets405()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        await ErrorAssert.IsErrorAsync(await s.Client.GetAsync("/v1/complete", Ct), HttpStatusCode.NotFound, "not_found_error");
        var wrongMethod = await s.Client.GetAsync("/v1/messages", Ct);
        await ErrorAssert.IsErrorAsync(wrongMethod, HttpStatusCode.MethodNotAllowed, "invalid_request_error", "POST");
        Assert.Contains("POST", wrongMethod.Content.Headers.Allow);
        await ErrorAssert.IsErrorAsync(await s.Client.DeleteAsync("/v1/models", Ct), HttpStatusCode.MethodNotAllowed, "invalid_request_error");
    }

    [Fact]
    public async Task Telemetry_IsAcceptedQuietly()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var response = await s.Client.PostAsync("/api/event_logging/batch", new StringContent("{}", Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
    }

    [Fact]
    public async Task CountTokens_IsLocal_AndCountsSystemAndTools()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var bare = Scenario.Body();
        var rich = Scenario.Body();
        rich["system"] = "You are a meticulous assistant. " + string.Concat(Enumerable.Repeat("Follow the house style. ", 50));
        rich["tools"] = JsonNode("""[{"name":"Read","description":"Reads a file from disk","input_schema":{"type":"object","properties":{"file_path":{"type":"string","description":"Absolute path"}},"required":["file_path"]}}]""");
        rich.Remove("max_tokens");

        var a = await s.PostAsync(bare, "/v1/messages/count_tokens?beta=true");
        var b = await s.PostAsync(rich, "/v1/messages/count_tokens?beta=true");
        Assert.Equal(HttpStatusCode.OK, a.StatusCode);
        var small = (await s.JsonAsync(a)).GetProperty("input_tokens").GetInt64();
        var large = (await s.JsonAsync(b)).GetProperty("input_tokens").GetInt64();
        Assert.InRange(small, 5, 30);
        Assert.True(large > small + 200, $"system and tools must count: {small} vs {large}");
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task CountTokens_RequiresAuth_AndValidates()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        using var anonymous = new HttpClient { BaseAddress = new Uri(s.Gateway.BaseUrl) };
        var unauthenticated = await anonymous.PostAsync("/v1/messages/count_tokens", new StringContent(Scenario.Body().ToJsonString(), Encoding.UTF8, "application/json"), Ct);
        await ErrorAssert.IsErrorAsync(unauthenticated, HttpStatusCode.Unauthorized, "authentication_error");
        await ErrorAssert.IsErrorAsync(await s.PostAsync("""{"model":"x"}""", "/v1/messages/count_tokens"), HttpStatusCode.BadRequest, "invalid_request_error", "messages");
    }

    [Fact]
    public async Task Models_ListsClaudeTierIdsFirst_InAnthropicShape()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var json = await s.JsonAsync(await s.Client.GetAsync("/v1/models?limit=1000", Ct));
        var ids = json.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(["claude-opus", "claude-sonnet", "claude-haiku"], ids.Take(3));
        Assert.Contains("main-model", ids);
        Assert.False(json.GetProperty("has_more").GetBoolean());
        Assert.Equal(ids[0], json.GetProperty("first_id").GetString());
        Assert.Equal(ids[^1], json.GetProperty("last_id").GetString());
        var first = json.GetProperty("data")[0];
        Assert.Equal("model", first.GetProperty("type").GetString());
        Assert.EndsWith("Z", first.GetProperty("created_at").GetString(), StringComparison.Ordinal);
        Assert.False(first.TryGetProperty("_meta", out _));
    }

    [Fact]
    public async Task Models_IncludeMeta_AndPagination()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var json = await s.JsonAsync(await s.Client.GetAsync("/v1/models?include_meta=true&limit=2", Ct));
        Assert.Equal(2, json.GetProperty("data").GetArrayLength());
        Assert.True(json.GetProperty("has_more").GetBoolean());
        var meta = json.GetProperty("data")[0].GetProperty("_meta");
        Assert.True(meta.GetProperty("capabilities").TryGetProperty("tool_use", out _));
        Assert.True(meta.GetProperty("capabilities").TryGetProperty("vision", out _));
        Assert.True(meta.GetProperty("capabilities").TryGetProperty("thinking", out _));
        Assert.True(meta.GetProperty("context_window").GetInt64() > 0);
        Assert.True(meta.GetProperty("max_output_tokens").GetInt64() > 0);

        var next = await s.JsonAsync(await s.Client.GetAsync($"/v1/models?limit=2&after_id={json.GetProperty("last_id").GetString()}", Ct));
        Assert.Equal("claude-haiku", next.GetProperty("data")[0].GetProperty("id").GetString());
    }

    [Fact]
    public async Task Models_PageBackwardWithBeforeId_WhileHasMore_ReachesTheFirstModel()
    {
        // The SDKs page backward with before_id = first_id while has_more is true (has_more: "more results in the
        // requested page direction").
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var all = (await s.JsonAsync(await s.Client.GetAsync("/v1/models?limit=1000", Ct))).GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()!).ToList();
        Assert.True(all.Count > 5, string.Join(", ", all));

        var seen = new List<string>();
        var cursor = all[^1];
        for (var pages = 0; ; pages++)
        {
            Assert.True(pages < all.Count, "backward paging does not end");
            var page = await s.JsonAsync(await s.Client.GetAsync($"/v1/models?limit=2&before_id={Uri.EscapeDataString(cursor)}", Ct));
            var ids = page.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()!).ToList();
            Assert.InRange(ids.Count, 1, 2);
            Assert.Equal(ids[0], page.GetProperty("first_id").GetString());
            Assert.Equal(ids[^1], page.GetProperty("last_id").GetString());
            seen.InsertRange(0, ids);
            if (!page.GetProperty("has_more").GetBoolean())
            {
                break;
            }

            cursor = ids[0];
        }

        // Every model before the cursor, once and in order.
        Assert.Equal(all[..^1], seen);
    }

    [Fact]
    public async Task ModelById_KnownTierAndUnknown()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var known = await s.JsonAsync(await s.Client.GetAsync("/v1/models/claude-opus", Ct));
        Assert.Equal("claude-opus", known.GetProperty("id").GetString());
        var dated = await s.Client.GetAsync("/v1/models/claude-sonnet-4-5-20250929", Ct);
        Assert.Equal(HttpStatusCode.OK, dated.StatusCode);
        await ErrorAssert.IsErrorAsync(await s.Client.GetAsync("/v1/models/no-such-model", Ct), HttpStatusCode.NotFound, "not_found_error");
    }

    [Fact]
    public async Task EveryResponse_CarriesARequestId()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var ok = await s.PostAsync(Scenario.Body());
        var bad = await s.PostAsync("{");
        var stream = await s.PostAsync(Scenario.Body(stream: true));
        foreach (var response in new[] { ok, bad, stream })
        {
            Assert.Matches("^[0-9a-f]{32}$", response.Headers.GetValues("request-id").Single());
        }
    }

    private static System.Text.Json.Nodes.JsonNode JsonNode(string json) => System.Text.Json.Nodes.JsonNode.Parse(json)!;
}

/// <summary>The tests of <see cref="EndpointTests"/> against the self-host.</summary>
public sealed class EndpointTestsOnSelfHost(AzuriteFixture azurite) : EndpointTests(azurite);

/// <summary>The tests of <see cref="EndpointTests"/> against the Functions app under the real Functions host.</summary>
[Collection(FunctionsHostCollection.Name)]
public sealed class EndpointTestsOnFunctionsHost(FunctionsHostFixture host) : EndpointTests(host);

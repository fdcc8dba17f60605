using System.Net;
using System.Text;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>Client mistakes get a 4xx Anthropic error naming the problem; never a 500, never an upstream call.</summary>
public abstract class BadInputTests(IGatewayTarget target)
{
    public static TheoryData<string, string> Invalid => new()
    {
        { "{", "invalid request body" },
        { "", "invalid request body" },
        { "null", "expected a JSON object" },
        { "[1,2]", "invalid request body" },
        { """{"model":123,"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""", "model" },
        { """{"model":"m","max_tokens":"10","messages":[{"role":"user","content":"hi"}]}""", "max_tokens" },
        { """{"model":"m","max_tokens":10.5,"messages":[{"role":"user","content":"hi"}]}""", "max_tokens" },
        { """{"model":"m","max_tokens":10,"messages":"hi"}""", "messages" },
        { """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":42}]}""", "content" },
        { """{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""", "model: Field required" },
        { """{"model":"m","messages":[{"role":"user","content":"hi"}]}""", "max_tokens: Field required" },
        { """{"model":"m","max_tokens":10}""", "messages: Field required" },
        { """{"model":"m","max_tokens":10,"messages":[]}""", "at least one message" },
        { """{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"hi"}]}""", "max_tokens" },
        { """{"model":"m","max_tokens":10,"messages":[{"role":"robot","content":"hi"}]}""", "messages.0.role" },
        { """{"model":"m","max_tokens":10,"messages":[{"role":"user"}]}""", "messages.0.content: Field required" },
        { """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"not base64!!"}}]}]}""", "messages.0.content.0.source.data: invalid base64" },
        { """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text"}]}]}""", "messages.0.content.0.text" },
        { """{"model":"m","max_tokens":10,"temperature":7,"messages":[{"role":"user","content":"hi"}]}""", "temperature" },
        { """{"model":"m","max_tokens":10,"tools":[{"name":"x"}],"messages":[{"role":"user","content":"hi"}]}""", "tools.0.input_schema" },
        { """{"model":"m","max_tokens":10,"tools":[{"input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}""", "tools.0.name: Field required" },
        { """{"model":"m","max_tokens":10,"tools":[{"type":"custom","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}""", "tools.0.name: Field required" },
        { """{"model":"m","max_tokens":10,"tools":[{"type":"mcp_toolset"}],"messages":[{"role":"user","content":"hi"}]}""", "tools.0.mcp_server_name: Field required" },
        { """{"model":"m","max_tokens":10,"tool_choice":{"type":"sometimes"},"messages":[{"role":"user","content":"hi"}]}""", "tool_choice" },
        { """{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"\uDC00"}]}""", "invalid request body" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public async Task InvalidRequest_Gets400NamingTheProblem(string body, string message)
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var response = await s.PostAsync(body);
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", message);
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task InvalidUtf8_Gets400()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var bytes = Encoding.UTF8.GetBytes("""{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"AB"}]}""");
        bytes[Array.IndexOf(bytes, (byte)'A')] = 0xC3;
        bytes[Array.IndexOf(bytes, (byte)'B')] = 0x28;
        var response = await s.Client.PostAsync("/v1/messages", new ByteArrayContent(bytes), TestContext.Current.CancellationToken);
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error");
    }

    [Fact]
    public async Task BodyOverTheLimit_Gets413()
    {
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["x"])), new Dictionary<string, string?> { ["Melious:Limits:MaxBodyBytes"] = "4096" });
        var big = Scenario.Body(prompt: new string('a', 10_000));
        await ErrorAssert.IsErrorAsync(await s.PostAsync(big), HttpStatusCode.RequestEntityTooLarge, "request_too_large");

        // Without a Content-Length (chunked), the limit holds while reading.
        var chunked = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big.ToJsonString()))) };
        chunked.Headers.TransferEncodingChunked = true;
        await ErrorAssert.IsErrorAsync(await s.Client.SendAsync(chunked, TestContext.Current.CancellationToken), HttpStatusCode.RequestEntityTooLarge, "request_too_large");
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task DefaultLimit_Is32MB()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["x"]));
        var response = await s.PostAsync(Scenario.Body(prompt: new string('a', 33 * 1024 * 1024)));
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, "request_too_large");
    }

    [Fact]
    public async Task DeepNesting_BeyondTheConfiguredDepth_Gets400()
    {
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["x"])), new Dictionary<string, string?> { ["Melious:Limits:MaxJsonDepth"] = "16" });
        var nested = string.Concat(Enumerable.Repeat("{\"a\":", 40)) + "1" + new string('}', 40);
        var body = """{"model":"m","max_tokens":10,"metadata":""" + nested + ""","messages":[{"role":"user","content":"hi"}]}""";
        await ErrorAssert.IsErrorAsync(await s.PostAsync(body), HttpStatusCode.BadRequest, "invalid_request_error");
    }

    [Fact]
    public async Task TooManyMessages_BeyondTheConfiguredLimit_Gets400()
    {
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["x"])), new Dictionary<string, string?> { ["Melious:Limits:MaxMessages"] = "10" });
        var body = Scenario.Body();
        var messages = body["messages"]!.AsArray();
        for (var i = 0; i < 20; i++)
        {
            messages.Add(new System.Text.Json.Nodes.JsonObject { ["role"] = i % 2 == 0 ? "assistant" : "user", ["content"] = "x" });
        }

        await ErrorAssert.IsErrorAsync(await s.PostAsync(body), HttpStatusCode.BadRequest, "invalid_request_error", "at most 10 messages");
    }

    [Fact]
    public async Task UnknownFieldsAndBlockTypes_AreTolerated()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        var body = """
            {"model":"claude-opus-4-8","max_tokens":64000,"stream":false,"container":"x","context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},
             "output_config":{"effort":"high"},"thinking":{"type":"adaptive","display":"omitted"},"service_tier":"auto","inference_geo":"eu","brand_new_field":{"a":[1,2]},
             "messages":[
               {"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","ttl":"1h"}},{"type":"future_block","foo":1}]},
               {"role":"assistant","content":[{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}},{"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]},{"type":"text","text":"done"}]},
               {"role":"user","content":"go on"}]}
            """;
        var response = await s.PostAsync(body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task EnormousMaxTokens_IsClampedNotRejected()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        var response = await s.PostAsync(Scenario.Body(maxTokens: int.MaxValue));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(32_768, s.Upstream.Last.Json.GetProperty("max_tokens").GetInt64());
    }

    [Fact]
    public async Task MaxTokensZero_IsAnsweredLocally()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        var json = await s.JsonAsync(await s.PostAsync(Scenario.Body(maxTokens: 0)));
        Assert.Equal("max_tokens", json.GetProperty("stop_reason").GetString());
        Assert.Equal(0, json.GetProperty("content").GetArrayLength());
        Assert.Empty(s.Upstream.Requests);
    }
}

/// <summary>The tests of <see cref="BadInputTests"/> against the self-host.</summary>
public sealed class BadInputTestsOnSelfHost(AzuriteFixture azurite) : BadInputTests(azurite);

/// <summary>The tests of <see cref="BadInputTests"/> against the Functions app under the real Functions host.</summary>
[Collection(FunctionsHostCollection.Name)]
public sealed class BadInputTestsOnFunctionsHost(FunctionsHostFixture host) : BadInputTests(host);

using System.Net;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>An upstream that speaks Anthropic Messages natively: only the model name changes on the way in and out.</summary>
public sealed class AnthropicPassthroughTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private const string Stream = """
        event: message_start
        data: {"type":"message_start","message":{"id":"msg_up1","type":"message","role":"assistant","model":"secondary-model","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":321,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":1},"vendor_field":"kept"}}

        event: content_block_start
        data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

        event: vendor_event
        data: {"type":"vendor_event","anything":[1,2,3]}

        event: content_block_delta
        data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello from upstream"}}

        event: content_block_stop
        data: {"type":"content_block_stop","index":0}

        event: message_delta
        data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":7},"context_management":{"applied_edits":[]}}

        event: message_stop
        data: {"type":"message_stop"}


        """;

    private static Task WriteStream(UpstreamRequest _, HttpContext context) => Sse.WriteRawAsync(context, Stream.Replace("\r\n", "\n", StringComparison.Ordinal));

    [Fact]
    public async Task Stream_PassesThrough_WithOnlyTheModelRewritten()
    {
        await using var s = await Scenario.StartAsync(azurite, WriteStream, anthropicUpstream: true);
        var body = Scenario.Body(stream: true);
        body["unknown_top_level"] = JsonNodeParse("""{"x":[1,{"y":2}]}""");
        body["thinking"] = JsonNodeParse("""{"type":"enabled","budget_tokens":2048}""");
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages?beta=true") { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        request.Headers.Add("anthropic-beta", "interleaved-thinking-2025-05-14");
        request.Headers.Add("x-secret-tenant", "do-not-forward");
        var response = await s.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        var events = await SseEvents.ReadAllAsync(response, Ct);

        // Upstream got the original body with only model replaced, at /v1/messages, with its own credentials.
        var sent = s.Upstream.Last;
        Assert.Equal("/v1/messages", sent.Path);
        Assert.Equal("secondary-model", sent.Json.GetProperty("model").GetString());
        Assert.Equal(2, sent.Json.GetProperty("unknown_top_level").GetProperty("x")[1].GetProperty("y").GetInt32());
        Assert.Equal(2048, sent.Json.GetProperty("thinking").GetProperty("budget_tokens").GetInt32());
        Assert.Equal("interleaved-thinking-2025-05-14", sent.Headers["anthropic-beta"]);
        Assert.Equal("2023-06-01", sent.Headers["anthropic-version"]);
        Assert.False(sent.Headers.ContainsKey("x-secret-tenant"));
        Assert.False(sent.Headers.TryGetValue("x-api-key", out var forwardedKey) && forwardedKey == s.Key);

        // Client got every event, unknown ones included, with the model restored and costs added.
        Assert.Equal(["message_start", "content_block_start", "vendor_event", "content_block_delta", "content_block_stop", "message_delta", "message_stop"], events.Select(e => e.Name));
        var message = events[0].Data.GetProperty("message");
        Assert.Equal("claude-sonnet-4-5-20250929", message.GetProperty("model").GetString());
        Assert.Equal("kept", message.GetProperty("vendor_field").GetString());
        Assert.Equal("msg_up1", message.GetProperty("id").GetString());
        Assert.Equal("Hello from upstream", SseEvents.Text(events));
        var delta = events[5].Data;
        Assert.True(delta.TryGetProperty("context_management", out _));
        Assert.Equal(7, delta.GetProperty("usage").GetProperty("output_tokens").GetInt64());
        Assert.True(delta.TryGetProperty("billing_cost", out _));
        Assert.True(delta.TryGetProperty("environment_impact", out _));
        Assert.DoesNotContain("secondary-model", string.Join("", events.Select(e => e.Data.ToString())), StringComparison.Ordinal);
    }

    [Fact]
    public async Task NonStream_PassesThrough_WithModelRestoredAndCostsAdded()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context,
            """{"id":"msg_up2","type":"message","role":"assistant","model":"secondary-model","content":[{"type":"text","text":"plain"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":50,"output_tokens":3},"extra":{"a":1}}""",
            "application/json"), anthropicUpstream: true);
        var json = await s.JsonAsync(await s.PostAsync(Scenario.Body()));
        Assert.Equal("claude-sonnet-4-5-20250929", json.GetProperty("model").GetString());
        Assert.Equal("plain", json.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(1, json.GetProperty("extra").GetProperty("a").GetInt32());
        Assert.Equal(3, json.GetProperty("usage").GetProperty("output_tokens").GetInt64());
        Assert.True(json.TryGetProperty("billing_cost", out _));
        Assert.True(json.TryGetProperty("environment_impact", out _));
    }

    [Fact]
    public async Task UpstreamError_IsMappedLikeAnyOther()
    {
        await using var s = await Scenario.StartAsync(azurite, async (_, context) =>
        {
            context.Response.StatusCode = 529;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}""", context.RequestAborted);
        }, anthropicUpstream: true);
        await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body(stream: true)), (HttpStatusCode)529, "overloaded_error", "Overloaded");
    }

    [Fact]
    public async Task StreamWithoutMessageStop_BecomesAnError()
    {
        var truncated = Stream[..Stream.IndexOf("event: content_block_stop", StringComparison.Ordinal)];
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context, truncated.Replace("\r\n", "\n", StringComparison.Ordinal)), anthropicUpstream: true);
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(Scenario.Body(stream: true)), Ct);
        Assert.Equal("error", events[^1].Name);
        Assert.DoesNotContain(events, e => e.Name == "message_stop");
    }

    [Fact]
    public async Task UpstreamSilentBeforeMessageStart_NoPingComesFirst()
    {
        await using var s = await Scenario.StartAsync(azurite, async (_, context) =>
        {
            // Headers go out at once; the upstream is then silent (prefill) before its message_start.
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync(context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await Task.Delay(700, context.RequestAborted);
            var stream = Stream.Replace("\r\n", "\n", StringComparison.Ordinal)
                .Replace("event: vendor_event\ndata: {\"type\":\"vendor_event\",\"anything\":[1,2,3]}\n\n", "", StringComparison.Ordinal);
            await context.Response.WriteAsync(stream, context.RequestAborted);
        }, new Dictionary<string, string?> { ["Melious:Streaming:PingInterval"] = "00:00:00.100" }, anthropicUpstream: true);
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(Scenario.Body(stream: true)), Ct);
        SseEvents.AssertGrammar(events);
        Assert.Equal("Hello from upstream", SseEvents.Text(events));
    }

    [Theory]
    [InlineData("""{"type":"message_delta","delta":{"stop_reason":5}}""")]
    [InlineData("""{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}""")]
    public async Task UnreadableMessageDelta_EndsWithAnErrorEvent(string delta)
    {
        var stream = Stream.Replace("\r\n", "\n", StringComparison.Ordinal);
        var start = stream.IndexOf("event: message_delta", StringComparison.Ordinal);
        var broken = stream[..start] + "event: message_delta\ndata: " + delta + "\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context, broken), anthropicUpstream: true);
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(Scenario.Body(stream: true)), Ct);

        Assert.Equal("message_start", events[0].Name);
        Assert.Equal("Hello from upstream", SseEvents.Text(events));
        Assert.Equal("error", events[^1].Name);
        Assert.Equal("api_error", events[^1].Data.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain(events, e => e.Name is "message_delta" or "message_stop");
        Assert.Contains("could not read", s.Gateway.Logs.AllText, StringComparison.Ordinal);
        Assert.DoesNotContain("failed inside the gateway", s.Gateway.Logs.AllText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GatewayThinkingSignatures_AreNotForwarded_RealOnesAre()
    {
        // A conversation that went through an OpenAI model first: Claude Code echoes the gateway's thinking blocks.
        await using var s = await Scenario.StartAsync(azurite, WriteStream, anthropicUpstream: true);
        var body = Scenario.Body(stream: true);
        body["thinking"] = JsonNodeParse("""{"type":"enabled","budget_tokens":2048}""");
        body["messages"] = JsonNodeParse("""
            [
              {"role":"user","content":"read a"},
              {"role":"assistant","content":[{"type":"thinking","thinking":"open model plan","signature":"melious.0123456789abcdefghijABCDEFGHIJ0123"},{"type":"text","text":"Reading."}]},
              {"role":"user","content":"and b"},
              {"role":"assistant","content":[{"type":"thinking","thinking":"gateway only","signature":"melious.zyxwvutsrqponmlkjiZYXWVUTSRQPONMLK"}]},
              {"role":"user","content":"then?"},
              {"role":"assistant","content":[{"type":"thinking","thinking":"real plan","signature":"EqQBCkYIBxgCKkB"},{"type":"tool_use","id":"toolu_01","name":"Read","input":{"file_path":"b"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"ok"}]}
            ]
            """);
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(body), Ct);
        Assert.Equal("message_stop", events[^1].Name);

        var sent = s.Upstream.Last.Json;
        Assert.DoesNotContain("melious.", sent.GetRawText(), StringComparison.Ordinal);
        var messages = sent.GetProperty("messages");
        Assert.Equal(["user", "assistant", "user", "user", "assistant", "user"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("text", messages[1].GetProperty("content")[0].GetProperty("type").GetString());
        Assert.Equal("EqQBCkYIBxgCKkB", messages[4].GetProperty("content")[0].GetProperty("signature").GetString());
        Assert.Equal("secondary-model", sent.GetProperty("model").GetString());
        Assert.Equal(2048, sent.GetProperty("thinking").GetProperty("budget_tokens").GetInt32());
    }

    [Fact]
    public async Task BlankAssistantTextBlocks_AreNotForwarded()
    {
        // An OpenAI model wrote "\n" between two tool calls (older gateways made it a text block) and Claude Code
        // echoes it after a switch to an Anthropic model: Anthropic answers 400 "text content blocks must contain
        // non-whitespace text" (anthropics/claude-code#23440).
        await using var s = await Scenario.StartAsync(azurite, WriteStream, anthropicUpstream: true);
        var body = Scenario.Body(stream: true);
        body["messages"] = JsonNodeParse("""
            [
              {"role":"user","content":[{"type":"text","text":"read a and b"},{"type":"text","text":" "}]},
              {"role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"Read","input":{"file_path":"a"}},{"type":"text","text":"\n"},{"type":"tool_use","id":"toolu_02","name":"Note","input":{"text":""}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"A"},{"type":"tool_result","tool_use_id":"toolu_02","content":"ok"}]},
              {"role":"assistant","content":[{"type":"text","text":""}]},
              {"role":"user","content":"go on"}
            ]
            """);
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(body), Ct);
        Assert.Equal("message_stop", events[^1].Name);

        var messages = s.Upstream.Last.Json.GetProperty("messages");
        Assert.Equal(["user", "assistant", "user", "user"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        var assistant = messages[1].GetProperty("content");
        Assert.Equal(["tool_use", "tool_use"], assistant.EnumerateArray().Select(b => b.GetProperty("type").GetString()));
        Assert.Equal("", assistant[1].GetProperty("input").GetProperty("text").GetString());
        Assert.Equal(" ", messages[0].GetProperty("content")[1].GetProperty("text").GetString());
        Assert.Equal("secondary-model", s.Upstream.Last.Json.GetProperty("model").GetString());
    }

    private static System.Text.Json.Nodes.JsonNode JsonNodeParse(string json) => System.Text.Json.Nodes.JsonNode.Parse(json)!;
}

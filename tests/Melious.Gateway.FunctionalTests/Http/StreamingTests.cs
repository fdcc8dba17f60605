using System.Net;
using System.Text;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>Streaming and non-streaming responses over real HTTP, with scripted upstreams replaying SSE.</summary>
public abstract class StreamingTests(IGatewayTarget target)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly string[] ToolAnswer =
    [
        Sse.Role(),
        Sse.Reasoning("Need the file."),
        Sse.Content("Reading it."),
        Sse.ToolCall(0, "call_1", "Read", ""),
        Sse.ToolCall(0, null, null, "{\"file_pa"),
        Sse.ToolCall(0, null, null, "th\": \"/tmp/a.txt\"}"),
        Sse.Finish("tool_calls"),
        Sse.Usage(1200, 40, cached: 1024, reasoning: 5),
    ];

    [Fact]
    public async Task Stream_FollowsTheGrammar_KeepsTheModel_AndEndsWithUsageAndCosts()
    {
        await using var s = await Scenario.StartAsync(target, ToolAnswer);
        var response = await s.PostAsync(Scenario.Body(stream: true));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/event-stream", response.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        var events = await SseEvents.ReadAllAsync(response, Ct);
        SseEvents.AssertGrammar(events);

        Assert.Equal("claude-sonnet-4-5-20250929", events[0].Data.GetProperty("message").GetProperty("model").GetString());
        Assert.True(events[0].Data.GetProperty("message").GetProperty("usage").GetProperty("input_tokens").GetInt64() > 0);
        var starts = events.Where(e => e.Name == "content_block_start").Select(e => e.Data.GetProperty("content_block").GetProperty("type").GetString()).ToList();
        Assert.Equal(["thinking", "text", "tool_use"], starts);
        var tool = events.First(e => e.Name == "content_block_start" && e.Data.GetProperty("content_block").GetProperty("type").GetString() == "tool_use");
        Assert.Matches("^toolu_[A-Za-z0-9]{24}$", tool.Data.GetProperty("content_block").GetProperty("id").GetString());
        var json = string.Concat(events.Where(e => e.Name == "content_block_delta" && e.Data.GetProperty("delta").GetProperty("type").GetString() == "input_json_delta")
            .Select(e => e.Data.GetProperty("delta").GetProperty("partial_json").GetString()));
        Assert.Equal("{\"file_path\": \"/tmp/a.txt\"}", json);

        var delta = events.Single(e => e.Name == "message_delta").Data;
        Assert.Equal("tool_use", delta.GetProperty("delta").GetProperty("stop_reason").GetString());
        var usage = delta.GetProperty("usage");
        Assert.Equal(176, usage.GetProperty("input_tokens").GetInt64());
        Assert.Equal(1024, usage.GetProperty("cache_read_input_tokens").GetInt64());
        Assert.Equal(40, usage.GetProperty("output_tokens").GetInt64());
        Assert.Equal("USD", delta.GetProperty("billing_cost").GetProperty("currency").GetString());
        Assert.Equal("westeurope", delta.GetProperty("environment_impact").GetProperty("region").GetString());

        // Thinking signature is non-empty; upstream ids never reach the client.
        Assert.Contains(events, e => e.Name == "content_block_delta" && e.Data.GetProperty("delta").GetProperty("type").GetString() == "signature_delta"
            && e.Data.GetProperty("delta").GetProperty("signature").GetString()!.Length > 10);
        Assert.DoesNotContain("call_1", await Task.FromResult(string.Join("", events.Select(e => e.Data.ToString()))), StringComparison.Ordinal);
    }

    [Fact]
    public async Task NonStream_HasTheSameBlocks_AndUsage()
    {
        await using var s = await Scenario.StartAsync(target, ToolAnswer);
        var response = await s.PostAsync(Scenario.Body());
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        var json = await s.JsonAsync(response);
        Assert.Equal("message", json.GetProperty("type").GetString());
        Assert.StartsWith("msg_", json.GetProperty("id").GetString(), StringComparison.Ordinal);
        var content = json.GetProperty("content");
        Assert.Equal("thinking", content[0].GetProperty("type").GetString());
        Assert.Equal("Need the file.", content[0].GetProperty("thinking").GetString());
        Assert.NotEmpty(content[0].GetProperty("signature").GetString()!);
        Assert.Equal("Reading it.", content[1].GetProperty("text").GetString());
        Assert.Equal("/tmp/a.txt", content[2].GetProperty("input").GetProperty("file_path").GetString());
        Assert.Equal("tool_use", json.GetProperty("stop_reason").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, json.GetProperty("stop_sequence").ValueKind);
        Assert.Equal(40, json.GetProperty("usage").GetProperty("output_tokens").GetInt64());
        Assert.True(json.TryGetProperty("billing_cost", out _));
        Assert.True(json.TryGetProperty("environment_impact", out _));
    }

    [Fact]
    public async Task StreamingIsDecidedByTheBody_NotTheAcceptHeader()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["a", "b"]));
        var streamed = new HttpRequestMessage(HttpMethod.Post, "/v1/messages?beta=true") { Content = new StringContent(Scenario.Body(stream: true).ToJsonString(), Encoding.UTF8, "application/json") };
        streamed.Headers.Accept.ParseAdd("application/json");
        var a = await s.Client.SendAsync(streamed, Ct);
        Assert.StartsWith("text/event-stream", a.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);

        var plain = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(Scenario.Body().ToJsonString(), Encoding.UTF8, "application/json") };
        plain.Headers.Accept.ParseAdd("text/event-stream");
        var b = await s.Client.SendAsync(plain, Ct);
        Assert.Equal("application/json", b.Content.Headers.ContentType!.MediaType);
        Assert.All(s.Upstream.Requests, r => Assert.True(r.Json.GetProperty("stream").GetBoolean()));
    }

    [Fact]
    public async Task Stream_IsIncremental_NotBuffered()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s = await Scenario.StartAsync(target, async (_, context) =>
        {
            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("first")], done: false);
            await gate.Task.WaitAsync(TimeSpan.FromSeconds(20), context.RequestAborted);
            await Sse.WriteAsync(context, [Sse.Content(" second"), Sse.Finish("stop"), Sse.Usage(10, 2)]);
        });
        var response = await s.PostAsync(Scenario.Body(stream: true));
        await using var body = await response.Content.ReadAsStreamAsync(Ct);
        var reader = new StreamReader(body);
        var seen = new StringBuilder();
        while (!seen.ToString().Contains("\"text\":\"first\"", StringComparison.Ordinal))
        {
            var line = await reader.ReadLineAsync(Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(10), Ct);
            Assert.NotNull(line);
            seen.AppendLine(line);
        }

        // The first delta arrived while the upstream was still holding the rest back.
        gate.SetResult();
        var rest = await reader.ReadToEndAsync(Ct);
        Assert.Contains("message_stop", rest, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SilentUpstream_GetsPings_ThenTheStreamContinues()
    {
        await using var s = await Scenario.StartAsync(target, async (_, context) =>
        {
            // Headers go out at once (as vLLM's do); then the server is silent during a long prefill.
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync(context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await Task.Delay(900, context.RequestAborted);
            await Sse.WriteAsync(context, Sse.TextAnswer(["late"]));
        }, new Dictionary<string, string?> { ["Melious:Streaming:PingInterval"] = "00:00:00.150" });
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(Scenario.Body(stream: true)), Ct);
        SseEvents.AssertGrammar(events);
        var firstDelta = events.FindIndex(e => e.Name == "content_block_delta");
        Assert.True(events.Take(firstDelta).Count(e => e.Name == "ping") >= 2, "pings are sent while the upstream is silent");
        Assert.Equal("late", SseEvents.Text(events));
    }

    [Fact]
    public async Task UpstreamSilentPastIdleTimeout_PingsThenErrorEvent()
    {
        await using var s = await Scenario.StartAsync(target, async (_, context) =>
        {
            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("part")], done: false);
            await Task.Delay(TimeSpan.FromSeconds(30), context.RequestAborted);
        }, new Dictionary<string, string?> { ["Melious:Streaming:PingInterval"] = "00:00:00.150", ["Melious:Streaming:IdleTimeout"] = "00:00:01" });
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(Scenario.Body(stream: true)), Ct);
        SseEvents.AssertGrammar(events, expectError: true);
        Assert.Contains(events, e => e.Name == "ping");
        Assert.DoesNotContain(events, e => e.Name == "message_stop");
        Assert.Contains("sent nothing", events[^1].Data.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        await s.Upstream.Last.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(5), Ct);
    }

    [Fact]
    public async Task UpstreamSilentPastIdleTimeout_NonStreaming_Is504NotAPartialMessage()
    {
        await using var s = await Scenario.StartAsync(target, async (_, context) =>
        {
            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("part")], done: false);
            await Task.Delay(TimeSpan.FromSeconds(30), context.RequestAborted);
        }, new Dictionary<string, string?> { ["Melious:Streaming:IdleTimeout"] = "00:00:01" });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var response = await s.PostAsync(Scenario.Body(stream: false));
        var json = await ErrorAssert.IsErrorAsync(response, HttpStatusCode.GatewayTimeout, "timeout_error", "sent nothing");
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(10));
        Assert.False(json.TryGetProperty("content", out _));
        await s.Upstream.Last.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(5), Ct);
    }

    [Fact]
    public async Task MidStreamErrorChunk_BecomesAnErrorEvent()
    {
        await using var s = await Scenario.StartAsync(target, Sse.Role(), Sse.Content("par"), """{"error":{"message":"CUDA out of memory","type":"InternalServerError","code":500}}""");
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(Scenario.Body(stream: true)), Ct);
        SseEvents.AssertGrammar(events, expectError: true);
        var error = events[^1].Data.GetProperty("error");
        Assert.Equal("api_error", error.GetProperty("type").GetString());
        Assert.Equal("CUDA out of memory", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task DroppedConnection_WithoutDone_IsAnErrorNotEndTurn()
    {
        await using var s = await Scenario.StartAsync(target, async (_, context) =>
        {
            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("half an ans")], done: false);
            await Task.Delay(200, context.RequestAborted);
            context.Abort();
        });
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(Scenario.Body(stream: true)), Ct);
        SseEvents.AssertGrammar(events, expectError: true);
        Assert.DoesNotContain(events, e => e.Name == "message_delta");
    }

    [Fact]
    public async Task CleanEofWithoutDoneOrFinish_IsAnError()
    {
        await using var s = await Scenario.StartAsync(target, (_, context) => Sse.WriteAsync(context, [Sse.Role(), Sse.Content("cut")], done: false));
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(Scenario.Body(stream: true)), Ct);
        SseEvents.AssertGrammar(events, expectError: true);
        Assert.Contains("ended unexpectedly", events[^1].Data.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task InvalidJsonChunk_IsReported()
    {
        await using var s = await Scenario.StartAsync(target, Sse.Role(), Sse.Content("ok"), "{not json", Sse.Finish("stop"));
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(Scenario.Body(stream: true)), Ct);
        SseEvents.AssertGrammar(events, expectError: true);
        Assert.Contains("not valid JSON", events[^1].Data.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task NonStream_UpstreamFailureMidResponse_IsAnErrorStatus()
    {
        await using var s = await Scenario.StartAsync(target, Sse.Role(), Sse.Content("par"), """{"error":{"message":"overloaded","code":503}}""");
        var response = await s.PostAsync(Scenario.Body());
        await ErrorAssert.IsErrorAsync(response, (HttpStatusCode)529, "overloaded_error");
    }

    [Fact]
    public async Task ClientDisconnect_AbortsTheUpstreamPromptly()
    {
        // Several disconnects, because a cut can land during or between the proxy's reads. Under the Functions host,
        // a cut between reads left the host's proxy draining the worker's response for 2 s, and the worker streaming
        // on (seen once in CI: 2,011 ms); HttpInvocationCancel ends the worker's request on the host's cancel instead.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s = await Scenario.StartAsync(target, async (_, context) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync($"data: {Sse.Role()}\n\n", context.RequestAborted);
            for (var i = 0; i < 600; i++)
            {
                await context.Response.WriteAsync($"data: {Sse.Content("tok ")}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                if (i == 3)
                {
                    Volatile.Read(ref started).TrySetResult();
                }

                await Task.Delay(100, context.RequestAborted);
            }
        });

        // Like Claude Code, close the socket on abort (HttpClient would otherwise drain the response for up to 2 s).
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(s.Gateway.BaseUrl) };
        client.DefaultRequestHeaders.Add("x-api-key", s.Key);
        var figures = new List<string>();
        for (var attempt = 1; attempt <= 4; attempt++)
        {
            Volatile.Write(ref started, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(Scenario.Body(stream: true).ToJsonString(), Encoding.UTF8, "application/json") };
            var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            var stream = await response.Content.ReadAsStreamAsync(cts.Token);
            await started.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);

            // Half the cuts with a read pending, half between reads.
            var pending = attempt % 2 == 0 ? stream.ReadAsync(new byte[1], cts.Token).AsTask() : null;
            var cancelledAt = DateTime.UtcNow;
            cts.Cancel();
            stream.Dispose();
            response.Dispose();
            if (pending is not null)
            {
                try
                {
                    await pending;
                }
                catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or IOException or HttpRequestException)
                {
                    // The cut ends the pending read; whether it had a byte first does not matter here.
                }
            }

            var abortedAt = await s.Upstream.Last.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(5), Ct);
            figures.Add($"{(abortedAt - cancelledAt).TotalMilliseconds:0} ms");
            Assert.True(abortedAt - cancelledAt < TimeSpan.FromSeconds(1), $"disconnect {attempt}: upstream aborted after {string.Join(", ", figures)}");
        }
    }

    [Fact]
    public async Task ClientDisconnect_AfterItStoppedReading_AbortsTheUpstreamPromptly()
    {
        // A client that reads a busy stream slower than it comes (a slow terminal, a paused process) and then goes
        // away: the gateway is held in writes to it, not in a read from the upstream, when it leaves.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var text = new string('x', 4096);
        await using var s = await Scenario.StartAsync(target, async (_, context) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync($"data: {Sse.Role()}\n\n", context.RequestAborted);
            for (var i = 0; i < 3000; i++)
            {
                await context.Response.WriteAsync($"data: {Sse.Content(text)}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                if (i == 3)
                {
                    started.TrySetResult();
                }

                await Task.Delay(20, context.RequestAborted);
            }
        });

        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(s.Gateway.BaseUrl) };
        client.DefaultRequestHeaders.Add("x-api-key", s.Key);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(Scenario.Body(stream: true).ToJsonString(), Encoding.UTF8, "application/json") };
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var stream = await response.Content.ReadAsStreamAsync(cts.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        var buffer = new byte[1024];
        for (var until = DateTime.UtcNow.AddSeconds(3); DateTime.UtcNow < until;)
        {
            _ = await stream.ReadAsync(buffer, cts.Token);
            await Task.Delay(10, Ct);
        }

        var cancelledAt = DateTime.UtcNow;
        cts.Cancel();
        stream.Dispose();
        response.Dispose();
        var abortedAt = await s.Upstream.Last.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.True(abortedAt - cancelledAt < TimeSpan.FromSeconds(1), $"upstream aborted after {(abortedAt - cancelledAt).TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task FinishedStreams_KeepTheirUpstreamConnection_ForTheNextRequest()
    {
        // The gateway stops reading at [DONE]. Here the response's terminating chunk comes 50 ms later, as from a
        // server that ends its response only after some bookkeeping: the handler's drain must wait for it and put the
        // connection back in the pool, not close it (which made every request open a new connection).
        var connections = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await using var s = await Scenario.StartAsync(target, async (_, context) =>
        {
            connections.Enqueue(context.Connection.Id);
            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("pooled"), Sse.Finish("stop"), Sse.Usage(12, 3)]);
            try
            {
                await Task.Delay(50, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
                // The gateway closed the connection: the assertion below says so.
            }
        });

        for (var i = 0; i < 6; i++)
        {
            using var response = await s.PostAsync(Scenario.Body(stream: true));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains("message_stop", await response.Content.ReadAsStringAsync(Ct));
            await Task.Delay(150, Ct);
        }

        Assert.Equal(6, connections.Count);
        Assert.True(connections.Distinct().Count() <= 2, $"6 streams used {connections.Distinct().Count()} upstream connections");
    }
}

/// <summary>The tests of <see cref="StreamingTests"/> against the self-host.</summary>
public sealed class StreamingTestsOnSelfHost(AzuriteFixture azurite) : StreamingTests(azurite);

/// <summary>The tests of <see cref="StreamingTests"/> against the Functions app under the real Functions host.</summary>
[Collection(FunctionsHostCollection.Name)]
public sealed class StreamingTestsOnFunctionsHost(FunctionsHostFixture host) : StreamingTests(host);

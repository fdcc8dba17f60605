using System.Net;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Melious.Functions;
using Melious.Gateway.FunctionalTests.Http;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// What only the real Functions host can show: which function the host runs for each route (its own invocation log),
/// the host's HTTP proxy streaming SSE incrementally (pings included) and passing a client's disconnect on, its body
/// size limits, and answers identical to the self-host's for the paths no function owns.
/// </summary>
[Collection(FunctionsHostCollection.Name)]
[Trait("Host", "FunctionsHost only: the host's routing, proxy and limits")]
public sealed partial class FunctionsHostTests(FunctionsHostFixture host, AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string, string, string> Routes() => new()
    {
        { "GET", "/", "Root" },
        { "HEAD", "/", "Root" },
        { "POST", "/v1/messages", "Messages" },
        { "POST", "/v1/messages?beta=true", "Messages" },
        { "POST", "/v1/messages/count_tokens", "CountTokens" },
        { "GET", "/v1/models", "ModelsList" },
        { "GET", "/v1/models/claude-opus-4-8", "ModelsGet" },
        { "POST", "/api/event_logging/batch", "TelemetryBatch" },
        { "GET", "/v1/messages", FallbackFunction.Name },
        { "DELETE", "/v1/models/x", FallbackFunction.Name },
        { "POST", "/", FallbackFunction.Name },
        { "POST", "/v1/v1/messages", FallbackFunction.Name },
        { "GET", "/nope", FallbackFunction.Name },
        { "PUT", "/v1/complete", FallbackFunction.Name },
    };

    [Theory]
    [MemberData(nameof(Routes))]
    public async Task EachRoute_RunsItsOwnFunction_TheCatchAllOnlyUnknownPathsAndWrongMethods(string method, string path, string function)
    {
        host.EnsureRunning();
        var key = await host.CreateKeyAsync();
        using var client = new HttpClient { BaseAddress = new Uri(host.BaseUrl) };
        var mark = host.Output.Count;
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        request.Headers.Add("x-api-key", key);
        if (method is "POST" or "PUT")
        {
            request.Content = new StringContent(Scenario.Body().ToJsonString(), Encoding.UTF8, "application/json");
        }

        using var response = await client.SendAsync(request, Ct);
        await response.Content.ReadAsStringAsync(Ct);

        // The host logs "Executed 'Functions.<name>'" once the invocation ends (possibly just after the response).
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        List<string> executed;
        while (true)
        {
            executed = HttpInvocations(host.OutputSince(mark), "Executed");
            if (executed.Count > 0 || DateTime.UtcNow > deadline)
            {
                break;
            }

            await Task.Delay(100, Ct);
        }

        var executing = HttpInvocations(host.OutputSince(mark), "Executing");
        Assert.True(executing.Count == 1 && executing[0] == function, $"{method} {path}: expected the host to run Functions.{function}, it ran [{string.Join(", ", executing)}]");
        Assert.Equal([function], executed);
    }

    public static TheoryData<string, string, string?> SameAsSelfHost() => new()
    {
        { "GET", "/", null },
        { "HEAD", "/", null },
        { "POST", "/v1/v1/messages", "{}" },
        { "GET", "/v1/messages", null },
        { "GET", "/v1/messages/count_tokens", null },
        { "POST", "/v1/models", "{}" },
        { "DELETE", "/v1/models/main-model", null },
        { "POST", "/", "{}" },
        { "GET", "/v2/messages", null },
        { "GET", "/api/event_logging/batch", null },
        { "OPTIONS", "/v1/messages", null },
        { "POST", "/v1/messages", "{not json" },
        { "POST", "/v1/messages/count_tokens", "{\"model\":\"x\"}" },
    };

    [Theory]
    [MemberData(nameof(SameAsSelfHost))]
    public async Task Answers_AreTheSelfHosts_StatusHeadersAndBody(string method, string path, string? body)
    {
        host.EnsureRunning();
        await using var selfHost = await TestGateway.StartAsync(azurite.ConnectionString, "http://127.0.0.1:9/v1");
        var selfKey = await selfHost.CreateKeyAsync();
        var functionsKey = await host.CreateKeyAsync();

        var expected = await SendAsync(selfHost.BaseUrl, selfKey, method, path, body);
        var actual = await SendAsync(host.BaseUrl, functionsKey, method, path, body);

        Assert.Equal(expected.Status, actual.Status);
        Assert.Equal(expected.Headers, actual.Headers);
        Assert.Equal(expected.Body, actual.Body);
    }

    [Fact]
    public async Task Sse_ArrivesIncrementallyThroughTheHost_AndPingsFlowDuringUpstreamSilence()
    {
        host.EnsureRunning();
        var firstDeltaSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var releasedByClient = false;
        var silence = FunctionsHostFixture.PingInterval * 3;
        await using var s = await Scenario.StartAsync(host, async (_, context) =>
        {
            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("Hel")], done: false);

            // The rest waits until the client has the first delta: a buffering proxy would never let it arrive.
            releasedByClient = await Task.WhenAny(firstDeltaSeen.Task, Task.Delay(TimeSpan.FromSeconds(30), context.RequestAborted)) == firstDeltaSeen.Task;
            await Task.Delay(silence, context.RequestAborted);
            await Sse.WriteAsync(context, [Sse.Content("lo"), Sse.Finish("stop"), Sse.Usage(10, 2)]);
        });

        using var response = await s.PostAsync(Scenario.Body(stream: true));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var names = new List<string>();
        var pingsAfterFirstDelta = 0;
        await using var stream = await response.Content.ReadAsStreamAsync(Ct);
        await foreach (var item in SseParser.Create(stream).EnumerateAsync(Ct))
        {
            names.Add(item.EventType);
            if (item.EventType == "content_block_delta")
            {
                firstDeltaSeen.TrySetResult();
            }
            else if (item.EventType == "ping" && firstDeltaSeen.Task.IsCompleted && !names.Skip(names.IndexOf("content_block_delta") + 1).Contains("content_block_delta"))
            {
                pingsAfterFirstDelta++;
            }
        }

        Assert.True(releasedByClient, "the first content_block_delta did not reach the client before the upstream sent the rest: the host buffered the stream. Events: " + string.Join(", ", names));
        Assert.True(pingsAfterFirstDelta >= 1, $"no ping during {silence.TotalSeconds} s of upstream silence (ping interval {FunctionsHostFixture.PingInterval.TotalSeconds} s). Events: " + string.Join(", ", names));
        Assert.Equal("message_stop", names[^1]);
    }

    [Fact]
    public async Task ClientDisconnect_ThroughTheHost_AbortsTheUpstreamWithin1s()
    {
        host.EnsureRunning();
        await using var s = await Scenario.StartAsync(host, async (_, context) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync($"data: {Sse.Role()}\n\n", context.RequestAborted);
            for (var i = 0; i < 3_000; i++)
            {
                await context.Response.WriteAsync($"data: {Sse.Content($"t{i} ")}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                await Task.Delay(20, context.RequestAborted);
            }
        });

        // Like Claude Code, close the socket on abort (HttpClient would otherwise drain the response for up to 2 s).
        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(s.Gateway.BaseUrl) };
        client.DefaultRequestHeaders.Add("x-api-key", s.Key);
        var delays = new List<TimeSpan>();
        for (var trial = 0; trial < 3; trial++)
        {
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(Scenario.Body(stream: true).ToJsonString(), Encoding.UTF8, "application/json") };
            var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
            var stream = await response.Content.ReadAsStreamAsync(Ct);
            var deltas = 0;
            await foreach (var item in SseParser.Create(stream).EnumerateAsync(Ct))
            {
                if (item.EventType == "content_block_delta" && ++deltas == 5)
                {
                    break;
                }
            }

            var upstream = s.Upstream.Last;
            var closedAt = DateTime.UtcNow;
            cancel.Cancel();
            response.Dispose();
            var finished = await Task.WhenAny(upstream.Aborted.Task, Task.Delay(TimeSpan.FromSeconds(15), Ct));
            Assert.True(finished == upstream.Aborted.Task, $"trial {trial}: the upstream request was not aborted 15 s after the client left");
            delays.Add(await upstream.Aborted.Task - closedAt);
        }

        TestContext.Current.TestOutputHelper?.WriteLine("upstream aborted after: " + string.Join(", ", delays.Select(d => $"{d.TotalMilliseconds:0} ms")));
        // The median of three trials, so one scheduling hiccup on a loaded machine does not decide the outcome.
        var median = delays.Order().ElementAt(delays.Count / 2);
        Assert.True(median < TimeSpan.FromSeconds(1), "upstream aborted after " + string.Join(", ", delays.Select(d => $"{d.TotalMilliseconds:0} ms")));
    }

    [Fact]
    public async Task Body_Of32MB_Passes_ALargerOneGetsTheAnthropic413()
    {
        host.EnsureRunning();
        await using var s = await Scenario.StartAsync(host, Sse.TextAnswer(["x"]));
        const int limit = 32 * 1024 * 1024;
        var skeleton = Scenario.Body(prompt: "").ToJsonString();
        var fits = Scenario.Body(prompt: new string('a', limit - Encoding.UTF8.GetByteCount(skeleton))).ToJsonString();
        Assert.Equal(limit, Encoding.UTF8.GetByteCount(fits));

        // count_tokens reads the whole body and answers 200: the host forwarded all 32 MiB.
        using (var counted = await s.PostAsync(fits, "/v1/messages/count_tokens"))
        {
            var text = await counted.Content.ReadAsStringAsync(Ct);
            Assert.True(counted.StatusCode == HttpStatusCode.OK, $"{(int)counted.StatusCode}: {text[..Math.Min(500, text.Length)]}");
            Assert.True(JsonDocument.Parse(text).RootElement.GetProperty("input_tokens").GetInt64() > 1000);
        }

        var tooBig = fits + " ";
        await ErrorAssert.IsErrorAsync(await s.PostAsync(tooBig), HttpStatusCode.RequestEntityTooLarge, "request_too_large");
        var chunked = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(tooBig + new string(' ', 4096)))) };
        chunked.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        chunked.Headers.TransferEncodingChunked = true;
        await ErrorAssert.IsErrorAsync(await s.Client.SendAsync(chunked, Ct), HttpStatusCode.RequestEntityTooLarge, "request_too_large");
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task ClaudeCode_ReadToolRoundTrip_AgainstTheFunctionsApp()
    {
        host.EnsureRunning();
        using var workspace = new Clients.ClaudeCodeTests.Workspace();
        await using var s = await Scenario.StartAsync(host, (request, context) =>
            Clients.ScenarioExtensions.HasToolMessage(request)
                ? Sse.WriteAsync(context, [Sse.Role(), Sse.Content("The file says: "), Sse.Content(workspace.Marker), Sse.Finish("stop"), Sse.Usage(9000, 12)])
                : Sse.WriteAsync(context, Clients.ClaudeCodeTests.ReadCall(workspace.FilePath, thinking: true)));
        var mark = host.Output.Count;

        var run = await Clients.ClaudeCodeTests.RunClaudeAsync(s.Gateway.BaseUrl, workspace, new() { ["ANTHROPIC_AUTH_TOKEN"] = s.Key, ["ANTHROPIC_API_KEY"] = "" });

        var report = run.Describe() + "\n--- host output ---\n" + FunctionsHostFixture.Tail(host.OutputSince(mark), 60);
        Assert.True(run.ExitCode == 0 && !run.TimedOut, report);
        var result = JsonDocument.Parse(Clients.ClaudeCodeTests.ResultLine(run)).RootElement;
        Assert.False(result.GetProperty("is_error").GetBoolean(), report);
        Assert.Contains(workspace.Marker, result.GetProperty("result").GetString(), StringComparison.Ordinal);

        // The Read tool's result went back through the host to the upstream, and the host ran Messages for it.
        Assert.Contains(s.Upstream.Requests, r => Clients.ScenarioExtensions.HasToolMessage(r) && r.BodyText.Contains(workspace.Marker, StringComparison.Ordinal));
        Assert.True(HttpInvocations(host.OutputSince(mark), "Executing").Count(n => n == "Messages") >= 2, report);
        Assert.DoesNotContain(host.OutputSince(mark), l => l.Contains(s.Key, StringComparison.Ordinal));
    }

    /// <summary>HTTP function names from the host's "Executing/Executed 'Functions.X'" lines (the queue trigger left out).</summary>
    private static List<string> HttpInvocations(IEnumerable<string> lines, string verb) =>
        lines.Select(line => InvocationLine().Match(line))
            .Where(m => m.Success && m.Groups["verb"].Value == verb && m.Groups["name"].Value != "UsageQueue")
            .Select(m => m.Groups["name"].Value)
            .ToList();

    [GeneratedRegex(@"(?<verb>Executing|Executed) 'Functions\.(?<name>[A-Za-z0-9_\-]+)'")]
    private static partial Regex InvocationLine();

    private static async Task<(int Status, string Headers, string Body)> SendAsync(string baseUrl, string key, string method, string path, string? body)
    {
        using var client = new HttpClient { BaseAddress = new Uri(baseUrl) };
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        request.Headers.Add("x-api-key", key);
        request.Headers.Add("anthropic-version", "2023-06-01");
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        using var response = await client.SendAsync(request, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.Headers.Contains("request-id"), $"{method} {path} on {baseUrl}: no request-id header");

        // The headers clients read; request ids differ per request, and the host's own Kestrel adds Server and Date.
        var headers = string.Join("; ", new[] { "Allow", "x-should-retry", "Cache-Control" }
            .Select(h => $"{h}={(response.Headers.TryGetValues(h, out var v) ? string.Join(",", v) : response.Content.Headers.TryGetValues(h, out var c) ? string.Join(",", c) : "")}")
            .Append($"Content-Type={response.Content.Headers.ContentType}")
            .Append($"Content-Length={(method == "HEAD" ? response.Content.Headers.ContentLength : text.Length)}"));
        if (text.Length > 0 && text[0] == '{')
        {
            var json = JsonNode.Parse(text)!.AsObject();
            Assert.Equal(response.Headers.GetValues("request-id").Single(), json["request_id"]?.GetValue<string>() ?? response.Headers.GetValues("request-id").Single());
            json.Remove("request_id");
            text = json.ToJsonString();
        }

        return ((int)response.StatusCode, headers, text);
    }
}

using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Clients;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Limits;
using Microsoft.AspNetCore.Http;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Limits;

/// <summary>
/// Tokens per minute charged as the output streams, not only when a request ends: a long stream that is still running
/// uses up the key's minute, so a later request of the same key (on any instance) is refused while it runs; and the
/// end of the stream charges only the remainder (the shared counter holds exactly what was used).
/// </summary>
[Collection("Limits")]
public sealed class StreamingTokensTests(AzuriteFixture azurite)
{
    private const int Before = 600;
    private const int After = 400;

    /// <summary>
    /// The long stream's and the short request's bodies and input estimates, and the key's limit: room for the long
    /// request's input, two short requests and 200 output tokens. The short requests fit as long as only estimates
    /// are counted; 600 streamed output tokens do not leave room for one more.
    /// </summary>
    private sealed record Plan(string LongBody, string ShortBody, long LongInput, long ShortInput, long Tpm)
    {
        public static Plan Create()
        {
            var longBody = Scenario.Body(stream: true, prompt: "tell me a long story", maxTokens: 4000).ToJsonString();
            var shortBody = Scenario.Body(stream: false).ToJsonString();
            var longInput = LimitCluster.Estimate(longBody);
            var shortInput = LimitCluster.Estimate(shortBody);
            return new Plan(longBody, shortBody, longInput, shortInput, longInput + (3 * shortInput) + 200);
        }
    }

    [Fact]
    public async Task LongStream_ChargesItsOutputWhileRunning_LaterRequestsRefusedMidStream_EndChargesOnlyTheRemainder()
    {
        var (longBody, shortBody, longInput, shortInput, tpm) = Plan.Create();
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var cluster = await LimitCluster.StartAsync(azurite.ConnectionString, async (request, context) =>
        {
            if (!request.BodyText.Contains("long story", StringComparison.Ordinal))
            {
                await Sse.WriteAsync(context, Sse.TextAnswer(["ok"], prompt: (int)shortInput));
                return;
            }

            await Sse.WriteAsync(context, [Sse.Role(), .. Enumerable.Range(0, Before).Select(i => Sse.Content($"w{i} "))], done: false);
            held.TrySetResult();
            await release.Task.WaitAsync(TimeSpan.FromSeconds(90), context.RequestAborted);
            await Sse.WriteAsync(context, [.. Enumerable.Range(Before, After).Select(i => Sse.Content($"w{i} ")), Sse.Finish("stop"), Sse.Usage((int)longInput, Before + After)]);
        });
        var key = await cluster.Gateways[0].CreateKeyAsync(name: "tpm-streaming", limits: new KeyLimits(TokensPerMinute: tpm));
        var keyId = CrossInstanceLimitTests.KeyIdOf(key);
        var clients = cluster.Clients(key);
        await LimitCluster.WaitForWindowRoomAsync();

        // The long stream starts on instance 0 (the test below shows a short request still fits before its output).
        using var longResponse = await clients[0].SendAsync(Post(longBody), HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, longResponse.StatusCode);
        var reading = SseEvents.ReadAllAsync(longResponse, Ct);
        await held.Task.WaitAsync(TimeSpan.FromSeconds(60), Ct);

        // Its 600 output tokens reach the shared counter while it is still running (charged from the slice in steps,
        // the excess written in the background): no request has ended, yet the key's minute is used up.
        long counted = 0;
        Assert.True(await WaitUntilAsync(async () =>
        {
            counted = await CrossInstanceLimitTests.CounterAsync(cluster.Gateways[0], key, KeyRateLimiter.TokensKind);
            return counted >= longInput + Before - 50;
        }, TimeSpan.FromSeconds(30)), $"shared counter {counted} after {Before} streamed tokens (input {longInput}, limit {tpm})");
        Assert.False(release.Task.IsCompleted);

        // Mid-stream, a request of the same key is refused by its tokens per minute, on another instance and on the
        // streaming one.
        foreach (var instance in new[] { 1, 0 })
        {
            using var refused = await clients[instance].SendAsync(Post(shortBody), Ct);
            var text = await refused.Content.ReadAsStringAsync(Ct);
            Figure($"tpm {tpm}, a stream of {longInput} input tokens running with {Before} output tokens so far: instance {instance} answers {(int)refused.StatusCode}");
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Contains("tokens per minute", text, StringComparison.Ordinal);
            Assert.Equal(tpm.ToString(CultureInfo.InvariantCulture), refused.Headers.GetValues("anthropic-ratelimit-tokens-limit").Single());
        }

        // The stream itself is not cut: it finishes normally.
        release.TrySetResult();
        var events = await reading;
        SseEvents.AssertGrammar(events);
        Assert.Equal("message_stop", events[^1].Name);
        Assert.Equal(Before + After, events.Single(e => e.Name == "message_delta").Data.GetProperty("usage").GetProperty("output_tokens").GetInt32());

        // The end charged only the remainder: the counter (less slices leased and not spent) is exactly the usage of
        // the one request served, not its streamed part twice.
        var used = longInput + Before + After;
        Assert.True(await WaitUntilAsync(async () =>
        {
            counted = await CrossInstanceLimitTests.CounterAsync(cluster.Gateways[0], key, KeyRateLimiter.TokensKind)
                - cluster.Limiters.Sum(l => l.UnspentFor(keyId, KeyRateLimiter.TokensKind));
            return counted == used;
        }, TimeSpan.FromSeconds(15)), $"counter less unspent slices {counted}, used {used}");
        Assert.Single(cluster.Upstream.Requests);
    }

    [Fact]
    public async Task AnthropicUpstream_LongStream_ChargesItsDeltasWhileRunning_AndTheEndOnlyTheRemainder()
    {
        // The same with an upstream that speaks Anthropic Messages (relayed event for event): output counted from its
        // content_block_delta events while it runs, reconciled with message_delta's usage at the end.
        var (longBody, shortBody, longInput, shortInput, tpm) = Plan.Create();
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var cluster = await LimitCluster.StartAsync(azurite.ConnectionString, async (request, context) =>
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "text/event-stream";
            async Task Event(string name, string data)
            {
                await context.Response.WriteAsync($"event: {name}\ndata: {data}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }

            var input = request.BodyText.Contains("long story", StringComparison.Ordinal) ? longInput : shortInput;
            await Event("message_start", """{"type":"message_start","message":{"id":"msg_01abc","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":@INPUT@,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}""".Replace("@INPUT@", input.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
            await Event("content_block_start", """{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}""");
            var output = 1;
            if (input == longInput)
            {
                for (var i = 0; i < Before; i++)
                {
                    await Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"w@I@ "}}""".Replace("@I@", i.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
                }

                held.TrySetResult();
                await release.Task.WaitAsync(TimeSpan.FromSeconds(90), context.RequestAborted);
                for (var i = Before; i < Before + After; i++)
                {
                    await Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"w@I@ "}}""".Replace("@I@", i.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
                }

                output = Before + After;
            }
            else
            {
                await Event("content_block_delta", """{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ok"}}""");
            }

            await Event("content_block_stop", """{"type":"content_block_stop","index":0}""");
            await Event("message_delta", """{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":@INPUT@,"output_tokens":@OUTPUT@}}""".Replace("@INPUT@", input.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal).Replace("@OUTPUT@", output.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
            await Event("message_stop", """{"type":"message_stop"}""");
        }, instances: 2, anthropicUpstream: true);
        var key = await cluster.Gateways[0].CreateKeyAsync(name: "tpm-streaming-anthropic", limits: new KeyLimits(TokensPerMinute: tpm));
        var keyId = CrossInstanceLimitTests.KeyIdOf(key);
        var clients = cluster.Clients(key);
        await LimitCluster.WaitForWindowRoomAsync();

        using var longResponse = await clients[0].SendAsync(Post(longBody), HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, longResponse.StatusCode);
        var reading = SseEvents.ReadAllAsync(longResponse, Ct);
        await held.Task.WaitAsync(TimeSpan.FromSeconds(60), Ct);
        long counted = 0;
        Assert.True(await WaitUntilAsync(async () =>
        {
            counted = await CrossInstanceLimitTests.CounterAsync(cluster.Gateways[0], key, KeyRateLimiter.TokensKind);
            return counted >= longInput + Before - 50;
        }, TimeSpan.FromSeconds(30)), $"shared counter {counted} after {Before} streamed deltas (input {longInput}, limit {tpm})");

        using (var refused = await clients[1].SendAsync(Post(shortBody), Ct))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Contains("tokens per minute", await refused.Content.ReadAsStringAsync(Ct), StringComparison.Ordinal);
        }

        release.TrySetResult();
        var events = await reading;
        Assert.Equal("message_stop", events[^1].Name);
        var used = longInput + Before + After;
        Assert.True(await WaitUntilAsync(async () =>
        {
            counted = await CrossInstanceLimitTests.CounterAsync(cluster.Gateways[0], key, KeyRateLimiter.TokensKind)
                - cluster.Limiters.Sum(l => l.UnspentFor(keyId, KeyRateLimiter.TokensKind));
            return counted == used;
        }, TimeSpan.FromSeconds(15)), $"counter less unspent slices {counted}, used {used}");
    }

    [Fact]
    public async Task ShortRequestBeforeTheOutput_Fits_SoTheRefusalAboveIsTheStreamedOutput()
    {
        // The control of the test above: the same key and limit with the long request's output not yet streamed
        // leaves room for the short request, on another instance.
        var (longBody, shortBody, longInput, shortInput, tpm) = Plan.Create();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var cluster = await LimitCluster.StartAsync(azurite.ConnectionString, async (request, context) =>
        {
            if (!request.BodyText.Contains("long story", StringComparison.Ordinal))
            {
                await Sse.WriteAsync(context, Sse.TextAnswer(["ok"], prompt: (int)shortInput));
                return;
            }

            await Sse.WriteAsync(context, [Sse.Role()], done: false);
            started.TrySetResult();
            await release.Task.WaitAsync(TimeSpan.FromSeconds(90), context.RequestAborted);
            await Sse.WriteAsync(context, [Sse.Content("short"), Sse.Finish("stop"), Sse.Usage((int)longInput, 1)]);
        },
        // The long stream's upstream holds after its role chunk: the gateway answers the client's headers at the
        // first ping interval (it waits that long for the first event), so a short one keeps the test short.
        extra: new Dictionary<string, string?> { ["Melious:Streaming:PingInterval"] = "00:00:01" });
        var key = await cluster.Gateways[0].CreateKeyAsync(name: "tpm-streaming-control", limits: new KeyLimits(TokensPerMinute: tpm));
        var clients = cluster.Clients(key);
        await LimitCluster.WaitForWindowRoomAsync();

        using var longResponse = await clients[0].SendAsync(Post(longBody), HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, longResponse.StatusCode);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(60), Ct);
        using var accepted = await clients[1].SendAsync(Post(shortBody), Ct);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        release.TrySetResult();
        Assert.Equal("message_stop", (await SseEvents.ReadAllAsync(longResponse, Ct))[^1].Name);
    }

    [Fact]
    public async Task WebSearch_ChargesEachFinishedRoundsRealUsage_WhileTheNextRoundRuns()
    {
        // Through an OpenAI upstream the web_search tool is a loop of upstream rounds, each sending the conversation
        // again with the round's results. A finished round's real usage counts against tokens per minute as soon as it
        // ends, not only when the whole request does (before, only the first estimate counted until the end).
        const int RoundOneInput = 3000, RoundOneOutput = 20, RoundTwoInput = 3500, RoundTwoOutput = 7;
        await using var provider = await ScriptedUpstream.StartAsync(async (request, context) =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"query":"q","results":[{"url":"https://docs.example.com/page","title":"Docs","content":"PAGE-TEXT"}]}""", context.RequestAborted);
        });
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var search = new Dictionary<string, string?>
        {
            ["Melious:Search:Provider"] = "searxng",
            ["Melious:Search:BaseUrl"] = provider.BaseUrl,
            ["Melious:Search:SigningKeySetting"] = "Test:SearchSigningKey",
            ["Test:SearchSigningKey"] = "functional-test-signing-key",
        };
        await using var cluster = await LimitCluster.StartAsync(azurite.ConnectionString, async (request, context) =>
        {
            if (!request.ToolMessages().Any())
            {
                await Sse.WriteAsync(context, [Sse.Role(), Sse.ToolCall(0, "call_0", "web_search", """{"query":"melious"}"""), Sse.Finish("tool_calls"), Sse.Usage(RoundOneInput, RoundOneOutput)]);
                return;
            }

            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("From the results: ")], done: false);
            held.TrySetResult();
            await release.Task.WaitAsync(TimeSpan.FromSeconds(90), context.RequestAborted);
            await Sse.WriteAsync(context, [Sse.Content("done."), Sse.Finish("stop"), Sse.Usage(RoundTwoInput, RoundTwoOutput)]);
        }, instances: 1, extra: search);
        var key = await cluster.Gateways[0].CreateKeyAsync(name: "tpm-web-search", limits: new KeyLimits(TokensPerMinute: 20_000));
        var keyId = CrossInstanceLimitTests.KeyIdOf(key);
        await LimitCluster.WaitForWindowRoomAsync();

        var body = Scenario.Body(stream: true, prompt: "what is new in the melious gateway?");
        body["tools"] = new JsonArray(new JsonObject { ["type"] = "web_search_20250305", ["name"] = "web_search" });
        using var response = await cluster.Clients(key)[0].SendAsync(Post(body.ToJsonString()), HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var reading = SseEvents.ReadAllAsync(response, Ct);
        await held.Task.WaitAsync(TimeSpan.FromSeconds(60), Ct);

        // Round two is running: what the key has spent (the shared counter less the instance's unspent slice) already
        // holds round one's real input and output.
        async Task<long> SpentAsync() => await CrossInstanceLimitTests.CounterAsync(cluster.Gateways[0], key, KeyRateLimiter.TokensKind)
            - cluster.Limiters.Sum(l => l.UnspentFor(keyId, KeyRateLimiter.TokensKind));
        var spent = await SpentAsync();
        Figure($"web search, round two running: {spent} tokens spent (round one used {RoundOneInput + RoundOneOutput})");
        Assert.True(spent >= RoundOneInput + RoundOneOutput, $"spent {spent} while round two runs; round one used {RoundOneInput + RoundOneOutput}");
        Assert.False(release.Task.IsCompleted);

        release.TrySetResult();
        var events = await reading;
        SseEvents.AssertGrammar(events);
        Assert.Equal("message_stop", events[^1].Name);

        // The end charges only the remainder: exactly both rounds' usage, round one not twice.
        const long used = RoundOneInput + RoundOneOutput + RoundTwoInput + RoundTwoOutput;
        Assert.True(await WaitUntilAsync(async () => (spent = await SpentAsync()) == used, TimeSpan.FromSeconds(15)), $"spent {spent}, used {used}");
        Assert.Equal(2, cluster.Upstream.Requests.Count);
        Assert.Single(provider.Requests);
    }
}

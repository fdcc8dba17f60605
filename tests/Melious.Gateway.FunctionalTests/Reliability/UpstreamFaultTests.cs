using System.Net;
using System.Text;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Http;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>
/// The upstream fault table: every fault the model server can produce, what the client gets, and the billing row it
/// leaves (Status, ErrorType, Cancelled). The client-side mapping of several of these faults is also covered by
/// Http/UpstreamErrorTests and Http/StreamingTests; what this table adds is the ledger side (every fault produces
/// exactly one usage event with the outcome the client saw) and the faults those tests do not cover (reset or silence
/// before the first byte, slow-drip, huge chunk, mid-stream overload in both modes).
/// </summary>
public sealed class UpstreamFaultTests(AzuriteFixture azurite)
{
    private const string Model = "claude-sonnet-4-5-20250929";

    public static TheoryData<string> Faults =>
    [
        "connection-refused",
        "reset-before-first-byte",
        "silent-before-headers",
        "http-500",
        "http-429-retry-after",
        "http-503",
        "midstream-error-chunk",
        "midstream-overloaded-stream",
        "midstream-overloaded-nonstream",
        "dropped-mid-stream",
        "idle-timeout",
        "invalid-json-chunk",
    ];

    [Theory]
    [MemberData(nameof(Faults))]
    public async Task Fault_GivesTheMappedError_AndOneBillingRowWithThatOutcome(string fault)
    {
        var settings = new Dictionary<string, string?>();
        Func<UpstreamRequest, HttpContext, Task> handler = fault switch
        {
            "reset-before-first-byte" => (_, c) =>
            {
                c.Abort();
                return Task.CompletedTask;
            },
            "silent-before-headers" => (_, c) => Task.Delay(TimeSpan.FromSeconds(30), c.RequestAborted),
            "http-500" => (_, c) => Sse.ErrorAsync(c, 500, "engine crashed"),
            "http-429-retry-after" => (_, c) => Sse.ErrorAsync(c, 429, "slow down", retryAfter: "7"),
            "http-503" => (_, c) => Sse.ErrorAsync(c, 503, "busy"),
            "midstream-error-chunk" => (_, c) => Sse.WriteAsync(c, [Sse.Role(), Sse.Content("par"), """{"error":{"message":"CUDA out of memory","type":"InternalServerError","code":500}}"""]),
            "midstream-overloaded-stream" or "midstream-overloaded-nonstream" => (_, c) => Sse.WriteAsync(c, [Sse.Role(), Sse.Content("par"), """{"error":{"message":"server overloaded","code":503}}"""]),
            "dropped-mid-stream" => async (_, c) =>
            {
                await Sse.WriteAsync(c, [Sse.Role(), Sse.Content("half an ans")], done: false);
                await Task.Delay(200, c.RequestAborted);
                c.Abort();
            },
            "idle-timeout" => async (_, c) =>
            {
                await Sse.WriteAsync(c, [Sse.Role(), Sse.Content("part")], done: false);
                await Task.Delay(TimeSpan.FromSeconds(30), c.RequestAborted);
            },
            "invalid-json-chunk" => (_, c) => Sse.WriteAsync(c, [Sse.Role(), Sse.Content("ok"), "{not json", Sse.Finish("stop")]),
            _ => (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["unused"])),
        };

        if (fault == "silent-before-headers")
        {
            settings["Melious:Streaming:HeadersTimeout"] = "00:00:01";
        }

        if (fault == "idle-timeout")
        {
            settings["Melious:Streaming:PingInterval"] = "00:00:00.150";
            settings["Melious:Streaming:IdleTimeout"] = "00:00:01";
        }

        await using var s = await Scenario.StartAsync(azurite, handler, settings);
        TestGateway gateway = s.Gateway;
        TestGateway? refusedGateway = null;
        HttpClient client = s.Client;
        if (fault == "connection-refused")
        {
            // Nothing listens on this port.
            refusedGateway = await TestGateway.StartAsync(azurite.ConnectionString, $"http://127.0.0.1:{Ports.Free()}/v1");
            gateway = refusedGateway;
            client = gateway.Client(await gateway.CreateKeyAsync());
        }

        try
        {
            var stream = fault != "midstream-overloaded-nonstream";
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using var response = await client.SendAsync(Post(Scenario.Body(model: Model, stream: stream).ToJsonString()), HttpCompletionOption.ResponseHeadersRead, Ct);
            var requestId = RequestId(response);

            // What the client sees.
            string clientErrorType;
            int billedStatus;
            switch (fault)
            {
                case "connection-refused" or "reset-before-first-byte":
                    await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadGateway, "api_error");
                    (clientErrorType, billedStatus) = ("api_error", 502);
                    break;
                case "silent-before-headers":
                    await ErrorAssert.IsErrorAsync(response, HttpStatusCode.GatewayTimeout, "timeout_error");
                    (clientErrorType, billedStatus) = ("timeout_error", 504);
                    Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(10));
                    break;
                case "http-500":
                    await ErrorAssert.IsErrorAsync(response, HttpStatusCode.InternalServerError, "api_error", "engine crashed");
                    (clientErrorType, billedStatus) = ("api_error", 500);
                    Assert.Single(s.Upstream.Requests);
                    break;
                case "http-429-retry-after":
                    await ErrorAssert.IsErrorAsync(response, HttpStatusCode.TooManyRequests, "rate_limit_error");
                    Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter!.Delta);
                    (clientErrorType, billedStatus) = ("rate_limit_error", 429);
                    break;
                case "http-503":
                    await ErrorAssert.IsErrorAsync(response, (HttpStatusCode)529, "overloaded_error");
                    Assert.Equal(3, s.Upstream.Requests.Count);
                    (clientErrorType, billedStatus) = ("overloaded_error", 529);
                    break;
                case "midstream-overloaded-nonstream":
                    await ErrorAssert.IsErrorAsync(response, (HttpStatusCode)529, "overloaded_error");
                    (clientErrorType, billedStatus) = ("overloaded_error", 529);
                    break;
                default:
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                    var events = await SseEvents.ReadAllAsync(response, Ct);
                    SseEvents.AssertGrammar(events, expectError: true);
                    Assert.DoesNotContain(events, e => e.Name is "message_delta" or "message_stop");
                    if (fault == "idle-timeout")
                    {
                        Assert.Contains(events, e => e.Name == "ping");
                    }

                    clientErrorType = events[^1].Data.GetProperty("error").GetProperty("type").GetString()!;
                    billedStatus = 200;
                    break;
            }

            // What the ledger records: one row, with the outcome the client saw.
            var row = await BillingRowAsync(gateway, requestId);
            Figure($"{fault}: client {(int)response.StatusCode} {clientErrorType}; billed Status={row.GetInt32("Status")} ErrorType={row.GetString("ErrorType")} Cancelled={row.GetBoolean("Cancelled")} in={Long(row, "InputTokens")} out={Long(row, "OutputTokens")}");
            AssertOutcome(row, billedStatus, clientErrorType, cancelled: false);
            Assert.Equal(Model, row.GetString("RequestedModel"));
            Assert.Equal(stream, row.GetBoolean("Stream"));
            if (billedStatus == 200)
            {
                // The upstream accepted the prompt: it is billed at least at the input estimate.
                Assert.True(Long(row, "InputTokens") > 0, "a stream that started is billed for its input");
            }
        }
        finally
        {
            if (refusedGateway is not null)
            {
                client.Dispose();
                await refusedGateway.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task SlowDripUpstream_OneByteAtATime_GivesACorrectStream()
    {
        // Multi-byte characters, so single-byte reads split UTF-8 sequences, SSE field names and line ends.
        string[] pieces = ["Hé", "llo ", "wörld ", "😀 ", "中文 ", "\"quoted\" ", "back\\slash ", "line\nbreak", " done"];
        var script = string.Concat(Sse.TextAnswer(pieces, prompt: 321).Select(l => $"data: {l}\n\n")) + "data: [DONE]\n\n";
        var bytes = Encoding.UTF8.GetBytes(script);
        await using var s = await Scenario.StartAsync(azurite, async (_, context) =>
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync(context.RequestAborted);
            for (var i = 0; i < bytes.Length; i++)
            {
                await context.Response.Body.WriteAsync(bytes.AsMemory(i, 1), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        });

        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var response = await s.Client.SendAsync(Post(Scenario.Body(model: Model, stream: true).ToJsonString()), HttpCompletionOption.ResponseHeadersRead, Ct);
        var events = await SseEvents.ReadAllAsync(response, Ct);
        SseEvents.AssertGrammar(events);
        Assert.Equal(string.Concat(pieces), SseEvents.Text(events));
        var delta = events.Single(e => e.Name == "message_delta").Data;
        Assert.Equal("end_turn", delta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(pieces.Length, delta.GetProperty("usage").GetProperty("output_tokens").GetInt64());
        Figure($"slow-drip: {bytes.Length} upstream bytes, one per write+flush, relayed in {clock.ElapsedMilliseconds} ms as {events.Count} events");

        var row = await BillingRowAsync(s.Gateway, RequestId(response));
        AssertOutcome(row, 200, null, cancelled: false);
        Assert.Equal(pieces.Length, Long(row, "OutputTokens"));
        Assert.Equal(321, Long(row, "InputTokens"));
        Assert.Equal("end_turn", row.GetString("StopReason"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task HugeSingleChunk_5MB_GivesACorrectResponse(bool stream)
    {
        var unit = "line with \"quotes\", a \\ backslash, é, 😀, 中文 and a tab\t;\n";
        var repeats = (5 * 1024 * 1024 / Encoding.UTF8.GetByteCount(unit)) + 1;
        var builder = new StringBuilder(repeats * unit.Length);
        for (var i = 0; i < repeats; i++)
        {
            builder.Append(unit);
        }

        var text = builder.ToString();
        var textBytes = Encoding.UTF8.GetByteCount(text);
        Assert.True(textBytes >= 5 * 1024 * 1024, $"text is {textBytes} bytes");
        await using var s = await Scenario.StartAsync(azurite, (_, c) => Sse.WriteAsync(c, [Sse.Role(), Sse.Content(text), Sse.Finish("stop"), Sse.Usage(50, 1_234_567)]));

        using var response = await s.Client.SendAsync(Post(Scenario.Body(model: Model, stream: stream).ToJsonString()), HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        if (stream)
        {
            var events = await SseEvents.ReadAllAsync(response, Ct);
            SseEvents.AssertGrammar(events);
            Assert.Equal(text, SseEvents.Text(events));
        }
        else
        {
            var json = JsonDocument.Parse(await response.Content.ReadAsStreamAsync(Ct)).RootElement;
            Assert.Equal(text, json.GetProperty("content")[0].GetProperty("text").GetString());
            Assert.Equal("end_turn", json.GetProperty("stop_reason").GetString());
        }

        Figure($"huge chunk (stream={stream}): one {Mb(textBytes)} content delta relayed intact");
        var row = await BillingRowAsync(s.Gateway, RequestId(response));
        AssertOutcome(row, 200, null, cancelled: false);
        Assert.Equal(1_234_567, Long(row, "OutputTokens"));
    }
}

using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Microsoft.AspNetCore.Http;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>
/// Clients that leave: the upstream request is aborted promptly and the usage event records a cancel with what was
/// already streamed. (Http/StreamingTests.ClientDisconnect_AbortsTheUpstreamPromptly covers the abort timing with an
/// HttpClient, Usage/UsagePipelineTests.ClientCancel_IsBilledForTheTokensStreamed the billing; these add the abrupt RST
/// of a killed client, with both checks on one request, and the two moments before the stream starts.)
/// </summary>
public sealed class ClientDisconnectTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task ClientResetMidStream_AbortsTheUpstreamWithin1s_AndBillsTheTokensStreamed()
    {
        var written = 0;
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s = await Scenario.StartAsync(azurite, async (_, context) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync($"data: {Sse.Role()}\n\n", context.RequestAborted);
            for (var i = 0; i < 2_000; i++)
            {
                await context.Response.WriteAsync($"data: {Sse.Content($"t{i} ")}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                Interlocked.Increment(ref written);
                if (i == 20)
                {
                    started.TrySetResult();
                }

                await Task.Delay(10, context.RequestAborted);
            }
        });

        var port = new Uri(s.Gateway.BaseUrl).Port;
        var socket = await RawHttp.ConnectAsync(port, cancellationToken: Ct);
        await socket.SendAsync(RawHttp.Request(s.Key, Scenario.Body(stream: true).ToJsonString()), Ct);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        var seen = await RawHttp.ReadUntilAsync(socket, "\"text_delta\"", 15, TimeSpan.FromSeconds(10), Ct);
        var received = RawHttp.Occurrences(new System.Text.StringBuilder(seen), "\"text_delta\"");
        var requestId = System.Text.RegularExpressions.Regex.Match(seen, @"request-id: (\S+)", System.Text.RegularExpressions.RegexOptions.IgnoreCase).Groups[1].Value;

        var resetAt = DateTime.UtcNow;
        RawHttp.Reset(socket);
        var abortedAt = await s.Upstream.Last.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(5), Ct);
        var writtenAtAbort = Volatile.Read(ref written);
        Figure($"RST mid-stream: upstream aborted {(abortedAt - resetAt).TotalMilliseconds:0} ms after the reset; client had {received} deltas, upstream wrote {writtenAtAbort}");
        Assert.True(abortedAt - resetAt < TimeSpan.FromSeconds(1), $"upstream aborted after {(abortedAt - resetAt).TotalMilliseconds:0} ms");

        var row = await BillingRowAsync(s.Gateway, requestId);
        AssertOutcome(row, 200, null, cancelled: true);
        Assert.InRange(Long(row, "OutputTokens"), received, writtenAtAbort);
        Assert.True(Long(row, "InputTokens") > 0);
    }

    [Fact]
    public async Task ClientLeavesDuringPrefill_BeforeTheFirstByte_AbortsTheUpstream_AndIsBilledAsCancelled()
    {
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s = await Scenario.StartAsync(azurite, async (_, context) =>
        {
            received.TrySetResult();
            await Task.Delay(TimeSpan.FromSeconds(30), context.RequestAborted);
        });

        var socket = await RawHttp.ConnectAsync(new Uri(s.Gateway.BaseUrl).Port, cancellationToken: Ct);
        await socket.SendAsync(RawHttp.Request(s.Key, Scenario.Body(stream: true).ToJsonString()), Ct);
        await received.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        var resetAt = DateTime.UtcNow;
        RawHttp.Reset(socket);
        var abortedAt = await s.Upstream.Last.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(5), Ct);
        Assert.True(abortedAt - resetAt < TimeSpan.FromSeconds(1), $"upstream aborted after {(abortedAt - resetAt).TotalMilliseconds:0} ms");

        await s.Gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
        var rows = await Usage.UsageTables.WaitForAsync(Storage(s.Gateway), TableNames.Billing, r => r.Count >= 1, TimeSpan.FromSeconds(30));
        var row = Assert.Single(rows);
        AssertOutcome(row, 499, null, cancelled: true);
        Assert.DoesNotContain(s.Gateway.Logs.Lines, l => l.StartsWith("Error", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ClientResetMidUpload_IsBilledAsCancelled_NotAsAGatewayError()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["unused"]));
        var body = Scenario.Body(prompt: new string('a', 200_000)).ToJsonString();
        var request = RawHttp.Request(s.Key, body);
        var socket = await RawHttp.ConnectAsync(new Uri(s.Gateway.BaseUrl).Port, cancellationToken: Ct);

        // Headers and a part of the body, then the client dies.
        await socket.SendAsync(request.AsMemory(0, request.Length / 3), Ct);
        await Task.Delay(300, Ct);
        RawHttp.Reset(socket);

        await Task.Delay(500, Ct);
        await s.Gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
        var rows = await Usage.UsageTables.WaitForAsync(Storage(s.Gateway), TableNames.Billing, r => r.Count >= 1, TimeSpan.FromSeconds(30));
        var row = Assert.Single(rows);
        Figure($"RST mid-upload: billed Status={row.GetInt32("Status")} ErrorType='{row.GetString("ErrorType")}' Cancelled={row.GetBoolean("Cancelled")}; error log lines: {s.Gateway.Logs.Lines.Count(l => l.StartsWith("Error", StringComparison.Ordinal))}");
        Assert.Empty(s.Upstream.Requests);
        Assert.DoesNotContain(s.Gateway.Logs.Lines, l => l.Contains("failed inside the gateway", StringComparison.Ordinal));
        AssertOutcome(row, 499, null, cancelled: true);
    }
}

using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Microsoft.AspNetCore.Http;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>
/// Slow and vanishing clients against a gateway running as its own process (so its memory and threads can be read
/// from /proc without the test host's noise). Heavy: shares one collection with the fuzz test so they do not compete
/// for the CPU.
/// </summary>
[Collection(HeavyCollection.Name)]
public sealed class BackPressureTests(AzuriteFixture azurite)
{
    private static readonly string Chunk = Sse.Content(new string('x', 8 * 1024));

    [Fact]
    public async Task SlowReadingClient_AgainstAFastUpstream_GatewayMemoryStaysFlat_AndTheUpstreamStalls()
    {
        const long upstreamTarget = 100L * 1024 * 1024; // far more than all socket buffers on the path can hold
        long upstreamBytes = 0;
        var chunkBytes = Encoding.UTF8.GetBytes($"data: {Chunk}\n\n");
        await using var upstream = await ScriptedUpstream.StartAsync(async (request, context) =>
        {
            if (!request.BodyText.Contains("flood", StringComparison.Ordinal))
            {
                await Sse.WriteAsync(context, Sse.TextAnswer(["warm"]));
                return;
            }

            // "warm-flood": 16 MB for a fast reader (warms the path up); "flood": up to 100 MB for the slow reader.
            var warmUp = request.BodyText.Contains("warm-flood", StringComparison.Ordinal);
            var target = warmUp ? 16L * 1024 * 1024 : upstreamTarget;
            long pushed = 0;
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync($"data: {Sse.Role()}\n\n", context.RequestAborted);
            var clock = Stopwatch.StartNew();
            while (pushed < target && clock.Elapsed < TimeSpan.FromSeconds(60))
            {
                await context.Response.Body.WriteAsync(chunkBytes, context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                pushed += chunkBytes.Length;
                if (!warmUp)
                {
                    Interlocked.Add(ref upstreamBytes, chunkBytes.Length);
                }
            }

            await Sse.WriteAsync(context, [Sse.Finish("stop"), Sse.Usage(10, 100)]);
        });

        var prefix = AzuriteFixture.NewPrefix();
        var spool = Path.Combine(Path.GetTempPath(), "melious-spool-" + prefix);
        await using var gateway = await SelfHostProcess.StartAsync(SelfHostProcess.EnvironmentFor(azurite.ConnectionString, prefix, upstream.OpenAIBaseUrl, spool));
        var key = await CreateKeyAsync(azurite.ConnectionString, prefix);

        // Warm up (JIT, pools, first storage reads, the GC's budget for this path): small requests, then 16 MB streamed
        // to a fast reader. Then take the baseline.
        using (var client = RawClient(gateway.BaseUrl, key))
        {
            for (var i = 0; i < 5; i++)
            {
                using var warm = await client.SendAsync(Post(Infrastructure.Scenario.Body().ToJsonString()), Ct);
                Assert.True(warm.IsSuccessStatusCode, await warm.Content.ReadAsStringAsync(Ct));
            }

            using var fast = await client.SendAsync(Post(Infrastructure.Scenario.Body(stream: true, prompt: "warm-flood").ToJsonString()), HttpCompletionOption.ResponseHeadersRead, Ct);
            var events = await SseEvents.ReadAllAsync(fast, Ct);
            Assert.Equal("message_stop", events[^1].Name);
        }

        await Task.Delay(1000, Ct);
        var baseline = gateway.RssBytes;

        var socket = await RawHttp.ConnectAsync(gateway.Port, receiveBuffer: 2048, cancellationToken: Ct);
        var clientRead = 0L;
        var samples = new List<(TimeSpan At, long Rss, long Upstream)>();
        try
        {
            await socket.SendAsync(RawHttp.Request(key, Infrastructure.Scenario.Body(stream: true, prompt: "flood").ToJsonString()), Ct);
            var clock = Stopwatch.StartNew();
            var buffer = new byte[16];
            while (clock.Elapsed < TimeSpan.FromSeconds(8))
            {
                // A few bytes every 100 ms: ~160 B/s against an upstream that can produce hundreds of MB/s.
                if (socket.Available > 0)
                {
                    clientRead += await socket.ReceiveAsync(buffer, SocketFlags.None, Ct);
                }

                samples.Add((clock.Elapsed, gateway.RssBytes, Interlocked.Read(ref upstreamBytes)));
                await Task.Delay(100, Ct);
            }
        }
        finally
        {
            RawHttp.Reset(socket);
        }

        var peak = samples.Max(x => x.Rss);
        var stalledAt = samples[^1].Upstream;
        var lastSeconds = samples.Where(x => x.At > samples[^1].At - TimeSpan.FromSeconds(3)).ToList();
        Figure($"slow reader: client read {clientRead} B in 8 s; upstream pushed {Mb(stalledAt)} of {Mb(upstreamTarget)} then stalled " +
               $"(+{lastSeconds[^1].Upstream - lastSeconds[0].Upstream} B over the last 3 s); gateway RSS baseline {Mb(baseline)}, peak {Mb(peak)} (+{Mb(peak - baseline)}), " +
               $"over the last 3 s {Mb(lastSeconds.Min(x => x.Rss))}..{Mb(lastSeconds.Max(x => x.Rss))}");

        // Back-pressure reached the upstream: it could not push its 100 MB, and made no progress over the last 3 s.
        Assert.True(stalledAt < upstreamTarget / 2, $"the upstream pushed {Mb(stalledAt)}: the gateway is buffering");
        Assert.Equal(lastSeconds[0].Upstream, lastSeconds[^1].Upstream);

        // No unbounded buffering in the gateway: memory stays near the warmed-up baseline and is flat while stalled.
        // (RSS also moves with the GC's allocation budget and background work, the usage consumer's polling among it.)
        Assert.True(peak - baseline < 16L * 1024 * 1024, $"gateway RSS grew by {Mb(peak - baseline)} while a client read {clientRead} bytes");

        // The upstream request ends with the client; the gateway is still healthy.
        Assert.True(await WaitUntilAsync(() => upstream.Requests.All(r => r.Completed.Task.IsCompleted), TimeSpan.FromSeconds(5)), "the upstream request was not aborted");
        using var after = RawClient(gateway.BaseUrl, key);
        using var ok = await after.SendAsync(Post(Infrastructure.Scenario.Body().ToJsonString()), Ct);
        Assert.True(ok.IsSuccessStatusCode);
        Assert.True(gateway.IsRunning);
    }

    [Fact]
    public async Task FiveHundredConnectionsOpenedAndDropped_SixRounds_LeakNoUpstreamConnections_MemoryOrThreads()
    {
        // Six rounds: the first three warm the process up (pools, GC budget, thread pool); the last three must be flat.
        const int connections = 500;
        const int rounds = 6;
        var active = 0;
        var resetAtTicks = DateTime.MaxValue.Ticks;
        var abortDelays = new System.Collections.Concurrent.ConcurrentBag<TimeSpan>();
        await using var upstream = await ScriptedUpstream.StartAsync(async (request, context) =>
        {
            using var _ = context.RequestAborted.Register(() => abortDelays.Add(TimeSpan.FromTicks(DateTime.UtcNow.Ticks - Interlocked.Read(ref resetAtTicks))));
            Interlocked.Increment(ref active);
            try
            {
                await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("hello ")], done: false);
                await Task.Delay(TimeSpan.FromSeconds(60), context.RequestAborted);
            }
            finally
            {
                Interlocked.Decrement(ref active);
            }
        });

        var prefix = AzuriteFixture.NewPrefix();
        var spool = Path.Combine(Path.GetTempPath(), "melious-spool-" + prefix);
        await using var gateway = await SelfHostProcess.StartAsync(SelfHostProcess.EnvironmentFor(azurite.ConnectionString, prefix, upstream.OpenAIBaseUrl, spool));
        var key = await CreateKeyAsync(azurite.ConnectionString, prefix);
        var request = RawHttp.Request(key, Infrastructure.Scenario.Body(stream: true).ToJsonString());

        var figures = new List<(long Rss, int Threads, int Established, TimeSpan Settle)>();
        var streamed = 0;
        for (var round = 0; round < rounds; round++)
        {
            var sockets = new Socket[connections];
            using (var gate = new SemaphoreSlim(64))
            {
                await Task.WhenAll(Enumerable.Range(0, connections).Select(async i =>
                {
                    await gate.WaitAsync(Ct);
                    try
                    {
                        sockets[i] = await RawHttp.ConnectAsync(gateway.Port, cancellationToken: Ct);
                        await sockets[i].SendAsync(request, Ct);
                    }
                    finally
                    {
                        gate.Release();
                    }
                }));
            }

            // Two thirds wait for the stream to start (the upstream request is open), one third drop at once.
            var waiters = Enumerable.Range(0, connections).Where(i => i % 3 != 0).Select(async i =>
            {
                var seen = await RawHttp.ReadUntilAsync(sockets[i], "text_delta", 1, TimeSpan.FromSeconds(60), Ct);
                return seen.Contains("text_delta", StringComparison.Ordinal);
            }).ToList();
            foreach (var i in Enumerable.Range(0, connections).Where(i => i % 3 == 0))
            {
                RawHttp.Reset(sockets[i]);
            }

            var started = (await Task.WhenAll(waiters)).Count(x => x);
            streamed += started;
            Assert.Equal(waiters.Count, started);
            var peakActive = Volatile.Read(ref active);
            abortDelays.Clear();
            Interlocked.Exchange(ref resetAtTicks, DateTime.UtcNow.Ticks);
            foreach (var socket in sockets)
            {
                RawHttp.Reset(socket);
            }

            var clock = Stopwatch.StartNew();
            var settled = await WaitUntilAsync(() => Volatile.Read(ref active) == 0, TimeSpan.FromSeconds(20), pollMs: 100);
            var settle = clock.Elapsed;
            await Task.Delay(1000, Ct);
            figures.Add((gateway.RssBytes, gateway.Threads, ProcStats.EstablishedTo(upstream.Port), settle));
            var delays = abortDelays.ToArray();
            Figure($"churn round {round + 1}: {connections} connections, {started} streams started, peak upstream requests {peakActive}; after the drop: " +
                   $"upstream requests {Volatile.Read(ref active)}, established to upstream {figures[^1].Established} (settled in {settle.TotalMilliseconds:0} ms; " +
                   $"{delays.Count(d => d > TimeSpan.FromSeconds(1))} of {delays.Length} upstream requests aborted more than 1 s after their client), " +
                   $"gateway RSS {Mb(figures[^1].Rss)}, threads {figures[^1].Threads}");
            Assert.True(settled, $"round {round + 1}: {Volatile.Read(ref active)} upstream requests still open 20 s after the clients left");

            // What stays connected is the gateway's idle pool (connection attempts that finished after their request
            // was cancelled are pooled for reuse): bounded, not one per dropped client, and not accumulating.
            Assert.True(figures[^1].Established <= connections / 2, $"round {round + 1}: {figures[^1].Established} connections to the upstream with no request on them");
        }

        // No growth once warm: rounds 4-6 are flat (a leak of even 10 KB per connection would add 5 MB per round).
        var warm = figures.Skip(3).ToList();
        Assert.True(warm.Max(f => f.Rss) - warm.Min(f => f.Rss) < 32L * 1024 * 1024, "RSS still growing in rounds 4-6: " + string.Join(", ", figures.Select(f => Mb(f.Rss))));
        Assert.True(figures[^1].Rss - figures[0].Rss < 128L * 1024 * 1024, "RSS grew too much: " + string.Join(", ", figures.Select(f => Mb(f.Rss))));
        Assert.True(warm.Max(f => f.Threads) - figures[0].Threads <= 10, "threads grew: " + string.Join(", ", figures.Select(f => f.Threads)));
        Assert.True(warm.Max(f => f.Established) <= figures.Take(3).Max(f => f.Established) + 64, "idle upstream connections accumulate: " + string.Join(", ", figures.Select(f => f.Established)));
        Assert.True(gateway.IsRunning);

        // Every stream that started is billed once, as cancelled.
        var storage = StorageFor(azurite.ConnectionString, prefix);
        var rows = await Usage.UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Count >= streamed, TimeSpan.FromSeconds(60));
        Figure($"churn billing: {rows.Count} rows, {rows.Count(r => r.GetBoolean("Cancelled") == true)} cancelled, statuses {string.Join(", ", rows.GroupBy(r => r.GetInt32("Status")).Select(g => $"{g.Key}×{g.Count()}"))}");
        Assert.InRange(rows.Count, streamed, rounds * connections);
        Assert.All(rows, r => Assert.True(r.GetBoolean("Cancelled"), $"row {r.RowKey}: Status={r.GetInt32("Status")} ErrorType={r.GetString("ErrorType")} not cancelled"));
        Assert.DoesNotContain("failed inside the gateway", gateway.Output, StringComparison.Ordinal);
    }

    internal static async Task<string> CreateKeyAsync(string connectionString, string prefix, Melious.Gateway.Auth.KeyLimits? limits = null)
    {
        var storage = StorageFor(connectionString, prefix);
        await storage.Table(TableNames.ApiKeys).CreateIfNotExistsAsync(Ct);
        var (key, _) = await new Melious.Gateway.Auth.ApiKeyStore(storage).CreateAsync("acme", "reliability", limits, Ct);
        return key;
    }
}

/// <summary>CPU-heavy tests run one at a time.</summary>
public static class HeavyCollection
{
    public const string Name = "Reliability heavy";
}

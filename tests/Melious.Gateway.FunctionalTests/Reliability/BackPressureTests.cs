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
        var baselineHeap = await gateway.MeasureAsync();
        ProcessFigures? stalledHeap = null;

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
                if (stalledHeap is null && clock.Elapsed > TimeSpan.FromSeconds(6))
                {
                    // What the gateway really holds while stalled: its live heap after a full GC.
                    stalledHeap = await gateway.MeasureAsync();
                }

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
               $"over the last 3 s {Mb(lastSeconds.Min(x => x.Rss))}..{Mb(lastSeconds.Max(x => x.Rss))}; live heap {Mb(baselineHeap.HeapBytes)} before, {Mb(stalledHeap!.HeapBytes)} while stalled");

        // Back-pressure reached the upstream: it could not push its 100 MB, and made no progress over the last 3 s.
        Assert.True(stalledAt < upstreamTarget / 2, $"the upstream pushed {Mb(stalledAt)}: the gateway is buffering");
        Assert.Equal(lastSeconds[0].Upstream, lastSeconds[^1].Upstream);

        // No unbounded buffering in the gateway: while stalled, its live heap holds about one pipe's worth (Kestrel's
        // 64 KB response buffer plus the parser's read buffer), not the megabytes the upstream pushed. RSS, which
        // also moves with the GC's budgets and background work, stays near the warmed-up baseline.
        Assert.True(stalledHeap.HeapBytes - baselineHeap.HeapBytes < 2L * 1024 * 1024, $"live heap grew by {Mb(stalledHeap.HeapBytes - baselineHeap.HeapBytes)} while the upstream pushed {Mb(stalledAt)}");
        Assert.True(peak - baseline < 32L * 1024 * 1024, $"gateway RSS grew by {Mb(peak - baseline)} while a client read {clientRead} bytes");

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
        await using var upstream = await ScriptedUpstream.StartAsync(async (_, context) =>
        {
            using var registration = context.RequestAborted.Register(() => abortDelays.Add(TimeSpan.FromTicks(DateTime.UtcNow.Ticks - Interlocked.Read(ref resetAtTicks))));
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

        var storage = StorageFor(azurite.ConnectionString, prefix);
        var start = await gateway.MeasureAsync();
        var startThreads = ThreadsByName(gateway.Pid);
        var threadCounts = new List<Dictionary<string, int>>();
        var figures = new List<(ProcessFigures Process, int Established, TimeSpan Settle)>();
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

                        // A third stop half-way through their body (they vanish mid-upload); the rest send it all.
                        await sockets[i].SendAsync(i % 3 == 0 ? request.AsMemory(0, request.Length - 20) : request, Ct);
                    }
                    finally
                    {
                        gate.Release();
                    }
                }));
            }

            // Two thirds wait for the stream to start (the upstream request is open); then every client vanishes.
            var waiters = Enumerable.Range(0, connections).Where(i => i % 3 != 0).Select(async i =>
            {
                var seen = await RawHttp.ReadUntilAsync(sockets[i], "text_delta", 1, TimeSpan.FromSeconds(60), Ct);
                return seen.Contains("text_delta", StringComparison.Ordinal);
            }).ToList();
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

            // Measure once the usage pipeline is idle too (billing rows stopped growing), so that events in flight
            // are not counted as retained memory.
            var billed = -1;
            await WaitUntilAsync(async () =>
            {
                var before = billed;
                await Task.Delay(1500, Ct);
                billed = await CountRowsAsync(storage);
                return billed == before;
            }, TimeSpan.FromSeconds(30), pollMs: 0);
            figures.Add((await gateway.MeasureAsync(), ProcStats.EstablishedTo(upstream.Port), settle));
            threadCounts.Add(ThreadsByName(gateway.Pid));
            var delays = abortDelays.ToArray();
            Figure($"churn round {round + 1}: {connections} connections, {started} streams started, peak upstream requests {peakActive}; after the drop: " +
                   $"upstream requests {Volatile.Read(ref active)}, established to upstream {figures[^1].Established} (settled in {settle.TotalMilliseconds:0} ms; " +
                   $"{delays.Count(d => d > TimeSpan.FromSeconds(1))} of {delays.Length} upstream requests aborted more than 1 s after their client), " +
                   $"gateway live heap {Mb(figures[^1].Process.HeapBytes)}, RSS {Mb(figures[^1].Process.RssBytes)}, threads {figures[^1].Process.Threads} ({figures[^1].Process.PoolThreads} in the pool)");
            Assert.True(settled, $"round {round + 1}: {Volatile.Read(ref active)} upstream requests still open 20 s after the clients left");

            // What stays connected is the gateway's idle pool (connection attempts that finished after their request
            // was cancelled are pooled for reuse): bounded, not one per dropped client, and not accumulating.
            Assert.True(figures[^1].Established <= connections / 2, $"round {round + 1}: {figures[^1].Established} connections to the upstream with no request on them");
        }

        // No growth once warm: the live heap after rounds 4-6 stays where round 3 left it (a leak of even 2 KB per
        // connection would add 1 MB a round), and so does the thread count. Per-request state lives in small objects.
        var heaps = string.Join(", ", figures.Select(f => $"{Mb(f.Process.HeapBytes)} ({Mb(f.Process.SmallObjectHeapBytes)} small)"));
        Figure($"churn: live heap {Mb(start.HeapBytes)} at start, after each round {heaps}; threads {start.Threads} ({start.PoolThreads} pool) at start, after each round {string.Join(", ", figures.Select(f => $"{f.Process.Threads} ({f.Process.PoolThreads} pool)"))}; by name at start: {Describe(startThreads)}, after the last round: {Describe(threadCounts[^1])}");
        Assert.True(figures[^1].Process.SmallObjectHeapBytes - figures[2].Process.SmallObjectHeapBytes < 2L * 1024 * 1024, "live heap grows round after round: " + heaps);
        // A leak accumulates, so the check above (round 6 against round 3, 2 MB: 1.4 KB per dropped connection over
        // three rounds) catches it. Any single round may sit higher while the loaded machine still finishes the work of
        // the drop (billing events, connection teardown): under stress-ng plus other builds (load average ~50) round 5
        // measured 7.9 MB against 5.5 MB in round 3, and round 6 was back at 5.7 MB. So a single round gets 4 MB over
        // round 3 (the former spread bound between rounds 4-6 was 2 MB and failed on exactly that).
        Assert.True(figures.Skip(3).Max(f => f.Process.SmallObjectHeapBytes) - figures[2].Process.SmallObjectHeapBytes < 4L * 1024 * 1024, "live heap grows round after round: " + heaps);
        Assert.True(figures[^1].Process.HeapBytes - figures[2].Process.HeapBytes < 8L * 1024 * 1024, "live heap grows round after round: " + heaps);
        // Thread-pool threads come and go with load (hill climbing); the process's other threads must not grow at all.
        // They are counted by name from /proc/<pid>/task/*/comm, read in one pass: subtracting ThreadPool.ThreadCount
        // (read in-process, at another moment) from the process's thread count mixed two instants, so a pool thread
        // created or retired between them counted as a dedicated one. The runtime's own on-demand workers are left
        // out too: the tiered-compilation worker exists only while methods are being recompiled, which on a loaded
        // machine lasts longer and lands in any round. The bound (+2 over the start) is unchanged; one of the two goes to
        // the background GC thread (.NET BGC), which the runtime starts with the first background collection.
        var dedicated = threadCounts.Select(DedicatedThreads).ToList();
        Assert.True(dedicated.Max() - DedicatedThreads(startThreads) <= 2, "non-pool threads grow: " + string.Join(", ", dedicated) +
            $"; at the start: {Describe(startThreads)}; after the last round: {Describe(threadCounts[^1])}");
        Assert.True(figures.Max(f => f.Process.PoolThreads) <= 64, "thread pool grew to " + figures.Max(f => f.Process.PoolThreads));
        Assert.True(figures.Max(f => f.Established) <= figures.Take(3).Max(f => f.Established) + 64, "idle upstream connections accumulate: " + string.Join(", ", figures.Select(f => f.Established)));
        Assert.True(gateway.IsRunning);

        // Every stream that started is billed once, as cancelled (a client that vanishes is a cancel, never an error).
        var rows = await Usage.UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Count >= streamed, TimeSpan.FromSeconds(60));
        Figure($"churn billing: {rows.Count} rows, {rows.Count(r => r.GetBoolean("Cancelled") == true)} cancelled, statuses {string.Join(", ", rows.GroupBy(r => r.GetInt32("Status")).Select(g => $"{g.Key}×{g.Count()}"))}");
        Assert.InRange(rows.Count, streamed, rounds * connections);
        var notCancelled = rows.Where(r => r.GetBoolean("Cancelled") != true).ToList();
        var output = gateway.Output;
        SaveLog("churn-gateway.log", output);
        var crash = output.IndexOf("failed inside the gateway", StringComparison.Ordinal);
        var crashLog = crash < 0 ? "" : output[Math.Max(0, crash - 200)..Math.Min(output.Length, crash + 1500)];
        Figure($"churn: gateway errors logged: {output.Split('\n').Count(l => l.StartsWith("fail:", StringComparison.Ordinal))}{(crash < 0 ? "" : "; first internal error:\n" + crashLog)}");
        Assert.True(notCancelled.Count == 0, $"{notCancelled.Count} of {rows.Count} requests whose client vanished are not billed as cancelled: " +
            string.Join(", ", notCancelled.GroupBy(r => $"Status={r.GetInt32("Status")} ErrorType={r.GetString("ErrorType")}").Select(g => $"{g.Key} ×{g.Count()}")) +
            (crash < 0 ? "" : "\n" + crashLog));
        Assert.DoesNotContain("failed inside the gateway", output, StringComparison.Ordinal);
    }

    /// <summary>The process's threads by name (comm), read from /proc in one pass.</summary>
    private static Dictionary<string, int> ThreadsByName(int pid)
    {
        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            string name;
            try
            {
                name = File.ReadAllText(Path.Combine(task, "comm")).Trim();
            }
            catch (IOException)
            {
                continue; // the thread ended while being listed
            }

            names[name] = names.GetValueOrDefault(name) + 1;
        }

        return names;
    }

    /// <summary>Threads that are neither thread-pool workers nor the runtime's on-demand tiered-compilation worker.</summary>
    private static int DedicatedThreads(Dictionary<string, int> names) =>
        names.Where(n => !n.Key.StartsWith(".NET TP Worker", StringComparison.Ordinal) && !n.Key.StartsWith(".NET Tiered Com", StringComparison.Ordinal)).Sum(n => n.Value);

    private static string Describe(Dictionary<string, int> names) => string.Join(", ", names.OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => $"{n.Key}×{n.Value}"));

    private static void SaveLog(string name, string text)
    {
        try
        {
            File.WriteAllText(Path.Combine(RepoPaths.Root, "artifacts", name), text);
        }
        catch (IOException)
        {
        }
    }

    private static async Task<int> CountRowsAsync(StorageClients storage)
    {
        var count = 0;
        await foreach (var _ in storage.Table(TableNames.Billing).QueryAsync<Azure.Data.Tables.TableEntity>(select: ["RowKey"], cancellationToken: Ct))
        {
            count++;
        }

        return count;
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

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Azure.Data.Tables;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Http;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Routing;
using Melious.Gateway.Storage;
using Microsoft.Extensions.DependencyInjection;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>
/// Storage (tables and queue) unreachable for a full minute while traffic keeps flowing, against a disk-persisted
/// Azurite that is killed and restarted on the same ports. The long pole of the suite (≈90 s), in its own collection
/// so it overlaps with the rest.
/// </summary>
[Collection("Reliability storage outage")]
public sealed class StorageOutageTests
{
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task SixtySecondStorageOutage_ServingContinues_UnknownKeysGet503_AndEveryUsageEventArrivesExactlyOnce()
    {
        var location = Path.Combine(Path.GetTempPath(), "melious-azurite-" + Guid.NewGuid().ToString("N")[..8]);
        var spool = Path.Combine(Path.GetTempPath(), "melious-spool-outage-" + Guid.NewGuid().ToString("N")[..8]);
        TestGateway? spooling = null;
        var spoolingDisposed = false;
        await using var azurite = new AzuriteProcess(location);
        var ports = (azurite.BlobPort, azurite.QueuePort, azurite.TablePort);
        await azurite.StartAsync();
        try
        {
            var upstreamModels = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
            await using var upstream = await ScriptedUpstream.StartAsync(async (request, context) =>
            {
                upstreamModels.AddOrUpdate(request.Json.GetProperty("model").GetString()!, 1, (_, n) => n + 1);
                await Sse.WriteAsync(context, Sse.TextAnswer(["served"], prompt: 40));
            });
            await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, upstream.OpenAIBaseUrl);

            // The catalog in the table maps sonnet to a model the configuration does not know: routing during the
            // outage must use this cached mapping, not fall back to configuration.
            await gateway.Services.GetRequiredService<ModelCatalogStore>().SetTierAsync("sonnet", "table-mapped-model", Ct);
            Assert.True(await gateway.Services.GetRequiredService<ModelCatalog>().RefreshAsync(Ct));

            // A second instance with the same storage, stopped gracefully near the end of the outage: its waiting
            // events go to its spool directory, and a new instance started on that directory resends them.
            spooling = await TestGateway.StartAsync(azurite.ConnectionString, upstream.OpenAIBaseUrl, new Dictionary<string, string?> { ["Melious:Usage:SpoolDirectory"] = spool }, gateway.Prefix);

            var key = await gateway.CreateKeyAsync();
            var neverSeen = await gateway.CreateKeyAsync(name: "never-used-before-the-outage");
            const string KnownBad = "sk-mel-thiskeywasrejectedbeforetheoutagexxxxxxxxxx";
            using var client = gateway.Client(key);
            using var spoolingClient = spooling.Client(key);
            using var neverSeenClient = gateway.Client(neverSeen);
            using var knownBadClient = gateway.Client(KnownBad);

            // Before: a few requests (key and catalog cached), a rejected key (negatively cached).
            var billed = new ConcurrentBag<string>();
            for (var i = 0; i < 4; i++)
            {
                using var response = await client.SendAsync(Post(Scenario.Body(stream: i % 2 == 0).ToJsonString()), Ct);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                billed.Add(RequestId(response));
            }

            using (var warm = await spoolingClient.SendAsync(Post(Scenario.Body().ToJsonString()), Ct))
            {
                Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
                billed.Add(RequestId(warm));
            }

            await ErrorAssert.IsErrorAsync(await knownBadClient.SendAsync(Post(Scenario.Body().ToJsonString()), Ct), HttpStatusCode.Unauthorized, "authentication_error");
            await gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
            await spooling.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
            var storage = StorageFor(gateway);
            await Usage.UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Count >= 5, TimeSpan.FromSeconds(30));

            // Azurite saves to disk every 5 s: let it, so what existed before the kill survives it.
            await Task.Delay(TimeSpan.FromSeconds(6), Ct);
            await azurite.StopAsync();
            var outageStarted = Stopwatch.StartNew();

            // During: two requests a second for 60 s, alternating stream and non-stream; the policy probes on the side.
            var results = new ConcurrentBag<(HttpStatusCode Status, string RequestId, TimeSpan Latency, TimeSpan At)>();
            var spooledIds = new ConcurrentBag<string>();
            var probes = new List<string>();
            var inflight = new List<Task>();
            var n = 0;
            while (outageStarted.Elapsed < Outage)
            {
                var at = outageStarted.Elapsed;
                var stream = n++ % 2 == 0;
                inflight.Add(Task.Run(async () =>
                {
                    var clock = Stopwatch.StartNew();
                    using var response = await client.SendAsync(Post(Scenario.Body(stream: stream).ToJsonString()), Ct);
                    var text = await response.Content.ReadAsStringAsync(Ct);
                    Assert.True(response.StatusCode == HttpStatusCode.OK, $"at {at.TotalSeconds:0.0} s into the outage: {(int)response.StatusCode} {text}");
                    Assert.Contains(stream ? "message_stop" : "\"end_turn\"", text, StringComparison.Ordinal);
                    results.Add((response.StatusCode, RequestId(response), clock.Elapsed, at));
                }));

                if (n % 10 == 5 && outageStarted.Elapsed < Outage - TimeSpan.FromSeconds(12))
                {
                    inflight.Add(Task.Run(async () =>
                    {
                        using var viaSecond = await spoolingClient.SendAsync(Post(Scenario.Body().ToJsonString()), Ct);
                        Assert.Equal(HttpStatusCode.OK, viaSecond.StatusCode);
                        spooledIds.Add(RequestId(viaSecond));
                    }));
                }

                if (!spoolingDisposed && outageStarted.Elapsed > Outage - TimeSpan.FromSeconds(10))
                {
                    spoolingDisposed = true;
                    var stopping = spooling;
                    inflight.Add(Task.Run(async () => await stopping.DisposeAsync()));
                }

                if (n is 10 or 90)
                {
                    inflight.Add(Task.Run(async () =>
                    {
                        // A key never seen before cannot be verified: 503 api_error with retry-after, never a 500 or a 401.
                        using var unseen = await neverSeenClient.SendAsync(Post(Scenario.Body().ToJsonString()), Ct);
                        await ErrorAssert.IsErrorAsync(unseen, HttpStatusCode.ServiceUnavailable, "api_error");
                        Assert.NotNull(unseen.Headers.RetryAfter);
                        lock (probes)
                        {
                            probes.Add($"unseen key at {outageStarted.Elapsed.TotalSeconds:0} s: 503 api_error retry-after {unseen.Headers.RetryAfter}");
                        }

                        // A key already known to be wrong stays a 401 (its negative cache entry is trusted while storage is down).
                        using var bad = await knownBadClient.SendAsync(Post(Scenario.Body().ToJsonString()), Ct);
                        await ErrorAssert.IsErrorAsync(bad, HttpStatusCode.Unauthorized, "authentication_error");
                        lock (probes)
                        {
                            probes.Add($"known-bad key at {outageStarted.Elapsed.TotalSeconds:0} s: 401");
                        }
                    }));
                }

                // On a fixed schedule (request n at n × 500 ms), so that late wake-ups on a busy machine do not add up
                // and thin out the two requests a second the count below relies on.
                var wait = TimeSpan.FromMilliseconds(500 * n) - outageStarted.Elapsed;
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, Ct);
                }
            }

            await Task.WhenAll(inflight);
            var outage = outageStarted.Elapsed;
            var published = gateway.Publisher.Published;
            var delivered = gateway.Publisher.Delivered;
            var spoolFiles = Directory.Exists(spool) ? Directory.GetFiles(spool, "*.json").Length : 0;

            // After: restart on the same ports, then every event of the outage must arrive (the spooled ones through
            // a new instance started on the spool directory).
            await azurite.StartAsync();
            Assert.Equal(ports, (azurite.BlobPort, azurite.QueuePort, azurite.TablePort));
            var recovery = Stopwatch.StartNew();
            await using var resender = await TestGateway.StartAsync(azurite.ConnectionString, upstream.OpenAIBaseUrl, new Dictionary<string, string?> { ["Melious:Usage:SpoolDirectory"] = spool, ["Melious:Usage:RunConsumer"] = "false" }, gateway.Prefix);
            foreach (var id in results.Select(r => r.RequestId).Concat(spooledIds))
            {
                billed.Add(id);
            }

            var expected = billed.ToHashSet(StringComparer.Ordinal);
            List<TableEntity> rows = [];
            var complete = await WaitUntilAsync(async () => (rows = await Usage.UsageTables.AllAsync(storage, TableNames.Billing)).Count >= expected.Count, TimeSpan.FromSeconds(90), pollMs: 500);
            var recoveredIn = recovery.Elapsed;
            await Task.Delay(2000, Ct);
            rows = await Usage.UsageTables.AllAsync(storage, TableNames.Billing);
            var rowKeys = rows.Select(r => r.RowKey).ToList();
            var lost = expected.Except(rowKeys).ToList();
            var extra = rowKeys.Except(expected).ToList();
            var duplicates = rowKeys.Count - rowKeys.Distinct().Count();
            var daily = await Usage.UsageTables.AllAsync(storage, TableNames.UsageDaily);
            var counted = daily.Sum(d => Long(d, "Requests"));
            var latencies = results.Select(r => r.Latency.TotalMilliseconds).Order().ToList();

            Figure($"storage outage: {outage.TotalSeconds:0.0} s; {results.Count} requests during it, all 200; latency p50 {latencies[latencies.Count / 2]:0} ms, " +
                   $"p95 {latencies[(int)(latencies.Count * 0.95)]:0} ms, max {latencies[^1]:0} ms; upstream models {string.Join(", ", upstreamModels.Select(m => $"{m.Key}×{m.Value}"))}");
            var early = results.Where(r => r.At < TimeSpan.FromSeconds(10)).Select(r => r.Latency.TotalMilliseconds).Order().ToList();
            var late = results.Where(r => r.At > TimeSpan.FromSeconds(35)).Select(r => r.Latency.TotalMilliseconds).Order().ToList();
            Figure($"storage outage: latency in the first 10 s (key still fresh in the cache) p50 {early[early.Count / 2]:0} ms, max {early[^1]:0} ms; " +
                   $"after 35 s (cache entry expired, served stale after a failed lookup) p50 {late[late.Count / 2]:0} ms, max {late[^1]:0} ms");
            Figure($"storage outage: auth probes: {string.Join("; ", probes)}");
            Assert.Equal(4, probes.Count);
            Figure($"storage outage: a second instance served {spooledIds.Count} requests and was stopped gracefully 10 s before the end: {spoolFiles} spool files, resent by a new instance after the restart");
            Figure($"storage outage: publisher had {published - delivered} events waiting at the restart; all arrived {recoveredIn.TotalSeconds:0.0} s after it; " +
                   $"{expected.Count} events expected, {rows.Count} billing rows, lost {lost.Count}, unexpected {extra.Count}, duplicated {duplicates}, usagedaily counts {counted} requests");

            Assert.True(spoolFiles > 0, "the instance stopped during the outage spooled nothing");
            Assert.True(complete, $"{lost.Count} usage events missing 90 s after storage came back ({lost.Count(spooledIds.Contains)} of them spooled)");
            Assert.Empty(lost);
            Assert.Empty(extra);
            Assert.Equal(0, duplicates);
            Assert.Equal(expected.Count, counted);
            Assert.True(results.Count >= 110, $"only {results.Count} requests were sent during the outage");

            // Routing used the cached table mapping throughout.
            Assert.Equal(["table-mapped-model"], upstreamModels.Keys);
            Assert.All(rows, r => Assert.Equal("table-mapped-model", r.GetString("UpstreamModel")));

            // Storage is back: the key nobody had seen now works; state from before the kill survived.
            using var unseenAfter = await neverSeenClient.SendAsync(Post(Scenario.Body().ToJsonString()), Ct);
            Assert.Equal(HttpStatusCode.OK, unseenAfter.StatusCode);
        }
        finally
        {
            if (spooling is not null && !spoolingDisposed)
            {
                await spooling.DisposeAsync();
            }

            await azurite.StopAsync();
            foreach (var directory in new[] { spool, location }.Where(Directory.Exists))
            {
                try
                {
                    Directory.Delete(directory, recursive: true);
                }
                catch (IOException)
                {
                }
            }
        }
    }
}

using System.Diagnostics;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.FunctionalTests.Usage;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>
/// The usage consumer (the self-host as its own OS process) killed with SIGKILL while it writes, twice, then restarted:
/// the queue drains and every event is in the ledger exactly once, with rollups equal to the sums.
/// </summary>
[Collection("Reliability consumer crash")]
public sealed class ConsumerCrashTests(AzuriteFixture azurite)
{
    private const int Events = 3_000;
    private const int EventsPerMessage = 16;

    [Fact]
    public async Task ConsumerKilledMidBatch_TwiceThenRestarted_LosesNothing_AndCountsNothingTwice()
    {
        var prefix = AzuriteFixture.NewPrefix();
        var storage = StorageFor(azurite.ConnectionString, prefix);
        foreach (var table in TableNames.All)
        {
            await storage.Table(table).CreateIfNotExistsAsync(Ct);
        }

        var queue = storage.Queue(prefix + "-usage");
        var poison = storage.Queue(prefix + "-usage-poison");
        await queue.CreateIfNotExistsAsync(cancellationToken: Ct);
        await poison.CreateIfNotExistsAsync(cancellationToken: Ct);

        var events = UsagePipelineTests.SyntheticEvents(Events).ToList();
        var messages = events.Chunk(EventsPerMessage).Select(c => JsonSerializer.SerializeToUtf8Bytes(new UsageMessage([.. c]), UsageJsonContext.Default.UsageMessage)).ToList();
        using (var gate = new SemaphoreSlim(16))
        {
            await Task.WhenAll(messages.Select(async m =>
            {
                await gate.WaitAsync(Ct);
                try
                {
                    await queue.SendMessageAsync(BinaryData.FromBytes(m), cancellationToken: Ct);
                }
                finally
                {
                    gate.Release();
                }
            }));
        }

        var environment = SelfHostProcess.EnvironmentFor(azurite.ConnectionString, prefix, "http://127.0.0.1:9/v1", Path.Combine(Path.GetTempPath(), "melious-spool-" + prefix));
        environment["Melious__Usage__ConsumerVisibilityTimeout"] = "00:00:05";
        await using var consumer = await SelfHostProcess.StartAsync(environment);

        // Kill it while it writes: once early in its first batches, once later; each time mid-flight.
        var kills = new List<string>();
        foreach (var threshold in new[] { 40, Events / 2 })
        {
            var rows = 0;
            // A wait for the moment to kill, not a speed check: each event now also writes the dashboard's per-day key
            // and requested-model counters, and on two loaded cores the consumer wrote ~1,200 rows in 90 s.
            var writing = await WaitUntilAsync(async () => (rows = await CountAsync(storage)) >= threshold, TimeSpan.FromSeconds(240), pollMs: 25);
            Assert.True(writing, $"the consumer wrote only {rows} rows in 240 s:\n{consumer.Output}");
            await consumer.KillAsync();
            var afterKill = await CountAsync(storage);
            var markers = await CountAsync(storage, TableNames.UsageLedger, "r|");
            var left = (await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount;
            kills.Add($"SIGKILL at {afterKill} billing rows / {markers} counted in the ledger / {left} messages not deleted");
            await Task.Delay(500, Ct);
            await consumer.RestartAsync();
        }

        // Let the restarted consumer drain the queue (redeliveries appear after the 5 s visibility timeout).
        var clock = Stopwatch.StartNew();
        var drained = await WaitUntilAsync(async () => (await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount == 0 && await CountAsync(storage) >= Events, TimeSpan.FromSeconds(300), pollMs: 250);
        var drainTime = clock.Elapsed;
        var running = consumer.IsRunning;
        var output = consumer.Output;
        var remaining = (await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount;
        var visible = (await queue.PeekMessagesAsync(32, Ct)).Value;
        var markersLeft = await CountAsync(storage, TableNames.UsageLedger, "r|");
        output = $"{remaining} messages left ({visible.Length} visible, dequeue counts {string.Join(",", visible.Select(m => m.DequeueCount))}); {markersLeft} ledger markers\n" + output;
        await consumer.KillAsync();

        var billing = await UsageTables.AllAsync(storage, TableNames.Billing);
        var unique = billing.Select(b => b.RowKey).Distinct().Count();
        var daily = await UsageTables.AllAsync(storage, TableNames.UsageDaily);
        var counted = daily.Sum(d => UsageTables.Long(d, "Requests"));
        var poisoned = (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount;
        Figure($"consumer crash: {Events} events in {messages.Count} messages; {string.Join("; ", kills)}; drained {drainTime.TotalSeconds:0.0} s after the last restart; " +
               $"{billing.Count} billing rows ({unique} unique), lost {Events - unique}, usagedaily counts {counted} requests (double-counted {counted - Events}), {poisoned} poisoned");

        Assert.True(drained, $"the queue did not drain within 300 s of the last restart; {(running ? "the consumer was running" : "the consumer had exited")}; " +
            $"{output.Split('\n')[0]}; its warnings and errors:\n{string.Join('\n', output.Split('\n').Where(l => l.Contains("warn", StringComparison.Ordinal) || l.Contains("fail", StringComparison.Ordinal) || l.Contains("crit", StringComparison.Ordinal)).TakeLast(40))}");
        Assert.Equal(0, poisoned);
        Assert.Equal(Events, counted);
        await UsagePipelineTests.AssertTotalsMatchAsync(storage, events);
    }

    private static async Task<int> CountAsync(StorageClients storage, string table = TableNames.Billing, string rowKeyPrefix = "")
    {
        var count = 0;
        await foreach (var row in storage.Table(table).QueryAsync<Azure.Data.Tables.TableEntity>(select: ["RowKey"], cancellationToken: Ct))
        {
            if (row.RowKey.StartsWith(rowKeyPrefix, StringComparison.Ordinal))
            {
                count++;
            }
        }

        return count;
    }
}

using Azure.Data.Tables;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Melious.Gateway.FunctionalTests.Usage;

/// <summary>
/// Many writers counting events of one key at once (many consumer instances, or a Functions host's batch of
/// messages): every event is counted once, and contention is waited out, not turned into a failure that poisons the
/// message. Real Azurite.
/// </summary>
public sealed class LedgerContentionTests(AzuriteFixture azurite)
{
    private const int Writers = 50;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task FiftyParallelWrites_ForOneKey_NoneFails_AndTheLedgerCountsFifty()
    {
        var (storage, sample, events) = await SetUpAsync();
        var failures = await WriteInParallelAsync(new UsageWriter(storage, NullLogger<UsageWriter>.Instance), events);

        Assert.True(failures.Count == 0, $"{failures.Count} of {Writers} writes failed; first: {failures.FirstOrDefault()}");
        await AssertCountedOnceAsync(storage, sample);
    }

    [Fact]
    public async Task ContentionOutlastingTheAttempts_IsStorageTrouble_AndTheRedeliveryCountsEachEventOnce()
    {
        var (storage, sample, events) = await SetUpAsync();

        // Two attempts per counter update: most of fifty writers at once run out of them.
        var failures = await WriteInParallelAsync(new UsageWriter(storage, NullLogger<UsageWriter>.Instance) { MaxAttempts = 2 }, events);

        Assert.NotEmpty(failures);
        Assert.All(failures, f => Assert.True(UsageQueueConsumer.IsTransient(f), $"contention must be redelivered, not poisoned: {f}"));

        // What the consumer then does: the same messages again (all of them: some were written, some not).
        var retry = await WriteInParallelAsync(new UsageWriter(storage, NullLogger<UsageWriter>.Instance), events);
        Assert.Empty(retry);
        await AssertCountedOnceAsync(storage, sample);
    }

    /// <summary>
    /// A redelivered batch whose events were mostly counted already (a consumer killed after its ledger write, before
    /// its deletes) is written in one go: each counted event found leaves the batch without costing an attempt. It used
    /// to cost one, so a batch with more counted events than attempts failed every delivery (a livelock once that
    /// failure counted as storage trouble: the consumer-crash test's queue never drained).
    /// </summary>
    [Fact]
    public async Task ARedeliveredBatch_WithMoreCountedEventsThanAttempts_IsWritten_AndCountsEachEventOnce()
    {
        var (storage, sample, events) = await SetUpAsync();
        var writer = new UsageWriter(storage, NullLogger<UsageWriter>.Instance) { MaxAttempts = 2 };
        await writer.WriteAsync(events.Take(Writers - 5).ToList(), Ct);

        await writer.WriteAsync(events, Ct);

        await AssertCountedOnceAsync(storage, sample);
    }

    private async Task<(StorageClients Storage, UsageEvent Sample, List<UsageEvent> Events)> SetUpAsync()
    {
        var storage = new StorageClients(new StorageOptions { ConnectionString = azurite.ConnectionString, TablePrefix = AzuriteFixture.NewPrefix() });
        foreach (var table in TableNames.All)
        {
            await storage.Table(table).CreateIfNotExistsAsync(Ct);
        }

        // One account, key, session, model and day: every event touches the same five ledger counters.
        var sample = UsagePipelineTests.SyntheticEvents(1, Guid.NewGuid().ToString("N")[..8]).Single() with { SessionId = "one-session" };
        var events = Enumerable.Range(0, Writers).Select(i => sample with { RequestId = Ids.NewRequestId(), StartedAt = sample.StartedAt.AddMilliseconds(i) }).ToList();
        return (storage, sample, events);
    }

    /// <summary>One <see cref="UsageWriter.WriteAsync"/> per event, all released at once; returns what they threw.</summary>
    private static async Task<List<Exception>> WriteInParallelAsync(UsageWriter writer, List<UsageEvent> events)
    {
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var writes = events.Select(e => Task.Run(async () =>
        {
            await start.Task;
            await writer.WriteAsync([e], Ct);
        })).ToList();
        start.SetResult();
        var outcome = await Task.WhenAll(writes.Select(async w =>
        {
            try
            {
                await w;
                return null;
            }
            catch (Exception ex)
            {
                return ex;
            }
        }));

        return outcome.OfType<Exception>().ToList();
    }

    private static async Task AssertCountedOnceAsync(StorageClients storage, UsageEvent sample)
    {
        var partition = UsageRows.LedgerPartition(sample.Account, sample.Month);
        var keyCounter = await storage.Table(TableNames.UsageLedger).GetEntityAsync<TableEntity>(partition, UsageRows.KeyCounter(sample.KeyId, sample.Currency), cancellationToken: Ct);
        Assert.Equal(Writers, UsageTables.Long(keyCounter.Value, "Requests"));
        var session = await storage.Table(TableNames.UsageLedger).GetEntityAsync<TableEntity>(partition, UsageRows.SessionCounter(sample.Day, sample.SessionId!, sample.Currency), cancellationToken: Ct);
        Assert.Equal(Writers, UsageTables.Long(session.Value, "Requests"));
        var daily = Assert.Single(await UsageTables.AllAsync(storage, TableNames.UsageDaily, sample.Account));
        Assert.Equal(Writers, UsageTables.Long(daily, "Requests"));
        Assert.Equal(Writers, (await UsageTables.AllAsync(storage, TableNames.Billing, sample.Account)).Count);
    }
}

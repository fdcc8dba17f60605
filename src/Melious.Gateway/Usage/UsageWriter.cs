using System.Text.Json;
using Azure;
using Azure.Data.Tables;
using Melious.Gateway.Storage;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.Usage;

/// <summary>Thrown for a queue message that can never be written (bad JSON, missing fields). It goes to poison.</summary>
public sealed class UsageMessageException(string message, string? requestId, Exception? inner = null) : Exception(message, inner)
{
    public string? RequestId { get; } = requestId;
}

/// <summary>
/// Thrown when ledger or <c>usagedaily</c> counters stayed contended (other writers kept winning) for all of
/// <see cref="UsageWriter.MaxAttempts"/>: storage trouble, not a bad message, so the message is redelivered and
/// rewritten (idempotently), never poisoned for it.
/// </summary>
public sealed class UsageContentionException(string message) : Exception(message);

/// <summary>
/// Writes usage events to Table Storage. The one implementation behind both the Functions queue trigger and the
/// self-host's queue consumer. Delivery is at-least-once, so every step is idempotent:
/// <list type="number">
/// <item><b>Rows.</b> The <c>billing</c> and <c>energy</c> rows are inserted (never upserted) with RowKey = request id;
/// an insert that finds the row already there (409) is a redelivery and changes nothing.</item>
/// <item><b>Exactly-once counters.</b> Daily totals cannot be incremented blindly: a redelivered or concurrently
/// delivered event would be counted twice. Instead, each event is counted in an entity-group transaction in the
/// internal <c>usageledger</c> table that inserts a marker row <c>r|{requestId}</c> <i>and</i> rewrites the affected
/// counters under their ETags. A marker that already exists fails the whole transaction (409), so an event is
/// counted at most once; a counter changed by another consumer fails it too (412), and the writer re-reads and
/// retries (after a short random pause; <see cref="UsageContentionException"/>, which is redelivered, after
/// <see cref="MaxAttempts"/>), so no update is lost. This was chosen over recomputing rollups from rows because it costs O(1)
/// per event instead of a scan of the day's partition.</item>
/// <item><b>Projection.</b> The finance table <c>usagedaily</c> is a copy of the ledger's per-model counters. A copy
/// replaces the row only if its request count is higher (counts only grow), under ETags, so copies racing from
/// two consumers or arriving out of order converge on the latest totals. A redelivered message re-runs the
/// copy, which repairs a crash between steps 2 and 3.</item>
/// </list>
/// The result: each unique request appears once in <c>billing</c>, once in <c>energy</c>, and once in the totals,
/// however often and in whatever order its message is delivered.
/// </summary>
public sealed partial class UsageWriter(StorageClients storage, ILogger<UsageWriter> logger)
{
    private const int MaxTransactionSize = 100;

    /// <summary>Attempts at a contended counter update before <see cref="UsageContentionException"/> (lower in tests).</summary>
    internal int MaxAttempts { get; init; } = 64;

    private TableClient Billing => storage.Table(TableNames.Billing);

    private TableClient Energy => storage.Table(TableNames.Energy);

    private TableClient Ledger => storage.Table(TableNames.UsageLedger);

    private TableClient Daily => storage.Table(TableNames.UsageDaily);

    /// <summary>Parses a queue message body (JSON, already Base64-decoded) and writes its events.</summary>
    public async Task WriteMessageAsync(BinaryData body, CancellationToken cancellationToken)
    {
        var events = Parse(body);
        await WriteAsync(events, cancellationToken);
    }

    public static IReadOnlyList<UsageEvent> Parse(BinaryData body)
    {
        List<UsageEvent>? events;
        try
        {
            var json = body.ToMemory().Span;
            events = JsonSerializer.Deserialize(json, UsageJsonContext.Default.UsageMessage)?.Events;
            if (events is null && json.IndexOf("\"requestId\""u8) >= 0)
            {
                // A bare event (one per message) is accepted too.
                events = [JsonSerializer.Deserialize(json, UsageJsonContext.Default.UsageEvent)!];
            }
        }
        catch (JsonException ex)
        {
            throw new UsageMessageException($"usage message is not valid JSON: {ex.Message}", SniffRequestId(body), ex);
        }

        if (events is not { Count: > 0 })
        {
            throw new UsageMessageException("usage message has no events", SniffRequestId(body));
        }

        foreach (var e in events)
        {
            Validate(e);
        }

        return events;
    }

    internal static void Validate(UsageEvent? e)
    {
        if (e is null)
        {
            throw new UsageMessageException("usage message contains a null event", null);
        }

        if (string.IsNullOrWhiteSpace(e.RequestId) || e.RequestId.Length > 128 || e.RequestId.Any(c => !char.IsAsciiLetterOrDigit(c) && c is not '-' and not '_'))
        {
            throw new UsageMessageException("usage event has an invalid requestId", e.RequestId);
        }

        if (string.IsNullOrWhiteSpace(e.Account) || string.IsNullOrWhiteSpace(e.UpstreamModel) || string.IsNullOrWhiteSpace(e.Currency))
        {
            throw new UsageMessageException("usage event lacks account, upstreamModel or currency", e.RequestId);
        }

        if (e.InputTokens < 0 || e.OutputTokens < 0 || e.CacheReadTokens < 0 || e.CacheWriteTokens < 0 || e.ReasoningTokens < 0 || e.CostNanos < 0)
        {
            throw new UsageMessageException("usage event has negative counts", e.RequestId);
        }

        if (e.StartedAt == default)
        {
            throw new UsageMessageException("usage event has no startedAt", e.RequestId);
        }
    }

    /// <summary>Best effort: the request id of a message that cannot be parsed, for the error log.</summary>
    internal static string? SniffRequestId(BinaryData body)
    {
        var text = body.ToString();
        const string marker = "\"requestId\"";
        var at = text.IndexOf(marker, StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }

        var start = text.IndexOf('"', at + marker.Length + 1);
        var end = start < 0 ? -1 : text.IndexOf('"', start + 1);
        return start >= 0 && end > start && end - start < 130 ? text[(start + 1)..end] : null;
    }

    /// <summary>
    /// Writes the events (idempotently, see the class remarks). A usage table that does not exist (404
    /// <c>TableNotFound</c>: storage was down when the host started, or the table was deleted) is created when
    /// <see cref="StorageClients.CreateIfMissing"/> allows it, and the write is repeated; otherwise, or if the creation
    /// fails, the 404 is rethrown, and <see cref="UsageQueueConsumer.IsTransient"/> counts it as storage trouble, so
    /// the message is retried rather than poisoned.
    /// </summary>
    public async Task WriteAsync(IReadOnlyList<UsageEvent> events, CancellationToken cancellationToken)
    {
        try
        {
            await WriteOnceAsync(events, cancellationToken);
        }
        catch (Exception ex) when (IsTableNotFound(ex) && storage.CreateIfMissing)
        {
            if (!await CreateTablesAsync(cancellationToken))
            {
                throw;
            }

            await WriteOnceAsync(events, cancellationToken);
        }
    }

    /// <summary>A 404 for a missing table (as opposed to a missing entity, which the writer handles itself).</summary>
    internal static bool IsTableNotFound(Exception ex) => ex switch
    {
        RequestFailedException { Status: 404 } rfe => rfe.ErrorCode == "TableNotFound",
        AggregateException agg => agg.InnerExceptions.Any(IsTableNotFound),
        _ => false,
    };

    private async Task<bool> CreateTablesAsync(CancellationToken cancellationToken)
    {
        try
        {
            await Task.WhenAll(new[] { Billing, Energy, Ledger, Daily }.Select(t => t.CreateIfNotExistsAsync(cancellationToken)));
            Log.TablesCreated(logger, string.Join(", ", new[] { Billing, Energy, Ledger, Daily }.Select(t => t.Name)));
            return true;
        }
        catch (Exception ex) when (ex is RequestFailedException or HttpRequestException or AggregateException)
        {
            // 409 TableBeingDeleted (Azure keeps a deleted table's name for a while), 403 without the right to create,
            // or storage gone again: the write fails as storage trouble and is retried later.
            Log.TablesCreateFailed(logger, ex.GetType().Name, ex.Message);
            return false;
        }
    }

    private async Task WriteOnceAsync(IReadOnlyList<UsageEvent> events, CancellationToken cancellationToken)
    {
        var unique = events.DistinctBy(e => (e.Account, e.RequestId)).ToList();

        // 1. One row per request in billing and energy.
        await Task.WhenAll(
            InsertRowsAsync(Billing, unique.Select(UsageRows.Billing), cancellationToken),
            InsertRowsAsync(Energy, unique.Select(UsageRows.Energy), cancellationToken));

        // 2. Exactly-once counters. Ledger partitions (account and month) are independent, so they run in parallel;
        //    chunks of one partition run in order (they would only contend with each other).
        var written = new System.Collections.Concurrent.ConcurrentDictionary<(string Partition, string Row), UsageCounters>();
        var groups = unique.GroupBy(e => UsageRows.LedgerPartition(e.Account, e.Month)).ToList();
        await Task.WhenAll(groups.Select(async group =>
        {
            foreach (var chunk in Chunk(group.ToList()))
            {
                foreach (var (row, totals) in await CountAsync(group.Key, chunk, cancellationToken))
                {
                    written.AddOrUpdate((group.Key, row), totals, (_, existing) => totals.Requests > existing.Requests ? totals : existing);
                }
            }
        }));

        // 3. Copy the per-model counters into usagedaily, starting from the totals this writer just committed
        //    (a redelivery that counted nothing reads the ledger instead).
        var touched = new HashSet<(string Partition, string Row, UsageEvent Sample)>(TouchedComparer.Instance);
        foreach (var group in groups)
        {
            foreach (var e in group)
            {
                touched.Add((group.Key, UsageRows.ModelCounter(e.Day, e.UpstreamModel, e.Currency), e));
            }
        }

        await Task.WhenAll(touched.Select(t =>
            ProjectAsync(t.Partition, t.Row, t.Sample, written.TryGetValue((t.Partition, t.Row), out var totals) ? totals : null, cancellationToken)));
    }

    private sealed class TouchedComparer : IEqualityComparer<(string Partition, string Row, UsageEvent Sample)>
    {
        public static readonly TouchedComparer Instance = new();

        public bool Equals((string Partition, string Row, UsageEvent Sample) x, (string Partition, string Row, UsageEvent Sample) y) =>
            x.Partition == y.Partition && x.Row == y.Row;

        public int GetHashCode((string Partition, string Row, UsageEvent Sample) obj) => HashCode.Combine(obj.Partition, obj.Row);
    }

    /// <summary>Splits events so that markers plus the counters they touch fit in one transaction.</summary>
    private static IEnumerable<List<UsageEvent>> Chunk(List<UsageEvent> events)
    {
        var chunk = new List<UsageEvent>();
        var counters = new HashSet<string>();
        foreach (var e in events)
        {
            var added = CounterKeys(e).Count(k => !counters.Contains(k));
            if (chunk.Count + counters.Count + 1 + added > MaxTransactionSize)
            {
                yield return chunk;
                chunk = [];
                counters.Clear();
            }

            chunk.Add(e);
            foreach (var key in CounterKeys(e))
            {
                counters.Add(key);
            }
        }

        if (chunk.Count > 0)
        {
            yield return chunk;
        }
    }

    private static IEnumerable<string> CounterKeys(UsageEvent e)
    {
        yield return UsageRows.ModelCounter(e.Day, e.UpstreamModel, e.Currency);
        yield return UsageRows.RequestedModelCounter(e.Day, e.RequestedModel, e.Currency);
        yield return UsageRows.KeyDayCounter(e.Day, e.KeyId, e.Currency);
        if (!string.IsNullOrEmpty(e.SessionId))
        {
            yield return UsageRows.SessionCounter(e.Day, e.SessionId, e.Currency);
        }

        yield return UsageRows.KeyCounter(e.KeyId, e.Currency);
    }

    private async Task InsertRowsAsync(TableClient table, IEnumerable<TableEntity> rows, CancellationToken cancellationToken)
    {
        foreach (var partition in rows.GroupBy(r => r.PartitionKey))
        {
            foreach (var chunk in partition.Chunk(MaxTransactionSize))
            {
                var pending = chunk.ToList();
                for (var attempt = 0; pending.Count > 0; attempt++)
                {
                    try
                    {
                        await table.SubmitTransactionAsync(pending.Select(r => new TableTransactionAction(TableTransactionActionType.Add, r)), cancellationToken);
                        break;
                    }
                    catch (TableTransactionFailedException ex) when (ex.Status == 409 && ex.FailedTransactionActionIndex is int index && index < pending.Count && attempt < MaxAttempts)
                    {
                        // That row exists already: a redelivery. Drop it and insert the rest.
                        pending.RemoveAt(index);
                    }
                    catch (TableTransactionFailedException ex) when (ex.Status == 409)
                    {
                        // No usable index: fall back to one insert per row.
                        await InsertOneByOneAsync(table, pending, cancellationToken);
                        break;
                    }
                }
            }
        }
    }

    private static async Task InsertOneByOneAsync(TableClient table, IEnumerable<TableEntity> rows, CancellationToken cancellationToken)
    {
        foreach (var row in rows)
        {
            try
            {
                await table.AddEntityAsync(row, cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status == 409)
            {
            }
        }
    }

    /// <summary>Counts each event of the chunk exactly once in the ledger partition (see the class remarks).</summary>
    /// <returns>The counter totals committed, by row key (empty when every event had been counted before).</returns>
    private async Task<IReadOnlyDictionary<string, UsageCounters>> CountAsync(string partition, List<UsageEvent> chunk, CancellationToken cancellationToken)
    {
        var pending = new List<UsageEvent>(chunk);

        // Only a lost race counts as an attempt: an event found counted already leaves the chunk without one (a
        // redelivered batch can hold more counted events than there are attempts).
        for (var attempt = 0; pending.Count > 0;)
        {
            if (attempt >= MaxAttempts)
            {
                throw new UsageContentionException($"ledger partition {partition} stayed contended for {MaxAttempts} attempts");
            }

            // Desired counter values: current + contributions of the pending events.
            var contributions = new Dictionary<string, (UsageCounters Delta, UsageEvent Sample, DateTimeOffset First, DateTimeOffset Last)>(StringComparer.Ordinal);
            foreach (var e in pending)
            {
                var delta = UsageCounters.From(e);
                foreach (var key in CounterKeys(e))
                {
                    contributions[key] = contributions.TryGetValue(key, out var existing)
                        ? (existing.Delta + delta, existing.Sample, Min(existing.First, e.StartedAt), Max(existing.Last, e.StartedAt))
                        : (delta, e, e.StartedAt, e.StartedAt);
                }
            }

            var keys = contributions.Keys.ToList();
            var current = await Task.WhenAll(keys.Select(k => Ledger.GetEntityIfExistsAsync<TableEntity>(partition, k, cancellationToken: cancellationToken)));

            var actions = new List<TableTransactionAction>(pending.Count + keys.Count);
            var totals = new Dictionary<string, UsageCounters>(keys.Count, StringComparer.Ordinal);
            foreach (var e in pending)
            {
                actions.Add(new TableTransactionAction(TableTransactionActionType.Add, new TableEntity(partition, UsageRows.Marker(e.RequestId)) { ["Day"] = e.Day }));
            }

            for (var i = 0; i < keys.Count; i++)
            {
                var (delta, sample, first, last) = contributions[keys[i]];
                var existing = current[i].HasValue ? current[i].Value! : null;
                var total = (existing is null ? UsageCounters.Zero : UsageCounters.ReadFrom(existing)) + delta;
                totals[keys[i]] = total;
                var entity = CounterEntity(partition, keys[i], sample, total);
                if (keys[i].StartsWith("d|", StringComparison.Ordinal))
                {
                    entity["FirstAt"] = (existing is null ? null : EntityValues.Date(existing, "FirstAt")) is { } firstBefore ? Min(firstBefore, first) : first;
                    entity["LastAt"] = (existing is null ? null : EntityValues.Date(existing, "LastAt")) is { } lastBefore ? Max(lastBefore, last) : last;
                }

                actions.Add(existing is null
                    ? new TableTransactionAction(TableTransactionActionType.Add, entity)
                    : new TableTransactionAction(TableTransactionActionType.UpdateReplace, entity, existing.ETag));
            }

            try
            {
                await Ledger.SubmitTransactionAsync(actions, cancellationToken);
                return totals;
            }
            catch (TableTransactionFailedException ex) when (ex.Status is 409 or 412)
            {
                if (ex.Status == 409 && ex.FailedTransactionActionIndex is int index && index < pending.Count)
                {
                    // The marker exists: this event was counted by an earlier delivery.
                    pending.RemoveAt(index);
                    continue;
                }

                if (ex.Status == 409 && ex.FailedTransactionActionIndex is null)
                {
                    // No index reported: find already-counted events one by one.
                    pending = await WithoutCountedAsync(partition, pending, cancellationToken);
                }

                // Otherwise a counter moved under us (another consumer): re-read and try again.
                attempt++;
                await Task.Delay(ContentionDelay(attempt), cancellationToken);
            }
        }

        return new Dictionary<string, UsageCounters>();
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a <= b ? a : b;

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a >= b ? a : b;

    private async Task<List<UsageEvent>> WithoutCountedAsync(string partition, List<UsageEvent> pending, CancellationToken cancellationToken)
    {
        var result = new List<UsageEvent>();
        foreach (var e in pending)
        {
            var marker = await Ledger.GetEntityIfExistsAsync<TableEntity>(partition, UsageRows.Marker(e.RequestId), cancellationToken: cancellationToken);
            if (!marker.HasValue)
            {
                result.Add(e);
            }
        }

        return result;
    }

    private static TableEntity CounterEntity(string partition, string row, UsageEvent sample, UsageCounters total)
    {
        var entity = new TableEntity(partition, row)
        {
            ["Account"] = sample.Account,
            ["Currency"] = sample.Currency,
        };
        if (row.StartsWith("d|", StringComparison.Ordinal))
        {
            entity["Day"] = sample.Day;
        }

        if (row.Contains("|m|", StringComparison.Ordinal))
        {
            entity["Model"] = sample.UpstreamModel;
        }
        else if (row.Contains("|q|", StringComparison.Ordinal))
        {
            entity["RequestedModel"] = sample.RequestedModel;
        }
        else if (row.StartsWith("d|", StringComparison.Ordinal) && row.Contains("|k|", StringComparison.Ordinal))
        {
            entity["KeyId"] = sample.KeyId;
        }
        else if (row.Contains("|s|", StringComparison.Ordinal))
        {
            entity["SessionId"] = sample.SessionId;
        }
        else if (row.StartsWith("k|", StringComparison.Ordinal))
        {
            entity["KeyId"] = sample.KeyId;
            entity["Month"] = sample.Month;
        }

        total.WriteTo(entity);
        return entity;
    }

    /// <summary>Copies a ledger model counter to <c>usagedaily</c> if it is newer than what is there.</summary>
    private async Task ProjectAsync(string ledgerPartition, string counterRow, UsageEvent sample, UsageCounters? committed, CancellationToken cancellationToken)
    {
        var dailyPartition = UsageRows.DailyPartition(sample.Month);
        var dailyRow = UsageRows.DailyRow(sample.Day, sample.Account, sample.UpstreamModel, sample.Currency);
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            // First try with what this writer committed; copying a value that another consumer has since passed is
            // harmless (the guard below keeps the higher count, and that consumer copies its own). After a conflict,
            // or when this delivery counted nothing, read the ledger.
            UsageCounters totals;
            if (attempt == 0 && committed is not null)
            {
                totals = committed;
            }
            else
            {
                var counter = await Ledger.GetEntityIfExistsAsync<TableEntity>(ledgerPartition, counterRow, cancellationToken: cancellationToken);
                if (!counter.HasValue)
                {
                    return;
                }

                totals = UsageCounters.ReadFrom(counter.Value!);
            }

            var daily = await Daily.GetEntityIfExistsAsync<TableEntity>(dailyPartition, dailyRow, cancellationToken: cancellationToken);
            if (daily.HasValue && (EntityValues.Long(daily.Value!, nameof(UsageCounters.Requests)) ?? 0) >= totals.Requests)
            {
                return;
            }

            var entity = new TableEntity(dailyPartition, dailyRow)
            {
                ["Day"] = sample.Day,
                ["Account"] = sample.Account,
                ["Model"] = sample.UpstreamModel,
                ["Currency"] = sample.Currency,
                ["UpdatedAt"] = DateTimeOffset.UtcNow,
            };
            totals.WriteTo(entity);
            try
            {
                if (daily.HasValue)
                {
                    await Daily.UpdateEntityAsync(entity, daily.Value!.ETag, TableUpdateMode.Replace, cancellationToken);
                }
                else
                {
                    await Daily.AddEntityAsync(entity, cancellationToken);
                }

                return;
            }
            catch (RequestFailedException ex) when (ex.Status is 409 or 412)
            {
                // Someone else copied concurrently; look again.
            }
        }

        // Throwing makes the queue redeliver the message; the whole write is idempotent, so that repairs it.
        Log.ProjectionGaveUp(logger, dailyRow);
        throw new UsageContentionException($"usagedaily row {dailyRow} stayed contended for {MaxAttempts} attempts");
    }

    /// <summary>
    /// A short random pause before a contended ledger update is redone (5 ms up to 20 + 10 ms per attempt). Kept short
    /// on purpose: an exponential backoff (up to 510 ms) left a consumer that runs a batch of 16 messages against the
    /// same few partitions unable to drain 3,000 events in 5 minutes (the consumer-crash test).
    /// </summary>
    private static TimeSpan ContentionDelay(int attempt) => TimeSpan.FromMilliseconds(Random.Shared.Next(5, 20 + attempt * 10));

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Gave up copying ledger totals to usagedaily row {Row} after repeated conflicts; the message will be retried")]
        public static partial void ProjectionGaveUp(ILogger logger, string row);

        [LoggerMessage(2, LogLevel.Warning, "Usage tables were missing and have been created ({Tables}); writing again")]
        public static partial void TablesCreated(ILogger logger, string tables);

        [LoggerMessage(3, LogLevel.Warning, "A usage table is missing and could not be created ({Error}: {Message}); the message will be retried")]
        public static partial void TablesCreateFailed(ILogger logger, string error, string message);
    }
}

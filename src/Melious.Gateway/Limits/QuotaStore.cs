using Azure;
using Azure.Data.Tables;
using Melious.Gateway.Storage;

namespace Melious.Gateway.Limits;

/// <summary>
/// The shared side of the limits, in the <c>ratelimits</c> table, every write guarded by the row's ETag (optimistic
/// concurrency: a lost race re-reads and tries again). Rows:
/// <list type="bullet">
/// <item>quota counters: partition = key id, row = <c>{kind}-{window index}</c>, <c>Granted</c> (units leased);</item>
/// <item>concurrency: partition = key id, row = <c>concurrency</c>, per instance <c>H{id}</c> (slots held) and
/// <c>E{id}</c> (lease expiry, UTC ticks);</item>
/// <item>heartbeats: partition <c>~instances</c>, row = instance id, <c>Seen</c>.</item>
/// </list>
/// Every method throws on storage failure (the limiter then falls back to per-instance limits).
/// </summary>
public sealed class QuotaStore(StorageClients storage)
{
    private const string InstancesPartition = "~instances";
    private const string ConcurrencyRow = "concurrency";
    private const int MaxAttempts = 64;

    private long _roundTrips;

    private TableClient Table => storage.Table(TableNames.RateLimits);

    /// <summary>Storage requests made so far (for figures: round trips per request).</summary>
    public long RoundTrips => Interlocked.Read(ref _roundTrips);

    private void Count(int n = 1) => Interlocked.Add(ref _roundTrips, n);

    /// <summary>Leases from a window's counter; returns what was taken and the counter after it.</summary>
    public async Task<(long Taken, long Granted)> LeaseAsync(string keyId, string row, long limit, long want, int instances, long mustTake, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            Count(2);
            var existing = await Table.GetEntityIfExistsAsync<TableEntity>(keyId, row, ["Granted"], cancellationToken);
            try
            {
                if (!existing.HasValue)
                {
                    var take = QuotaMath.Take(limit, 0, want, instances, mustTake);
                    await Table.AddEntityAsync(new TableEntity(keyId, row) { ["Granted"] = take }, cancellationToken);
                    return (take, take);
                }

                var granted = EntityValues.Long(existing.Value!, "Granted") ?? 0;
                var taken = QuotaMath.Take(limit, granted, want, instances, mustTake);
                if (taken == 0)
                {
                    Count(-1);
                    return (0, granted);
                }

                // A projected read carries no keys: write a fresh entity under the read's ETag.
                await Table.UpdateEntityAsync(new TableEntity(keyId, row) { ["Granted"] = granted + taken }, existing.Value!.ETag, TableUpdateMode.Merge, cancellationToken);
                return (taken, granted + taken);
            }
            catch (RequestFailedException ex) when ((ex.Status is 409 or 412) && attempt < MaxAttempts)
            {
                // Another instance moved the counter first: read it again, after a short random pause so racing
                // instances spread out instead of colliding again.
                await Backoff(attempt, cancellationToken);
            }
        }
    }

    /// <summary>Gives back quota this instance leased but did not use.</summary>
    public async Task ReturnAsync(string keyId, string row, long unused, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            Count(2);
            var existing = await Table.GetEntityIfExistsAsync<TableEntity>(keyId, row, ["Granted"], cancellationToken);
            if (!existing.HasValue)
            {
                return;
            }

            var entity = new TableEntity(keyId, row) { ["Granted"] = QuotaMath.Return(EntityValues.Long(existing.Value!, "Granted") ?? 0, unused) };
            try
            {
                await Table.UpdateEntityAsync(entity, existing.Value!.ETag, TableUpdateMode.Merge, cancellationToken);
                return;
            }
            catch (RequestFailedException ex) when (ex.Status == 412 && attempt < MaxAttempts)
            {
                await Backoff(attempt, cancellationToken);
            }
        }
    }

    /// <summary>
    /// Sets how many concurrency slots this instance holds: <paramref name="desired"/> gets the slots the other
    /// instances hold under unexpired leases and this instance's current count, and returns the new count. Renews
    /// this instance's lease and drops the expired leases of others (crashed instances) in the same write.
    /// </summary>
    public async Task<int> UpdateSlotsAsync(string keyId, string instance, Func<int, int, int> desired, DateTimeOffset now, TimeSpan ttl, CancellationToken cancellationToken)
    {
        var held = "H" + instance;
        var expiry = "E" + instance;
        for (var attempt = 0; ; attempt++)
        {
            Count(2);
            var existing = await Table.GetEntityIfExistsAsync<TableEntity>(keyId, ConcurrencyRow, cancellationToken: cancellationToken);
            var entity = existing.HasValue ? existing.Value! : new TableEntity(keyId, ConcurrencyRow);
            var others = 0;
            var mine = 0;
            var fresh = new TableEntity(keyId, ConcurrencyRow);
            foreach (var (name, value) in entity)
            {
                if (name.Length < 2 || name[0] != 'H')
                {
                    continue;
                }

                var id = name[1..];
                var count = (int)(EntityValues.Long(entity, name) ?? 0);
                if (id == instance)
                {
                    mine = count;
                    continue;
                }

                var expires = EntityValues.Long(entity, "E" + id) ?? 0;
                if (expires > now.UtcTicks && count > 0)
                {
                    others += count;
                    fresh[name] = count;
                    fresh["E" + id] = expires;
                }
            }

            var next = desired(others, mine);
            if (next > 0)
            {
                fresh[held] = next;
                fresh[expiry] = (now + ttl).UtcTicks;
            }

            try
            {
                if (existing.HasValue)
                {
                    await Table.UpdateEntityAsync(fresh, entity.ETag, TableUpdateMode.Replace, cancellationToken);
                }
                else if (next > 0)
                {
                    await Table.AddEntityAsync(fresh, cancellationToken);
                }

                return next;
            }
            catch (RequestFailedException ex) when ((ex.Status is 409 or 412) && attempt < MaxAttempts)
            {
                await Backoff(attempt, cancellationToken);
            }
        }
    }

    private static Task Backoff(int attempt, CancellationToken cancellationToken) =>
        Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(0, 5 * Math.Min(attempt + 1, 10))), cancellationToken);

    /// <summary>Writes this instance's heartbeat and counts the instances seen within <paramref name="alive"/>.</summary>
    public async Task<int> HeartbeatAsync(string instance, DateTimeOffset now, TimeSpan alive, CancellationToken cancellationToken)
    {
        Count(2);
        await Table.UpsertEntityAsync(new TableEntity(InstancesPartition, instance) { ["Seen"] = now }, TableUpdateMode.Replace, cancellationToken);
        var count = 0;
        await foreach (var row in Table.QueryAsync<TableEntity>(filter: $"PartitionKey eq '{InstancesPartition}'", select: ["RowKey", "Seen"], cancellationToken: cancellationToken))
        {
            if (row.RowKey == instance || (EntityValues.Date(row, "Seen") is { } seen && now - seen <= alive))
            {
                count++;
            }
        }

        return Math.Max(1, count);
    }

    public async Task RemoveInstanceAsync(string instance, CancellationToken cancellationToken) =>
        await Table.DeleteEntityAsync(InstancesPartition, instance, ETag.All, cancellationToken);
}

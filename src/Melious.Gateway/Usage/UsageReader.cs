using System.Globalization;
using System.Runtime.CompilerServices;
using Azure.Data.Tables;
using Melious.Gateway.Storage;

namespace Melious.Gateway.Usage;

public sealed record DailyUsageRow(string Day, string Account, string Model, string Currency, UsageCounters Totals);

public sealed record SessionUsageRow(string Day, string Account, string SessionId, string Currency, UsageCounters Totals);

/// <summary>One ledger day counter: <see cref="Kind"/> is <c>m</c> (upstream model), <c>q</c> (requested model), <c>k</c> (key id) or <c>s</c> (session).</summary>
public sealed record DayCounterRow(string Day, string Account, char Kind, string Name, string Currency, UsageCounters Totals, DateTimeOffset? FirstAt, DateTimeOffset? LastAt);

/// <summary>Read side of the usage tables, for reports, budgets and per-session totals.</summary>
public sealed class UsageReader(StorageClients storage)
{
    private TableClient Daily => storage.Table(TableNames.UsageDaily);

    private TableClient Ledger => storage.Table(TableNames.UsageLedger);

    private TableClient Billing => storage.Table(TableNames.Billing);

    /// <summary>Rollup rows for the days <paramref name="from"/>..<paramref name="to"/> (inclusive, UTC).</summary>
    public async IAsyncEnumerable<DailyUsageRow> ReadDailyAsync(DateOnly from, DateOnly to, string? account, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        foreach (var month in Months(from, to))
        {
            var filter = TableClient.CreateQueryFilter($"PartitionKey eq {month} and RowKey ge {Day(from) + "|"} and RowKey lt {Day(to.AddDays(1)) + "|"}");
            if (account is not null)
            {
                filter += " and " + TableClient.CreateQueryFilter($"Account eq {account}");
            }

            await foreach (var e in Daily.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
            {
                yield return new DailyUsageRow(
                    EntityValues.String(e, "Day") ?? e.RowKey[..10],
                    EntityValues.String(e, "Account") ?? "",
                    EntityValues.String(e, "Model") ?? "",
                    EntityValues.String(e, "Currency") ?? "",
                    UsageCounters.ReadFrom(e));
            }
        }
    }

    /// <summary>Per-session, per-day totals (Claude Code session id) from the ledger.</summary>
    public async IAsyncEnumerable<SessionUsageRow> ReadSessionsAsync(DateOnly from, DateOnly to, string? account, string? sessionId = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var row in ReadDayCountersAsync(from, to, account, 's', cancellationToken))
        {
            if (sessionId is null || row.Name == sessionId)
            {
                yield return new SessionUsageRow(row.Day, row.Account, row.Name, row.Currency, row.Totals);
            }
        }
    }

    /// <summary>
    /// The ledger's day counters of one kind (see <see cref="DayCounterRow"/>) for the days <paramref name="from"/>..<paramref name="to"/>:
    /// a row-key range in each account month's partition. Without an account, the accounts of a month are those with
    /// rollups in <c>usagedaily</c> for those days (a small month partition): the ledger also holds a marker row per
    /// request ever counted, so a query without a partition key would read all of its history on every view.
    /// </summary>
    public async IAsyncEnumerable<DayCounterRow> ReadDayCountersAsync(DateOnly from, DateOnly to, string? account, char kind, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var range = TableClient.CreateQueryFilter($"RowKey ge {"d|" + Day(from) + "|"} and RowKey lt {"d|" + Day(to.AddDays(1)) + "|"}");
        var nameColumn = kind switch { 'm' => "Model", 'q' => "RequestedModel", 'k' => "KeyId", 's' => "SessionId", _ => throw new ArgumentOutOfRangeException(nameof(kind)) };
        foreach (var month in Months(from, to))
        {
            var accounts = account is not null ? [account] : await AccountsWithUsageAsync(month, from, to, cancellationToken);
            foreach (var name in accounts)
            {
                var filter = TableClient.CreateQueryFilter($"PartitionKey eq {UsageRows.LedgerPartition(name, month)}") + " and " + range;
                await foreach (var e in Ledger.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
                {
                    // d|yyyy-MM-dd|{kind}|…
                    if (e.RowKey.Length < 16 || e.RowKey[13] != kind || e.RowKey[14] != '|')
                    {
                        continue;
                    }

                    yield return new DayCounterRow(
                        EntityValues.String(e, "Day") ?? e.RowKey[2..12],
                        EntityValues.String(e, "Account") ?? "",
                        kind,
                        EntityValues.String(e, nameColumn) ?? "",
                        EntityValues.String(e, "Currency") ?? "",
                        UsageCounters.ReadFrom(e),
                        EntityValues.Date(e, "FirstAt"),
                        EntityValues.Date(e, "LastAt"));
                }
            }
        }
    }

    /// <summary>
    /// The billing rows of one Claude Code session in the range (the only raw-row read of the reports): a partition
    /// range per account, and without an account, of each account whose ledger counted that session in the range.
    /// </summary>
    public async IAsyncEnumerable<TableEntity> ReadSessionBillingAsync(DateOnly from, DateOnly to, string? account, string sessionId, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var accounts = new SortedSet<string>(StringComparer.Ordinal);
        if (account is not null)
        {
            accounts.Add(account);
        }
        else
        {
            await foreach (var row in ReadSessionsAsync(from, to, null, sessionId, cancellationToken))
            {
                accounts.Add(row.Account);
            }
        }

        foreach (var name in accounts)
        {
            var filter = TableClient.CreateQueryFilter($"PartitionKey ge {UsageRows.RowPartition(name, Day(from))} and PartitionKey le {UsageRows.RowPartition(name, Day(to))} and SessionId eq {sessionId}");
            await foreach (var e in Billing.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
            {
                yield return e;
            }
        }
    }

    /// <summary>Every billing row for the range, for reconciliation.</summary>
    public async IAsyncEnumerable<TableEntity> ReadBillingAsync(DateOnly from, DateOnly to, string? account, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var filter = account is null
            ? TableClient.CreateQueryFilter($"StartedAt ge {from.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc)} and StartedAt lt {to.AddDays(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc)}")
            : TableClient.CreateQueryFilter($"PartitionKey ge {UsageRows.RowPartition(account, Day(from))} and PartitionKey le {UsageRows.RowPartition(account, Day(to))}");
        await foreach (var e in Billing.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            yield return e;
        }
    }

    /// <summary>This month's spend of a key, in nano-units of <paramref name="currency"/>, as counted so far.</summary>
    public async Task<long> KeyMonthSpendNanosAsync(string account, string keyId, string currency, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var month = now.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        var counter = await Ledger.GetEntityIfExistsAsync<TableEntity>(UsageRows.LedgerPartition(account, month), UsageRows.KeyCounter(keyId, currency), cancellationToken: cancellationToken);
        return counter.HasValue ? EntityValues.Long(counter.Value!, nameof(UsageCounters.CostNanos)) ?? 0 : 0;
    }

    /// <summary>The accounts with usage rollups in <paramref name="month"/> on the days <paramref name="from"/>..<paramref name="to"/>.</summary>
    private async Task<IReadOnlyCollection<string>> AccountsWithUsageAsync(string month, DateOnly from, DateOnly to, CancellationToken cancellationToken)
    {
        var accounts = new SortedSet<string>(StringComparer.Ordinal);
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {month} and RowKey ge {Day(from) + "|"} and RowKey lt {Day(to.AddDays(1)) + "|"}");
        await foreach (var e in Daily.QueryAsync<TableEntity>(filter, select: ["Account"], cancellationToken: cancellationToken))
        {
            if (EntityValues.String(e, "Account") is { Length: > 0 } name)
            {
                accounts.Add(name);
            }
        }

        return accounts;
    }

    internal static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    internal static IEnumerable<string> Months(DateOnly from, DateOnly to)
    {
        for (var m = new DateOnly(from.Year, from.Month, 1); m <= to; m = m.AddMonths(1))
        {
            yield return m.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        }
    }
}

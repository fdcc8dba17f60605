using System.Globalization;
using Azure.Data.Tables;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Reporting;

/// <summary>A Claude Code session's totals in one currency over a range.</summary>
public sealed record SessionSummary(string SessionId, string Account, string Currency, DateTimeOffset? FirstAt, DateTimeOffset? LastAt, UsageCounters Totals);

/// <summary>One request of a session drill-down, from its <c>billing</c> row.</summary>
public sealed record RequestSummary(
    string RequestId,
    DateTimeOffset StartedAt,
    string Account,
    string KeyId,
    string RequestedModel,
    string UpstreamModel,
    long InputTokens,
    long CacheReadTokens,
    long CacheWriteTokens,
    long OutputTokens,
    long ReasoningTokens,
    string Currency,
    long CostNanos,
    long? TtftMs,
    long DurationMs,
    int Status,
    string ErrorType,
    bool Cancelled);

/// <summary>Everything the dashboard shows for a range: totals, per-day series and the breakdowns.</summary>
public sealed record UsageView(
    DateOnly From,
    DateOnly To,
    string? Account,
    IReadOnlyList<UsageLine> Totals,
    IReadOnlyList<DailyUsageRow> Daily,
    IReadOnlyList<UsageLine> ByUpstreamModel,
    IReadOnlyList<UsageLine> ByRequestedModel,
    IReadOnlyList<UsageLine> ByKey,
    IReadOnlyList<SessionSummary> Sessions,
    IReadOnlyList<string> Accounts)
{
    public bool IsEmpty => Daily.Count == 0;

    public IEnumerable<DateOnly> Days()
    {
        for (var d = From; d <= To; d = d.AddDays(1))
        {
            yield return d;
        }
    }
}

/// <summary>
/// The read side of the usage reports (dashboard and usage API). Ranges and totals come from the daily rollups
/// (<c>usagedaily</c>) and the ledger's day counters; only a session drill-down reads raw <c>billing</c> rows.
/// </summary>
public sealed class UsageQueryService(UsageReader reader)
{
    /// <summary>The longest range one report may cover.</summary>
    public const int MaxDays = 400;

    /// <summary>The first day a report may cover: nothing was billed before it, and it keeps day arithmetic in range.</summary>
    public static readonly DateOnly EarliestDay = new(1970, 1, 1);

    /// <summary>The last day a report may cover: a range, its pages and its month partitions stay below year 10000.</summary>
    public static readonly DateOnly LatestDay = new(9998, 12, 31);

    /// <summary>The dates a report accepts, as a sentence part for error messages.</summary>
    public static string DayWindow => $"from {Day(EarliestDay)} to {Day(LatestDay)}";

    public static bool InWindow(DateOnly day) => day >= EarliestDay && day <= LatestDay;

    public async Task<UsageView> ReadViewAsync(DateOnly from, DateOnly to, string? account, CancellationToken cancellationToken)
    {
        var dailyTask = ToListAsync(reader.ReadDailyAsync(from, to, account, cancellationToken));
        var requestedTask = ToListAsync(reader.ReadDayCountersAsync(from, to, account, 'q', cancellationToken));
        var keysTask = ToListAsync(reader.ReadDayCountersAsync(from, to, account, 'k', cancellationToken));
        var sessionsTask = ReadSessionsAsync(from, to, account, cancellationToken);
        await Task.WhenAll(dailyTask, requestedTask, keysTask, sessionsTask);

        var daily = dailyTask.Result;
        var byUpstream = UsageGrouping.Group(daily.Select(r => (r.Model, r.Currency, r.Totals)));
        return new UsageView(
            from,
            to,
            account,
            UsageGrouping.TotalsByCurrency(byUpstream),
            daily,
            byUpstream,
            UsageGrouping.Group(requestedTask.Result.Select(r => (r.Name, r.Currency, r.Totals))),
            UsageGrouping.Group(keysTask.Result.Select(r => (r.Name, r.Currency, r.Totals))),
            sessionsTask.Result,
            daily.Select(r => r.Account).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList());
    }

    public IAsyncEnumerable<DailyUsageRow> ReadDailyAsync(DateOnly from, DateOnly to, string? account, CancellationToken cancellationToken) =>
        reader.ReadDailyAsync(from, to, account, cancellationToken);

    public IAsyncEnumerable<DayCounterRow> ReadKeyDaysAsync(DateOnly from, DateOnly to, string? account, CancellationToken cancellationToken) =>
        reader.ReadDayCountersAsync(from, to, account, 'k', cancellationToken);

    /// <summary>Sessions of the range, most recent first, summed over their days (per account and currency).</summary>
    public async Task<List<SessionSummary>> ReadSessionsAsync(DateOnly from, DateOnly to, string? account, CancellationToken cancellationToken)
    {
        var sessions = new Dictionary<(string Session, string Account, string Currency), SessionSummary>();
        await foreach (var row in reader.ReadDayCountersAsync(from, to, account, 's', cancellationToken))
        {
            var id = (row.Name, row.Account, row.Currency.ToUpperInvariant());
            sessions[id] = sessions.TryGetValue(id, out var s)
                ? s with { FirstAt = Earliest(s.FirstAt, row.FirstAt), LastAt = Latest(s.LastAt, row.LastAt), Totals = s.Totals + row.Totals }
                : new SessionSummary(row.Name, row.Account, id.Item3, row.FirstAt, row.LastAt, row.Totals);
        }

        return sessions.Values
            .OrderByDescending(s => s.LastAt ?? DateTimeOffset.MinValue)
            .ThenBy(s => s.SessionId, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>The requests of one session in the range, oldest first, from the <c>billing</c> rows.</summary>
    public async Task<List<RequestSummary>> ReadSessionRequestsAsync(DateOnly from, DateOnly to, string? account, string sessionId, CancellationToken cancellationToken)
    {
        var list = new List<RequestSummary>();
        await foreach (var e in reader.ReadSessionBillingAsync(from, to, account, sessionId, cancellationToken))
        {
            list.Add(new RequestSummary(
                EntityValues.String(e, "RequestId") ?? e.RowKey,
                EntityValues.Date(e, "StartedAt") ?? DateTimeOffset.MinValue,
                EntityValues.String(e, "Account") ?? "",
                EntityValues.String(e, "KeyId") ?? "",
                EntityValues.String(e, "RequestedModel") ?? "",
                EntityValues.String(e, "UpstreamModel") ?? "",
                EntityValues.Long(e, "InputTokens") ?? 0,
                EntityValues.Long(e, "CacheReadTokens") ?? 0,
                EntityValues.Long(e, "CacheWriteTokens") ?? 0,
                EntityValues.Long(e, "OutputTokens") ?? 0,
                EntityValues.Long(e, "ReasoningTokens") ?? 0,
                (EntityValues.String(e, "Currency") ?? "").ToUpperInvariant(),
                EntityValues.Long(e, "CostNanos") ?? 0,
                EntityValues.Long(e, "TtftMs"),
                EntityValues.Long(e, "DurationMs") ?? 0,
                (int)(EntityValues.Long(e, "Status") ?? 0),
                EntityValues.String(e, "ErrorType") ?? "",
                EntityValues.Bool(e, "Cancelled") ?? false));
        }

        return list.OrderBy(r => r.StartedAt).ThenBy(r => r.RequestId, StringComparer.Ordinal).ToList();
    }

    public static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static DateTimeOffset? Earliest(DateTimeOffset? a, DateTimeOffset? b) => a is null ? b : b is null ? a : a < b ? a : b;

    private static DateTimeOffset? Latest(DateTimeOffset? a, DateTimeOffset? b) => a is null ? b : b is null ? a : a > b ? a : b;

    private static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> source)
    {
        var list = new List<T>();
        await foreach (var item in source)
        {
            list.Add(item);
        }

        return list;
    }
}

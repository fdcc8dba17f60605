using Melious.Gateway.Routing;
using Azure.Data.Tables;
using Melious.Gateway.Storage;

namespace Melious.Gateway.Usage;

/// <summary>
/// Key scheme and row shapes of the usage tables.
/// <list type="bullet">
/// <item><c>billing</c> and <c>energy</c>: PartitionKey <c>{account}|{yyyy-MM-dd}</c>, RowKey = request id. One row per request.</item>
/// <item><c>usagedaily</c>: PartitionKey <c>{yyyy-MM}</c>, RowKey <c>{yyyy-MM-dd}|{account}|{model}|{currency}</c>. One row per account, upstream model, day.</item>
/// <item><c>usageledger</c> (internal): PartitionKey <c>{account}|{yyyy-MM}</c>; <c>r|{requestId}</c> markers of counted requests and
/// counters <c>d|{day}|m|{model}|{currency}</c> (upstream model), <c>d|{day}|q|{model}|{currency}</c> (requested model),
/// <c>d|{day}|k|{keyId}|{currency}</c>, <c>d|{day}|s|{session}|{currency}</c> and the month's <c>k|{keyId}|{currency}</c>.
/// Day counters also carry <c>FirstAt</c>/<c>LastAt</c>, the earliest and latest request start they count.</item>
/// </list>
/// </summary>
public static class UsageRows
{
    public static string RowPartition(string account, string day) => $"{KeyEncoding.Encode(account)}|{day}";

    public static string LedgerPartition(string account, string month) => $"{KeyEncoding.Encode(account)}|{month}";

    public static string Marker(string requestId) => $"r|{requestId}";

    public static string ModelCounter(string day, string model, string currency) => $"d|{day}|m|{KeyEncoding.Encode(model)}|{currency}";

    public static string SessionCounter(string day, string session, string currency) => $"d|{day}|s|{KeyEncoding.Encode(session)}|{currency}";

    public static string RequestedModelCounter(string day, string model, string currency) => $"d|{day}|q|{KeyEncoding.Encode(model)}|{currency}";

    public static string KeyDayCounter(string day, string keyId, string currency) => $"d|{day}|k|{keyId}|{currency}";

    public static string KeyCounter(string keyId, string currency) => $"k|{keyId}|{currency}";

    public static string DailyPartition(string month) => month;

    public static string DailyRow(string day, string account, string model, string currency) =>
        $"{day}|{KeyEncoding.Encode(account)}|{KeyEncoding.Encode(model)}|{currency}";

    public static TableEntity Billing(UsageEvent e)
    {
        var entity = new TableEntity(RowPartition(e.Account, e.Day), e.RequestId)
        {
            ["RequestId"] = e.RequestId,
            ["Account"] = e.Account,
            ["KeyId"] = e.KeyId,
            ["SessionId"] = e.SessionId ?? "",
            ["AgentId"] = e.AgentId ?? "",
            ["RequestedModel"] = e.RequestedModel,
            ["UpstreamModel"] = e.UpstreamModel,
            ["Upstream"] = e.Upstream,
            ["FallbackFrom"] = e.FallbackFrom ?? "",
            ["Stream"] = e.Stream,
            ["InputTokens"] = e.InputTokens,
            ["CacheReadTokens"] = e.CacheReadTokens,
            ["CacheWriteTokens"] = e.CacheWriteTokens,
            ["OutputTokens"] = e.OutputTokens,
            ["ReasoningTokens"] = e.ReasoningTokens,
            ["UsageEstimated"] = e.UsageEstimated,
            ["Currency"] = e.Currency,
            ["CostNanos"] = e.CostNanos,
            ["Cost"] = Pricing.FormatNanos(e.CostNanos),
            ["InputCostNanos"] = e.InputCostNanos,
            ["OutputCostNanos"] = e.OutputCostNanos,
            ["CacheReadCostNanos"] = e.CacheReadCostNanos,
            ["CacheWriteCostNanos"] = e.CacheWriteCostNanos,
            ["WebSearchRequests"] = e.WebSearchRequests,
            ["WebSearchCostNanos"] = e.WebSearchCostNanos,
            ["PriceVersion"] = e.PriceVersion ?? "",
            ["Status"] = e.Status,
            ["StopReason"] = e.StopReason ?? "",
            ["ErrorType"] = e.ErrorType ?? "",
            ["Cancelled"] = e.Cancelled,
            ["StartedAt"] = e.StartedAt.UtcDateTime,
            ["DurationMs"] = e.DurationMs,
        };
        if (e.TtftMs is { } ttft)
        {
            entity["TtftMs"] = ttft;
        }

        return entity;
    }

    /// <summary>
    /// The inverse of <see cref="Billing"/> for what a billing row carries: the event as the writer counted it (tokens,
    /// cost and its split, status, error, cancel, web searches). Energy figures are in the energy row and stay unset.
    /// Reconciliation counts it with <see cref="UsageCounters.From"/>, the rollup's own rule.
    /// </summary>
    public static UsageEvent BillingEvent(TableEntity row) => new()
    {
        RequestId = EntityValues.String(row, "RequestId") ?? row.RowKey,
        Account = EntityValues.String(row, "Account") ?? "",
        KeyId = EntityValues.String(row, "KeyId") ?? "",
        SessionId = EntityValues.String(row, "SessionId") is { Length: > 0 } session ? session : null,
        RequestedModel = EntityValues.String(row, "RequestedModel") ?? "",
        UpstreamModel = EntityValues.String(row, "UpstreamModel") ?? "",
        Upstream = EntityValues.String(row, "Upstream") ?? "",
        StartedAt = EntityValues.Date(row, "StartedAt") ?? row.Timestamp ?? DateTimeOffset.MinValue,
        Currency = EntityValues.String(row, "Currency") ?? "",
        InputTokens = EntityValues.Long(row, "InputTokens") ?? 0,
        CacheReadTokens = EntityValues.Long(row, "CacheReadTokens") ?? 0,
        CacheWriteTokens = EntityValues.Long(row, "CacheWriteTokens") ?? 0,
        OutputTokens = EntityValues.Long(row, "OutputTokens") ?? 0,
        ReasoningTokens = EntityValues.Long(row, "ReasoningTokens") ?? 0,
        CostNanos = EntityValues.Long(row, "CostNanos") ?? 0,
        InputCostNanos = EntityValues.Long(row, "InputCostNanos") ?? 0,
        OutputCostNanos = EntityValues.Long(row, "OutputCostNanos") ?? 0,
        CacheReadCostNanos = EntityValues.Long(row, "CacheReadCostNanos") ?? 0,
        CacheWriteCostNanos = EntityValues.Long(row, "CacheWriteCostNanos") ?? 0,
        WebSearchCostNanos = EntityValues.Long(row, "WebSearchCostNanos") ?? 0,
        WebSearchRequests = (int)(EntityValues.Long(row, "WebSearchRequests") ?? 0),
        Status = (int)(EntityValues.Long(row, "Status") ?? 0),
        ErrorType = EntityValues.String(row, "ErrorType") is { Length: > 0 } error ? error : null,
        Cancelled = EntityValues.Bool(row, "Cancelled") ?? false,
        Region = "",
        EnergyMethod = "",
    };

    public static TableEntity Energy(UsageEvent e)
    {
        var entity = new TableEntity(RowPartition(e.Account, e.Day), e.RequestId)
        {
            ["RequestId"] = e.RequestId,
            ["Account"] = e.Account,
            ["UpstreamModel"] = e.UpstreamModel,
            ["Region"] = e.Region,
            ["GridGco2ePerKwh"] = e.GridGco2ePerKwh,
            ["Pue"] = e.Pue,
            ["Method"] = e.EnergyMethod,
            ["EnergySource"] = e.EnergySource ?? (e.EnergyWh is null ? EnergySources.Unknown : EnergySources.Catalog),
            ["EnergyKnown"] = e.EnergyWh is not null,
            ["InputTokens"] = e.InputTokens + e.CacheReadTokens + e.CacheWriteTokens,
            ["CacheReadTokens"] = e.CacheReadTokens,
            ["OutputTokens"] = e.OutputTokens,
            ["DurationMs"] = e.DurationMs,
            ["StartedAt"] = e.StartedAt.UtcDateTime,
        };
        if (e.EnergyWh is not null)
        {
            entity["EnergyWh"] = e.EnergyWh;
            entity["EnergyWhMin"] = e.EnergyWhMin;
            entity["EnergyWhMax"] = e.EnergyWhMax;
            entity["Gco2e"] = e.Gco2e;
            entity["Gco2eMin"] = e.Gco2eMin;
            entity["Gco2eMax"] = e.Gco2eMax;
            entity["WaterMl"] = e.WaterMl;
            entity["EnergyMicroWh"] = UsageCounters.Micro(e.EnergyWh);
            entity["Gco2eMicrograms"] = UsageCounters.Micro(e.Gco2e);
            entity["WaterMicroliters"] = UsageCounters.Milli(e.WaterMl);
        }

        return entity;
    }
}

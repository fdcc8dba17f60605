using Azure.Data.Tables;
using Melious.Gateway.Storage;

namespace Melious.Gateway.Usage;

/// <summary>
/// Additive totals of a set of requests. Every field is an integer so sums are exact and order-independent:
/// energy in micro-watt-hours (Wh × 1e6), emissions in micrograms CO2e (g × 1e6), water in microlitres (ml × 1e3),
/// money in nano-units of the currency.
/// </summary>
public sealed record UsageCounters
{
    public long Requests { get; init; }
    public long ErrorRequests { get; init; }
    public long CancelledRequests { get; init; }
    public long InputTokens { get; init; }
    public long CacheReadTokens { get; init; }
    public long CacheWriteTokens { get; init; }
    public long OutputTokens { get; init; }
    public long ReasoningTokens { get; init; }
    public long CostNanos { get; init; }
    public long EnergyMicroWh { get; init; }
    public long EnergyMinMicroWh { get; init; }
    public long EnergyMaxMicroWh { get; init; }
    public long Gco2eMicrograms { get; init; }
    public long Gco2eMinMicrograms { get; init; }
    public long Gco2eMaxMicrograms { get; init; }
    public long WaterMicroliters { get; init; }

    /// <summary>Requests whose model had no energy parameters (their energy is not in the sums).</summary>
    public long UnknownEnergyRequests { get; init; }

    // The split of CostNanos by what was charged (CostSplit): the five parts plus the unsplit rest add up to CostNanos.
    // Rows written before the split existed lack these columns: their whole cost reads as unsplit (UnsplitCostNanos).
    public long InputCostNanos { get; init; }
    public long OutputCostNanos { get; init; }
    public long CacheReadCostNanos { get; init; }
    public long CacheWriteCostNanos { get; init; }
    public long WebSearchCostNanos { get; init; }
    public long WebSearchRequests { get; init; }

    /// <summary>The part of <see cref="CostNanos"/> not attributed to a token type or web search (usage counted before the split).</summary>
    public long UnsplitCostNanos => CostNanos - InputCostNanos - OutputCostNanos - CacheReadCostNanos - CacheWriteCostNanos - WebSearchCostNanos;

    public CostParts CostParts => new(InputCostNanos, OutputCostNanos, CacheReadCostNanos, CacheWriteCostNanos, WebSearchCostNanos, UnsplitCostNanos);

    public static readonly UsageCounters Zero = new();

    public static UsageCounters From(UsageEvent e)
    {
        var parts = CostSplit.FromEvent(e);
        return new()
        {
            Requests = 1,
            ErrorRequests = e.IsError ? 1 : 0,
            CancelledRequests = e.Cancelled ? 1 : 0,
            InputTokens = e.InputTokens,
            CacheReadTokens = e.CacheReadTokens,
            CacheWriteTokens = e.CacheWriteTokens,
            OutputTokens = e.OutputTokens,
            ReasoningTokens = e.ReasoningTokens,
            CostNanos = e.CostNanos,
            EnergyMicroWh = Micro(e.EnergyWh),
            EnergyMinMicroWh = Micro(e.EnergyWhMin),
            EnergyMaxMicroWh = Micro(e.EnergyWhMax),
            Gco2eMicrograms = Micro(e.Gco2e),
            Gco2eMinMicrograms = Micro(e.Gco2eMin),
            Gco2eMaxMicrograms = Micro(e.Gco2eMax),
            WaterMicroliters = Milli(e.WaterMl),
            UnknownEnergyRequests = e.EnergyWh is null ? 1 : 0,
            InputCostNanos = parts.Input,
            OutputCostNanos = parts.Output,
            CacheReadCostNanos = parts.CacheRead,
            CacheWriteCostNanos = parts.CacheWrite,
            WebSearchCostNanos = parts.WebSearch,
            WebSearchRequests = Math.Max(0, e.WebSearchRequests),
        };
    }

    /// <summary>The integer micro-unit stored for a double figure (rows carry both, sums use this).</summary>
    public static long Micro(double? value) => Scaled(value, 1_000_000);

    /// <summary>Thousandths, for water: millilitres → microlitres.</summary>
    public static long Milli(double? value) => Scaled(value, 1_000);

    private static long Scaled(double? value, double factor) =>
        value is { } v && double.IsFinite(v) ? (long)Math.Round(v * factor, MidpointRounding.ToEven) : 0;

    public static UsageCounters operator +(UsageCounters a, UsageCounters b) => new()
    {
        Requests = a.Requests + b.Requests,
        ErrorRequests = a.ErrorRequests + b.ErrorRequests,
        CancelledRequests = a.CancelledRequests + b.CancelledRequests,
        InputTokens = a.InputTokens + b.InputTokens,
        CacheReadTokens = a.CacheReadTokens + b.CacheReadTokens,
        CacheWriteTokens = a.CacheWriteTokens + b.CacheWriteTokens,
        OutputTokens = a.OutputTokens + b.OutputTokens,
        ReasoningTokens = a.ReasoningTokens + b.ReasoningTokens,
        CostNanos = a.CostNanos + b.CostNanos,
        EnergyMicroWh = a.EnergyMicroWh + b.EnergyMicroWh,
        EnergyMinMicroWh = a.EnergyMinMicroWh + b.EnergyMinMicroWh,
        EnergyMaxMicroWh = a.EnergyMaxMicroWh + b.EnergyMaxMicroWh,
        Gco2eMicrograms = a.Gco2eMicrograms + b.Gco2eMicrograms,
        Gco2eMinMicrograms = a.Gco2eMinMicrograms + b.Gco2eMinMicrograms,
        Gco2eMaxMicrograms = a.Gco2eMaxMicrograms + b.Gco2eMaxMicrograms,
        WaterMicroliters = a.WaterMicroliters + b.WaterMicroliters,
        UnknownEnergyRequests = a.UnknownEnergyRequests + b.UnknownEnergyRequests,
        InputCostNanos = a.InputCostNanos + b.InputCostNanos,
        OutputCostNanos = a.OutputCostNanos + b.OutputCostNanos,
        CacheReadCostNanos = a.CacheReadCostNanos + b.CacheReadCostNanos,
        CacheWriteCostNanos = a.CacheWriteCostNanos + b.CacheWriteCostNanos,
        WebSearchCostNanos = a.WebSearchCostNanos + b.WebSearchCostNanos,
        WebSearchRequests = a.WebSearchRequests + b.WebSearchRequests,
    };

    public void WriteTo(TableEntity entity)
    {
        entity[nameof(Requests)] = Requests;
        entity[nameof(ErrorRequests)] = ErrorRequests;
        entity[nameof(CancelledRequests)] = CancelledRequests;
        entity[nameof(InputTokens)] = InputTokens;
        entity[nameof(CacheReadTokens)] = CacheReadTokens;
        entity[nameof(CacheWriteTokens)] = CacheWriteTokens;
        entity[nameof(OutputTokens)] = OutputTokens;
        entity[nameof(ReasoningTokens)] = ReasoningTokens;
        entity[nameof(CostNanos)] = CostNanos;
        entity[nameof(EnergyMicroWh)] = EnergyMicroWh;
        entity[nameof(EnergyMinMicroWh)] = EnergyMinMicroWh;
        entity[nameof(EnergyMaxMicroWh)] = EnergyMaxMicroWh;
        entity[nameof(Gco2eMicrograms)] = Gco2eMicrograms;
        entity[nameof(Gco2eMinMicrograms)] = Gco2eMinMicrograms;
        entity[nameof(Gco2eMaxMicrograms)] = Gco2eMaxMicrograms;
        entity[nameof(WaterMicroliters)] = WaterMicroliters;
        entity[nameof(UnknownEnergyRequests)] = UnknownEnergyRequests;
        entity[nameof(InputCostNanos)] = InputCostNanos;
        entity[nameof(OutputCostNanos)] = OutputCostNanos;
        entity[nameof(CacheReadCostNanos)] = CacheReadCostNanos;
        entity[nameof(CacheWriteCostNanos)] = CacheWriteCostNanos;
        entity[nameof(WebSearchCostNanos)] = WebSearchCostNanos;
        entity[nameof(WebSearchRequests)] = WebSearchRequests;

        // Human-friendly companions (derived; the integer columns are authoritative).
        entity["Cost"] = Pricing.FormatNanos(CostNanos);
        entity["EnergyWh"] = EnergyMicroWh / 1_000_000d;
        entity["Gco2e"] = Gco2eMicrograms / 1_000_000d;
        entity["WaterMl"] = WaterMicroliters / 1_000d;
    }

    public static UsageCounters ReadFrom(TableEntity e) => new()
    {
        Requests = L(e, nameof(Requests)),
        ErrorRequests = L(e, nameof(ErrorRequests)),
        CancelledRequests = L(e, nameof(CancelledRequests)),
        InputTokens = L(e, nameof(InputTokens)),
        CacheReadTokens = L(e, nameof(CacheReadTokens)),
        CacheWriteTokens = L(e, nameof(CacheWriteTokens)),
        OutputTokens = L(e, nameof(OutputTokens)),
        ReasoningTokens = L(e, nameof(ReasoningTokens)),
        CostNanos = L(e, nameof(CostNanos)),
        EnergyMicroWh = L(e, nameof(EnergyMicroWh)),
        EnergyMinMicroWh = L(e, nameof(EnergyMinMicroWh)),
        EnergyMaxMicroWh = L(e, nameof(EnergyMaxMicroWh)),
        Gco2eMicrograms = L(e, nameof(Gco2eMicrograms)),
        Gco2eMinMicrograms = L(e, nameof(Gco2eMinMicrograms)),
        Gco2eMaxMicrograms = L(e, nameof(Gco2eMaxMicrograms)),
        WaterMicroliters = L(e, nameof(WaterMicroliters)),
        UnknownEnergyRequests = L(e, nameof(UnknownEnergyRequests)),
        InputCostNanos = L(e, nameof(InputCostNanos)),
        OutputCostNanos = L(e, nameof(OutputCostNanos)),
        CacheReadCostNanos = L(e, nameof(CacheReadCostNanos)),
        CacheWriteCostNanos = L(e, nameof(CacheWriteCostNanos)),
        WebSearchCostNanos = L(e, nameof(WebSearchCostNanos)),
        WebSearchRequests = L(e, nameof(WebSearchRequests)),
    };

    private static long L(TableEntity e, string name) => EntityValues.Long(e, name) ?? 0;
}

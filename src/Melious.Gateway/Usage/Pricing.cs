using System.Globalization;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Routing;

namespace Melious.Gateway.Usage;

/// <summary>Token counts in Anthropic's convention: <see cref="Input"/> excludes cache reads and writes.</summary>
public readonly record struct TokenUsage(long Input, long CacheRead, long CacheWrite, long Output, long Reasoning)
{
    public long TotalInput => Input + CacheRead + CacheWrite;
}

/// <summary>The price of one request, exact in <see cref="decimal"/>.</summary>
public readonly record struct CostBreakdown(decimal Input, decimal Output, decimal CacheRead, decimal CacheWrite, string Currency, string? PriceVersion, decimal WebSearch = 0)
{
    public decimal Total => Input + Output + CacheRead + CacheWrite + WebSearch;

    public long TotalNanos => Pricing.ToNanos(Total);

    public BillingCost ToWire() => new()
    {
        Currency = Currency,
        Amount = Pricing.Format(Total),
        Input = Pricing.Format(Input),
        Output = Pricing.Format(Output),
        CacheRead = Pricing.Format(CacheRead),
        CacheWrite = Pricing.Format(CacheWrite),
        WebSearch = WebSearch > 0 ? Pricing.Format(WebSearch) : null,
        PriceVersion = PriceVersion,
    };
}

/// <summary>
/// Money rules: prices are per million tokens; arithmetic is <see cref="decimal"/>; a request's cost is stored
/// as Int64 nano-units of its currency (1e-9), the only rounding (half to even) happening there; display strings
/// carry nine decimals. Invoice rounding to the currency's minor unit happens only in reports.
/// </summary>
public static class Pricing
{
    private const decimal PerMillion = 1_000_000m;
    private const decimal Nano = 1_000_000_000m;

    public static CostBreakdown Compute(PriceCard prices, TokenUsage usage) => new(
        usage.Input * prices.InputPerMTok / PerMillion,
        usage.Output * prices.OutputPerMTok / PerMillion,
        usage.CacheRead * prices.CacheReadPerMTok / PerMillion,
        usage.CacheWrite * prices.CacheWritePerMTok / PerMillion,
        prices.Currency,
        prices.Version);

    public static long ToNanos(decimal amount) => (long)decimal.Round(amount * Nano, 0, MidpointRounding.ToEven);

    public static decimal FromNanos(long nanos) => nanos / Nano;

    /// <summary>Invariant string with nine decimals, e.g. <c>0.000942000</c>.</summary>
    public static string Format(decimal amount) => decimal.Round(amount, 9, MidpointRounding.ToEven).ToString("0.000000000", CultureInfo.InvariantCulture);

    public static string FormatNanos(long nanos) => Format(FromNanos(nanos));

    /// <summary>ISO 4217 minor units, for invoice rounding in reports.</summary>
    public static int MinorUnits(string currency) => currency.ToUpperInvariant() switch
    {
        "JPY" or "KRW" or "CLP" or "ISK" or "VND" => 0,
        "KWD" or "BHD" or "OMR" or "JOD" or "TND" => 3,
        _ => 2,
    };
}

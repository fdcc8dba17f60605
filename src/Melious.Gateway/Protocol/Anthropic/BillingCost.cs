using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.Anthropic;

/// <summary>
/// Extra top-level field on every completion: what this request costs at the catalog price.
/// Amounts are invariant-culture decimal strings with nine fractional digits (nano-units of the currency).
/// </summary>
public sealed record BillingCost
{
    public required string Currency { get; init; }

    public required string Amount { get; init; }

    public required string Input { get; init; }

    public required string Output { get; init; }

    public required string CacheRead { get; init; }

    public required string CacheWrite { get; init; }

    /// <summary>Web searches the gateway ran for this response (absent when none).</summary>
    public string? WebSearch { get; init; }

    public string? PriceVersion { get; init; }
}

/// <summary>
/// Extra top-level field on every completion: the estimated energy, emissions and water of this request.
/// When the model has no energy parameters the numbers are null and <see cref="Method"/> is <c>unknown</c>.
/// </summary>
public sealed record EnvironmentImpact
{
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public double? EnergyWh { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public double? EnergyWhMin { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public double? EnergyWhMax { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public double? Gco2e { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public double? Gco2eMin { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public double? Gco2eMax { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public double? WaterMl { get; init; }

    public required string Region { get; init; }

    public required string Method { get; init; }

    /// <summary>Where the parameters came from: <c>catalog</c>, <c>measured</c>, <c>known-model</c>, <c>parsed-name</c> or <c>unknown</c>.</summary>
    public string Source { get; init; } = "unknown";
}

using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Routing;

namespace Melious.Gateway.Usage;

/// <summary>An energy estimate with its range. All null when the model has no energy parameters.</summary>
public sealed record EnergyEstimate(
    double? EnergyWh,
    double? EnergyWhMin,
    double? EnergyWhMax,
    double? Gco2e,
    double? Gco2eMin,
    double? Gco2eMax,
    double? Gco2eUsage,
    double? Gco2eEmbodied,
    double? WaterMl,
    RegionFactors Region,
    string Method,
    string Source = EnergySources.Unknown)
{
    public bool Known => EnergyWh is not null;

    public EnvironmentImpact ToWire() => new()
    {
        EnergyWh = EnergyWh,
        EnergyWhMin = EnergyWhMin,
        EnergyWhMax = EnergyWhMax,
        Gco2e = Gco2e,
        Gco2eMin = Gco2eMin,
        Gco2eMax = Gco2eMax,
        WaterMl = WaterMl,
        Region = Region.Region,
        Method = Method,
        Source = Source,
    };
}

/// <summary>
/// Per-request energy, emissions and water (method <c>melious-energy-1</c>): the EcoLogits 0.9.1 LLM-inference
/// model (Rincé &amp; Banse, JOSS 2025) re-implemented, plus a prefill term for input tokens and an optional measured
/// J/token override. The central value uses batch 64; the range is the same function at a low corner (batch 256,
/// low PUE, low prefill cost, low grid intensity) and a high corner (batch 16, high PUE, high prefill cost, high
/// grid intensity). See docs/energy-method.md for the formula and its sources.
/// </summary>
public static class EnergyModel
{
    public const string Method = "melious-energy-1";
    public const string UnknownMethod = "unknown";

    // EcoLogits 0.9.1 constants.
    private const double Alpha = 1.1665273e-6;
    private const double Beta = -1.1205921e-2;
    private const double Gamma = 4.0529281e-5;
    private const double LatencyAlpha = 6.785088e-4;
    private const double LatencyBeta = 3.119310e-4;
    private const double LatencyGamma = 1.9473718e-2;
    private const double GpuMemoryGb = 80;
    private const double MemoryOverhead = 1.2;
    private const double ServerPowerW = 1200;
    private const double GpusPerServer = 8;
    private const double ServerEmbodiedKg = 5700;
    private const double GpuEmbodiedKg = 164;
    private const double LifespanSeconds = 3 * 365 * 24 * 3600;

    // Gateway extension: prefill energy per (billion active parameters × input token), Wh.
    private const double PrefillCentral = 8e-7;
    private const double PrefillLow = 4e-7;
    private const double PrefillHigh = 1.6e-6;
    private const double CachedWeight = 0.1;

    private const int BatchCentral = 64;
    private const int BatchLow = 256;
    private const int BatchHigh = 16;

    /// <param name="inputTokens">All prompt tokens, cached ones included.</param>
    /// <param name="cachedTokens">Prompt tokens served from the prefix cache.</param>
    /// <param name="outputTokens">Completion tokens, reasoning included.</param>
    /// <param name="measuredSeconds">Wall time of the upstream generation, which caps the modelled latency.</param>
    public static EnergyEstimate Estimate(EnergyProfile? profile, RegionFactors region, long inputTokens, long cachedTokens, long outputTokens, double measuredSeconds)
    {
        if (profile is null || profile.ActiveParamsB <= 0)
        {
            return new EnergyEstimate(null, null, null, null, null, null, null, null, null, region, UnknownMethod);
        }

        // Inferred parameters widen the range: the table's usual precision and a parsed size may not be what is served.
        var spread = InferredSpread(profile.Source);

        var central = Corner(profile, inputTokens, cachedTokens, outputTokens, measuredSeconds, BatchCentral, region.Pue, PrefillCentral, region.GridGco2ePerKwh, region);
        var low = Corner(profile, inputTokens, cachedTokens, outputTokens, measuredSeconds, BatchLow, region.PueLow, PrefillLow, region.GridLow, region);
        var high = Corner(profile, inputTokens, cachedTokens, outputTokens, measuredSeconds, BatchHigh, region.PueHigh, PrefillHigh, region.GridHigh, region);

        return new EnergyEstimate(
            central.EnergyWh,
            Math.Min(low.EnergyWh, central.EnergyWh) / spread,
            Math.Max(high.EnergyWh, central.EnergyWh) * spread,
            central.UsageG + central.EmbodiedG,
            Math.Min(low.UsageG + low.EmbodiedG, central.UsageG + central.EmbodiedG) / spread,
            Math.Max(high.UsageG + high.EmbodiedG, central.UsageG + central.EmbodiedG) * spread,
            central.UsageG,
            central.EmbodiedG,
            central.WaterMl,
            region,
            Method,
            profile.Source);
    }

    /// <summary>
    /// Factor by which the range's low end is divided and its high end multiplied: 1 for operator-entered or measured
    /// parameters, 1.25 for the built-in table, 2 for sizes parsed from the model id.
    /// </summary>
    public static double InferredSpread(string source) => source switch
    {
        EnergySources.KnownModel => 1.25,
        EnergySources.ParsedName => 2.0,
        _ => 1.0,
    };

    /// <summary>Number of 80 GB GPUs needed to hold the weights, rounded up to a power of two.</summary>
    public static int GpuCount(EnergyProfile profile)
    {
        if (profile.GpuCount is int measured and > 0)
        {
            return measured;
        }

        var memoryGb = MemoryOverhead * profile.TotalParamsB * profile.QuantBits / 8;
        var gpus = Math.Max(1, Math.Ceiling(memoryGb / GpuMemoryGb));
        return (int)Math.Pow(2, Math.Ceiling(Math.Log2(gpus)));
    }

    internal readonly record struct CornerResult(double EnergyWh, double ItEnergyWh, double UsageG, double EmbodiedG, double WaterMl, double LatencySeconds);

    internal static CornerResult Corner(EnergyProfile p, long inputTokens, long cachedTokens, long outputTokens, double measuredSeconds, int batch, double pue, double prefill, double gridIntensity, RegionFactors region)
    {
        var nGpu = GpuCount(p);
        var cached = Math.Clamp(cachedTokens, 0, inputTokens);
        var hasOverride = p.JoulesPerOutputToken is > 0;

        // Decode energy per output token per GPU, Wh.
        var perToken = hasOverride
            ? p.JoulesPerOutputToken!.Value / 3600 / nGpu
            : Alpha * Math.Exp(Beta * batch) * p.ActiveParamsB + Gamma;
        var gpuWh = nGpu * outputTokens * perToken;

        // Prefill, with cached tokens at a tenth of the cost. A measured override already includes typical prompts.
        var prefillTokens = (inputTokens - cached) + CachedWeight * cached;
        if (hasOverride)
        {
            prefillTokens = Math.Max(0, prefillTokens - 500);
        }

        var prefillWh = prefill * p.ActiveParamsB * prefillTokens;

        // Generation latency, capped by what was measured; host (non-GPU) power shared across the batch.
        var modelled = outputTokens * (LatencyAlpha * p.ActiveParamsB + LatencyBeta * batch + LatencyGamma);
        var latency = measuredSeconds > 0 ? Math.Min(modelled, measuredSeconds) : modelled;
        var serverWh = latency / 3600 * ServerPowerW * (nGpu / GpusPerServer) / batch;

        var itWh = gpuWh + prefillWh + serverWh;
        var energyWh = pue * itWh;
        var usageG = energyWh / 1000 * gridIntensity;
        var embodiedG = 1000 * latency * ((nGpu / GpusPerServer) * ServerEmbodiedKg + nGpu * GpuEmbodiedKg) / (LifespanSeconds * batch);
        var waterMl = itWh * region.WueSiteLPerKwh + energyWh * region.WueSourceLPerKwh;
        return new CornerResult(energyWh, itWh, usageG, embodiedG, waterMl, latency);
    }
}

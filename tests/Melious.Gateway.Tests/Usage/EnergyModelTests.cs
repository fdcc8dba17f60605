using Melious.Gateway.Routing;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Tests.Usage;

/// <summary>
/// Golden values: the worked examples of docs/energy-method.md (from the research in energy-billing.md §1.8):
/// 1,000 input and 500 output tokens, no cache, westeurope (255 gCO2e/kWh, PUE 1.18), min/max at the low and
/// high corners, modelled latency not capped by a measurement.
/// </summary>
public sealed class EnergyModelTests
{
    private const double Uncapped = 1e9;
    private static readonly RegionFactors WestEurope = RegionFactors.For("westeurope");

    public static TheoryData<string, double, double, int, int, double, double, double, double, double, double, double> WorkedExamples => new()
    {
        // model, active B, total B, quant bits, GPUs, energy Wh (min, max), usage gCO2e (min, max), embodied gCO2e
        { "Llama-3.1-8B", 8, 8, 16, 1, 0.051, 0.036, 0.095, 0.013, 0.007, 0.031, 0.003 },
        { "Qwen3-30B-A3B", 3.3, 30.5, 16, 1, 0.044, 0.034, 0.077, 0.011, 0.007, 0.026, 0.003 },
        { "Llama-3.3-70B", 70, 70, 16, 4, 0.39, 0.19, 0.88, 0.099, 0.037, 0.29, 0.025 },
    };

    [Theory]
    [MemberData(nameof(WorkedExamples))]
    public void Estimate_MatchesWorkedExamples(string model, double active, double total, int bits, int gpus, double wh, double whMin, double whMax, double usage, double usageMin, double usageMax, double embodied)
    {
        var profile = new EnergyProfile(active, total, bits);
        var estimate = EnergyModel.Estimate(profile, WestEurope, 1_000, 0, 500, Uncapped);

        Assert.Equal(gpus, EnergyModel.GpuCount(profile));
        AssertRounded(wh, estimate.EnergyWh!.Value, model + " energy");
        AssertRounded(whMin, estimate.EnergyWhMin!.Value, model + " energy min");
        AssertRounded(whMax, estimate.EnergyWhMax!.Value, model + " energy max");
        AssertRounded(usage, estimate.Gco2eUsage!.Value, model + " usage gCO2e");
        AssertRounded(embodied, estimate.Gco2eEmbodied!.Value, model + " embodied gCO2e");
        Assert.Equal(EnergyModel.Method, estimate.Method);

        // The corners of the usage emissions, on their own.
        var low = EnergyModel.Corner(profile, 1_000, 0, 500, Uncapped, 256, WestEurope.PueLow, 4e-7, WestEurope.GridLow, WestEurope);
        var high = EnergyModel.Corner(profile, 1_000, 0, 500, Uncapped, 16, WestEurope.PueHigh, 1.6e-6, WestEurope.GridHigh, WestEurope);
        AssertRounded(usageMin, low.UsageG, model + " usage min");
        AssertRounded(usageMax, high.UsageG, model + " usage max");

        // Reported emissions are usage plus embodied, and the range brackets the central value.
        Assert.Equal(estimate.Gco2eUsage!.Value + estimate.Gco2eEmbodied!.Value, estimate.Gco2e!.Value, 12);
        Assert.InRange(estimate.EnergyWh!.Value, estimate.EnergyWhMin!.Value, estimate.EnergyWhMax!.Value);
        Assert.InRange(estimate.Gco2e!.Value, estimate.Gco2eMin!.Value, estimate.Gco2eMax!.Value);
    }

    [Fact]
    public void Estimate_Llama8B_HandComputed()
    {
        // n_gpu = 1; e_dec = α·e^(64β)·8 + γ = 4.5084e-5 Wh; E_gpu = 500·e_dec = 0.022542 Wh; E_pre = 8e-7·8·1000 = 0.0064 Wh;
        // ΔT = 500·(6.785088e-4·8 + 3.11931e-4·64 + 1.9473718e-2) = 22.4329 s; E_srv = ΔT/3600·1200·(1/8)/64 = 0.014604 Wh;
        // E = 1.18·(0.022542 + 0.0064 + 0.014604) = 0.051385 Wh; water = 0.043546·0.30 + 0.051385·3.433 = 0.189468 mL.
        var estimate = EnergyModel.Estimate(new EnergyProfile(8, 8), WestEurope, 1_000, 0, 500, Uncapped);
        Assert.InRange(estimate.EnergyWh!.Value, 0.051384, 0.051386);
        Assert.InRange(estimate.WaterMl!.Value, 0.18946, 0.18948);
        Assert.InRange(estimate.Gco2eUsage!.Value, 0.0131031, 0.0131037);
    }

    [Fact]
    public void Estimate_DeepSeekV3Fp8_UsesSixteenGpus()
    {
        var profile = new EnergyProfile(37, 671, 8);
        var estimate = EnergyModel.Estimate(profile, WestEurope, 1_000, 0, 500, Uncapped);
        Assert.Equal(16, EnergyModel.GpuCount(profile));
        Assert.Equal(1.0, estimate.EnergyWh!.Value, 1);
        Assert.Equal(0.26, estimate.Gco2eUsage!.Value, 2);
        Assert.Equal(0.07, estimate.Gco2eEmbodied!.Value, 2);
    }

    [Fact]
    public void Estimate_LongPrompt_PrefillDominates_AndCacheCutsIt()
    {
        var profile = new EnergyProfile(70, 70);
        var cold = EnergyModel.Estimate(profile, WestEurope, 50_000, 0, 300, Uncapped);
        var cached = EnergyModel.Estimate(profile, WestEurope, 50_000, 40_000, 300, Uncapped);
        Assert.Equal(3.5, cold.EnergyWh!.Value, 1);
        Assert.Equal(1.1, cached.EnergyWh!.Value, 1);
    }

    [Fact]
    public void Estimate_MeasuredLatencyCapsServerTime()
    {
        var profile = new EnergyProfile(70, 70);
        var modelled = EnergyModel.Estimate(profile, WestEurope, 1_000, 0, 500, Uncapped);
        var fast = EnergyModel.Estimate(profile, WestEurope, 1_000, 0, 500, 5);
        Assert.True(fast.EnergyWh < modelled.EnergyWh, "a measured 5 s generation costs less host energy than the modelled 43 s");
    }

    [Fact]
    public void Estimate_MeasuredOverride_UsesJoulesPerToken()
    {
        // 0.797 J/token on 4×H100 (ML.ENERGY, Llama-3.1-70B): GPU energy = 500 × 0.797 / 3600 Wh.
        var profile = new EnergyProfile(70, 70, 16, JoulesPerOutputToken: 0.797, GpuCount: 4);
        var result = EnergyModel.Corner(profile, 1_000, 0, 500, Uncapped, 64, 1, 0, 0, WestEurope);
        var server = result.LatencySeconds / 3600 * 1200 * 0.5 / 64;
        Assert.Equal(500 * 0.797 / 3600 + server, result.ItEnergyWh, 9);
    }

    [Fact]
    public void Estimate_WithoutParameters_IsUnknownNotInvented()
    {
        var estimate = EnergyModel.Estimate(null, WestEurope, 1_000, 0, 500, 3);
        Assert.False(estimate.Known);
        Assert.Null(estimate.EnergyWh);
        Assert.Null(estimate.Gco2e);
        Assert.Equal("unknown", estimate.Method);
        Assert.Equal("westeurope", estimate.ToWire().Region);
    }

    [Fact]
    public void RegionFactors_UnknownRegionFallsBackToWorld_AndOverridesApply()
    {
        Assert.Equal(475, RegionFactors.For("mars-east").GridGco2ePerKwh);
        Assert.Equal(40, RegionFactors.For("swedencentral").GridGco2ePerKwh);
        var custom = RegionFactors.For("westeurope", gridOverride: 100, pueOverride: 1.1);
        Assert.Equal(100, custom.GridGco2ePerKwh);
        Assert.Equal(100, custom.GridHigh);
        Assert.Equal(1.1, custom.Pue);
    }

    private static void AssertRounded(double expected, double actual, string what)
    {
        // The table rounds to two significant digits.
        var digits = expected >= 0.1 ? 2 : 3;
        Assert.True(Math.Abs(Math.Round(actual, digits) - expected) <= Math.Pow(10, -digits) * 1.01,
            $"{what}: expected {expected}, got {actual:0.000000}");
    }
}

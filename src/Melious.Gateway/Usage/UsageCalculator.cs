using Melious.Gateway.Routing;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Usage;

/// <summary>Prices a request and estimates its energy, for the response and for the usage event alike.</summary>
public sealed class UsageCalculator(IOptions<GatewayOptions> options)
{
    private readonly RegionFactors _region = RegionFactors.For(options.Value.Energy.Region, options.Value.Energy.GridGco2ePerKwh, options.Value.Energy.Pue);

    public RegionFactors Region => _region;

    /// <remarks>
    /// A model without catalog energy parameters (a pass-through name, an entry added without them) gets the built-in
    /// table's or its name's parameters at request time (<see cref="KnownModels.Infer"/>); catalog parameters win.
    /// </remarks>
    public (CostBreakdown Cost, EnergyEstimate Energy) Compute(ModelEntry model, in TokenUsage usage, double seconds) =>
        (Pricing.Compute(model.Prices, usage), EnergyModel.Estimate(ProfileOf(model), _region, usage.TotalInput, usage.CacheRead, usage.Output, seconds));

    public static EnergyProfile? ProfileOf(ModelEntry model) => model.Energy ?? KnownModels.Infer(model.Id);
}

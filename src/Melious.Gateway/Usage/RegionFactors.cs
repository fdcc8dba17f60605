namespace Melious.Gateway.Usage;

/// <summary>
/// Location-based grid carbon intensity (gCO2e/kWh, annual average with a low–high range), data-centre PUE and
/// water factors for an Azure region. Defaults follow docs/energy-method.md (Ember 2023 via OWID, EcoLogits
/// electricity mixes, Microsoft PUE/WUE fact sheets).
/// </summary>
public sealed record RegionFactors(
    string Region,
    string Zone,
    double GridGco2ePerKwh,
    double GridLow,
    double GridHigh,
    double Pue,
    double PueLow,
    double PueHigh,
    double WueSiteLPerKwh,
    double WueSourceLPerKwh,
    string GridSource)
{
    private const string Ember = "Ember2023-OWID";
    private const double AzurePue = 1.18;
    private const double AzurePueLow = 1.12;
    private const double AzurePueHigh = 1.25;
    private const double AzureWueSite = 0.30;

    private static readonly Dictionary<string, RegionFactors> Known = new(StringComparer.OrdinalIgnoreCase)
    {
        ["westeurope"] = Azure("westeurope", "NLD", 255, 200, 330, 3.433),
        ["swedencentral"] = Azure("swedencentral", "SWE", 40, 20, 60, 6.0315),
        ["francecentral"] = Azure("francecentral", "FRA", 50, 30, 70, 3.6737),
        ["germanywestcentral"] = Azure("germanywestcentral", "DEU", 360, 300, 450, 1.947),
        ["northeurope"] = Azure("northeurope", "IRL", 290, 230, 350, 1.4769),
        ["uksouth"] = Azure("uksouth", "GBR", 200, 130, 260, 2.329),
        ["norwayeast"] = Azure("norwayeast", "NOR", 30, 15, 50, 6.6633),
        ["eastus"] = Azure("eastus", "USA", 330, 270, 400, 3.1321),
        ["eastus2"] = Azure("eastus2", "USA", 330, 270, 400, 3.1321),
        ["westus2"] = Azure("westus2", "USA", 100, 60, 300, 3.1321),
        ["centralus"] = Azure("centralus", "USA", 430, 350, 500, 3.1321),
    };

    /// <summary>The factors for <paramref name="region"/>; an unknown region uses the world average (475 gCO2e/kWh).</summary>
    public static RegionFactors For(string? region, double? gridOverride = null, double? pueOverride = null)
    {
        var factors = region is not null && Known.TryGetValue(region, out var known)
            ? known
            : Azure(region ?? "world", "WOR", 475, 400, 550, 3.908);
        if (gridOverride is { } grid)
        {
            // An operator-supplied intensity is taken as exact: the range collapses onto it.
            factors = factors with { GridGco2ePerKwh = grid, GridLow = grid, GridHigh = grid, GridSource = "configured" };
        }

        if (pueOverride is { } pue)
        {
            factors = factors with { Pue = pue, PueLow = pue, PueHigh = pue };
        }

        return factors;
    }

    public static IReadOnlyCollection<string> KnownRegions => Known.Keys;

    private static RegionFactors Azure(string region, string zone, double grid, double low, double high, double wueSource) =>
        new(region, zone, grid, low, high, AzurePue, AzurePueLow, AzurePueHigh, AzureWueSite, wueSource, Ember);
}

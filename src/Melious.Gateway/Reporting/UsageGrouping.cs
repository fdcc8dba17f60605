using Melious.Gateway.Usage;

namespace Melious.Gateway.Reporting;

/// <summary>One group (a day, model, key, session …) of a report in one currency, with its exact integer totals.</summary>
public sealed record UsageLine(string Key, string Currency, UsageCounters Totals);

/// <summary>
/// The one place where report rows are grouped and summed: the admin CLI's <c>usage report</c>, the usage API and
/// the dashboard all call it, so they agree to the nano-unit. Sums are of integers (nano-units of money, micro-units
/// of energy, emissions and water); amounts in different currencies are never added.
/// </summary>
public static class UsageGrouping
{
    /// <summary>Groups by key and (upper-cased) currency, ordered by key then currency (ordinal).</summary>
    public static List<UsageLine> Group(IEnumerable<(string Key, string Currency, UsageCounters Totals)> items)
    {
        var groups = new Dictionary<(string Key, string Currency), UsageCounters>();
        foreach (var (key, currency, totals) in items)
        {
            var id = (key, currency.ToUpperInvariant());
            groups[id] = groups.TryGetValue(id, out var sum) ? sum + totals : totals;
        }

        return groups
            .Select(g => new UsageLine(g.Key.Key, g.Key.Currency, g.Value))
            .OrderBy(r => r.Key, StringComparer.Ordinal)
            .ThenBy(r => r.Currency, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>One line per currency with the sum of <paramref name="lines"/>, keyed <paramref name="totalKey"/>.</summary>
    public static List<UsageLine> TotalsByCurrency(IEnumerable<UsageLine> lines, string totalKey = "TOTAL") => lines
        .GroupBy(r => r.Currency, StringComparer.Ordinal)
        .Select(g => new UsageLine(totalKey, g.Key, g.Aggregate(UsageCounters.Zero, (sum, r) => sum + r.Totals)))
        .OrderBy(t => t.Currency, StringComparer.Ordinal)
        .ToList();
}

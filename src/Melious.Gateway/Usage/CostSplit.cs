namespace Melious.Gateway.Usage;

/// <summary>
/// One request's cost in nano-units of its currency, split by what was charged. The parts always add up to the
/// request's <c>CostNanos</c> exactly (see <see cref="CostSplit"/>); <see cref="Unsplit"/> is the part that could not
/// be attributed (usage events and rollups written before the split existed).
/// </summary>
public readonly record struct CostParts(long Input, long Output, long CacheRead, long CacheWrite, long WebSearch, long Unsplit = 0)
{
    public long Total => Input + Output + CacheRead + CacheWrite + WebSearch + Unsplit;
}

/// <summary>
/// How a cost is split into nano-unit parts that sum exactly to the stored total (the report's lines per token type
/// and per cost type then add up to the model's total to the nano-unit, hence to the cent, never by float sums).
/// <list type="number">
/// <item><b>At pricing</b> (<see cref="Allocate"/>): the exact decimal parts are cut to whole nano-units (floor), and
/// the nano-units the total has more than the cut parts (<c>TotalNanos − Σ floor</c>, 0 to 4) go one each to the parts
/// with the largest cut-off remainders (largest-remainder method); ties go in the order input, output, cache read,
/// cache write, web search. Each part then differs from its exact value by less than one nano-unit.</item>
/// <item><b>At counting</b> (<see cref="FromEvent"/>): an event whose parts do not sum to its <c>CostNanos</c> (one
/// published by an older gateway, which rounded each part on its own) gets the difference on its largest part; an
/// event without parts (all zero) is counted as <see cref="CostParts.Unsplit"/>.</item>
/// </list>
/// </summary>
public static class CostSplit
{
    private const decimal Nano = 1_000_000_000m;

    public static CostParts Allocate(CostBreakdown cost)
    {
        Span<decimal> exact = [cost.Input * Nano, cost.Output * Nano, cost.CacheRead * Nano, cost.CacheWrite * Nano, cost.WebSearch * Nano];
        Span<long> parts = stackalloc long[5];
        long sum = 0;
        for (var i = 0; i < parts.Length; i++)
        {
            parts[i] = (long)decimal.Floor(exact[i]);
            sum += parts[i];
        }

        var missing = cost.TotalNanos - sum;
        for (; missing > 0; missing--)
        {
            var best = -1;
            var bestRemainder = 0m;
            for (var i = 0; i < parts.Length; i++)
            {
                var remainder = exact[i] - parts[i];
                if (remainder > bestRemainder)
                {
                    best = i;
                    bestRemainder = remainder;
                }
            }

            if (best < 0)
            {
                // Cannot happen for non-negative parts (the rounded total never exceeds the ceiling of their sum); keep the sum exact anyway.
                best = LargestIndex(parts);
            }

            parts[best]++;
        }

        for (; missing < 0; missing++)
        {
            // Negative prices only: take from the largest part.
            parts[LargestIndex(parts)]--;
        }

        return new CostParts(parts[0], parts[1], parts[2], parts[3], parts[4]);
    }

    /// <summary>The parts of an event as counted in the rollups: summing exactly to <see cref="UsageEvent.CostNanos"/>.</summary>
    public static CostParts FromEvent(UsageEvent e)
    {
        Span<long> parts = [e.InputCostNanos, e.OutputCostNanos, e.CacheReadCostNanos, e.CacheWriteCostNanos, e.WebSearchCostNanos];
        long sum = 0;
        foreach (var p in parts)
        {
            if (p < 0)
            {
                return new CostParts(0, 0, 0, 0, 0, e.CostNanos);
            }

            sum += p;
        }

        if (sum == 0)
        {
            return new CostParts(0, 0, 0, 0, 0, e.CostNanos);
        }

        var largest = LargestIndex(parts);
        parts[largest] += e.CostNanos - sum;
        return parts[largest] < 0
            ? new CostParts(0, 0, 0, 0, 0, e.CostNanos)
            : new CostParts(parts[0], parts[1], parts[2], parts[3], parts[4]);
    }

    /// <summary>The first index of the largest value.</summary>
    private static int LargestIndex(ReadOnlySpan<long> parts)
    {
        var best = 0;
        for (var i = 1; i < parts.Length; i++)
        {
            if (parts[i] > parts[best])
            {
                best = i;
            }
        }

        return best;
    }
}

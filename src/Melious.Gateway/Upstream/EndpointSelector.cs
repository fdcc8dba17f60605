namespace Melious.Gateway.Upstream;

/// <summary>An endpoint as the selector sees it: its identity, weight and requests in flight in this process.</summary>
internal readonly record struct EndpointCandidate(string Key, double Weight, int Outstanding);

/// <summary>
/// Chooses an endpoint of a pool. With an affinity key (a Claude Code session, else the API key) the endpoints are
/// ranked by weighted rendezvous hashing, so a session keeps returning to the replica that holds its prefix cache
/// and adding or removing one replica moves only that replica's share of sessions. The top-ranked endpoint is taken
/// unless it carries more than <c>loadFactor</c> times its weighted share of the requests in flight ("consistent
/// hashing with bounded loads"); then the next in rank order. Without an affinity key: weighted least outstanding.
/// </summary>
/// <remarks>
/// Hand-written because no maintained .NET library offers weighted rendezvous hashing with bounded loads; it is a
/// few lines of arithmetic over a stable 64-bit hash. Health is not decided here: callers pass healthy endpoints.
/// </remarks>
internal static class EndpointSelector
{
    public static int Choose(ReadOnlySpan<EndpointCandidate> candidates, string? affinityKey, double loadFactor)
    {
        if (candidates.Length <= 1)
        {
            return candidates.Length - 1;
        }

        if (affinityKey is null)
        {
            return LeastOutstanding(candidates);
        }

        var totalWeight = 0.0;
        var inFlight = 1;
        foreach (var c in candidates)
        {
            totalWeight += c.Weight;
            inFlight += c.Outstanding;
        }

        Span<double> scores = stackalloc double[candidates.Length];
        Span<int> order = stackalloc int[candidates.Length];
        var keyHash = Hash(affinityKey, 0xcbf29ce484222325UL);
        for (var i = 0; i < candidates.Length; i++)
        {
            scores[i] = Score(keyHash, candidates[i].Key, candidates[i].Weight);
            order[i] = i;
        }

        // Insertion sort by score, descending: pools are small.
        for (var i = 1; i < order.Length; i++)
        {
            var j = i;
            while (j > 0 && scores[order[j]] > scores[order[j - 1]])
            {
                (order[j], order[j - 1]) = (order[j - 1], order[j]);
                j--;
            }
        }

        foreach (var index in order)
        {
            var c = candidates[index];
            var bound = Math.Ceiling(loadFactor * inFlight * c.Weight / totalWeight);
            if (c.Outstanding + 1 <= bound)
            {
                return index;
            }
        }

        return LeastOutstanding(candidates);
    }

    /// <summary>The endpoints ranked for <paramref name="affinityKey"/> (highest first), load ignored: for tests and docs.</summary>
    public static int Preferred(ReadOnlySpan<EndpointCandidate> candidates, string affinityKey)
    {
        var keyHash = Hash(affinityKey, 0xcbf29ce484222325UL);
        var best = -1;
        var bestScore = double.NegativeInfinity;
        for (var i = 0; i < candidates.Length; i++)
        {
            var score = Score(keyHash, candidates[i].Key, candidates[i].Weight);
            if (score > bestScore)
            {
                best = i;
                bestScore = score;
            }
        }

        return best;
    }

    private static int LeastOutstanding(ReadOnlySpan<EndpointCandidate> candidates)
    {
        var best = -1;
        var bestLoad = double.PositiveInfinity;
        var ties = 0;
        for (var i = 0; i < candidates.Length; i++)
        {
            var load = (candidates[i].Outstanding + 1) / candidates[i].Weight;
            if (load < bestLoad)
            {
                best = i;
                bestLoad = load;
                ties = 1;
            }
            else if (load == bestLoad && Random.Shared.Next(++ties) == 0)
            {
                // Reservoir choice among equals, so idle endpoints share the traffic evenly.
                best = i;
            }
        }

        return best;
    }

    /// <summary>Weighted rendezvous score: <c>-w / ln(u)</c> with <c>u</c> uniform in (0, 1) from the pair's hash.</summary>
    private static double Score(ulong keyHash, string endpoint, double weight)
    {
        var h = Mix(Hash(endpoint, keyHash));
        var u = ((h >> 11) + 0.5) / (1UL << 53);
        return -weight / Math.Log(u);
    }

    /// <summary>FNV-1a over the UTF-16 code units: stable across processes and runs (unlike string.GetHashCode).</summary>
    private static ulong Hash(string value, ulong seed)
    {
        var hash = seed;
        foreach (var c in value)
        {
            hash = (hash ^ c) * 0x100000001b3UL;
        }

        return hash;
    }

    /// <summary>SplitMix64 finaliser: spreads FNV's weak low bits over the whole word.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9UL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebUL;
        return z ^ (z >> 31);
    }
}

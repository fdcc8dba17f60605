namespace Melious.Gateway.Limits;

/// <summary>
/// The arithmetic of leasing quota in slices from a shared per-window counter (pure, unit-tested).
/// <para>
/// A window's counter holds <c>granted</c>: the units handed out to all instances. An instance asks for a slice and
/// spends it locally without storage round trips; the counter never exceeds the limit, so the requests accepted in a
/// window never exceed it either. Slices shrink as the counter fills (half the remainder shared among the instances),
/// so when the limit is near, no instance sits on much quota that another instance could use.
/// </para>
/// </summary>
public static class QuotaMath
{
    /// <summary>The window <paramref name="now"/> falls in: windows are aligned multiples of <paramref name="window"/>.</summary>
    public static long WindowIndex(DateTimeOffset now, TimeSpan window) => now.UtcTicks / window.Ticks;

    public static DateTimeOffset WindowStart(long index, TimeSpan window) => new(index * window.Ticks, TimeSpan.Zero);

    public static DateTimeOffset WindowEnd(long index, TimeSpan window) => WindowStart(index + 1, window);

    /// <summary>Default slice: half the counter's remainder divided among the live instances, at least 1.</summary>
    public static long Slice(long limit, long granted, int instances)
    {
        var remaining = limit - granted;
        if (remaining <= 0)
        {
            return 0;
        }

        var share = (remaining + (2L * Math.Max(1, instances)) - 1) / (2L * Math.Max(1, instances));
        return Math.Clamp(share, 1, remaining);
    }

    /// <summary>
    /// How much to take from a counter at <paramref name="granted"/>: a slice, but at least <paramref name="want"/>
    /// (what the request in hand still needs); nothing when the remainder cannot cover <paramref name="want"/>
    /// (a partial take would strand quota in this instance that another instance could use). Never beyond the limit,
    /// except <paramref name="mustTake"/>, which is already spent (tokens used beyond their estimate) and always taken.
    /// </summary>
    public static long Take(long limit, long granted, long want, int instances, long mustTake = 0)
    {
        var remaining = Math.Max(0, limit - granted);
        if (remaining < want)
        {
            return Math.Max(0, mustTake);
        }

        return Math.Max(Math.Min(remaining, Math.Max(want, Slice(limit, granted, instances))), mustTake);
    }

    /// <summary>The counter after returning <paramref name="unused"/> units (never below zero).</summary>
    public static long Return(long granted, long unused) => Math.Max(0, granted - Math.Max(0, unused));

    /// <summary>The per-instance limit while storage is unreachable: limit ÷ last known instance count, at least 1.</summary>
    public static long PerInstance(long limit, int instances) => Math.Max(1, limit / Math.Max(1, instances));

    /// <summary>Whole seconds until <paramref name="until"/>, at least 1 (for retry-after).</summary>
    public static int SecondsUntil(DateTimeOffset now, DateTimeOffset until) =>
        (int)Math.Max(1, Math.Ceiling((until - now).TotalSeconds));

    /// <summary>
    /// Concurrency slots: how many slots this instance may hold after asking for <paramref name="more"/>, given what the
    /// other instances hold under unexpired leases. Never lets the sum exceed the limit.
    /// </summary>
    public static int SlotsAfter(int limit, int othersHeld, int mine, int more)
    {
        var free = Math.Max(0, limit - othersHeld - mine);
        return mine + Math.Min(free, Math.Max(0, more));
    }
}

namespace Melious.Gateway;

/// <summary>
/// How per-key limits (requests per minute, tokens per minute, concurrent requests) are shared across gateway
/// instances. Bound from <c>Melious:RateLimits</c>; see docs/limits.md.
/// </summary>
public sealed class RateLimitOptions
{
    /// <summary>
    /// Share limits through the <c>ratelimits</c> table (quota leased in slices). False: every instance enforces
    /// each limit on its own traffic (the pre-cluster behaviour).
    /// </summary>
    public bool Distributed { get; set; } = true;

    /// <summary>
    /// Length of the counting window for the "per minute" limits. One minute in production; tests shorten or
    /// lengthen it to keep the arithmetic while not waiting a real minute. Windows are aligned to multiples of this
    /// length since 0001-01-01 UTC, so one-minute windows start on the minute.
    /// </summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How often an instance writes its heartbeat, renews its concurrency leases and returns idle quota.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long concurrency slots held by an instance stay reserved without a renewal (a crashed instance's
    /// slots come back after this). Must be longer than <see cref="HeartbeatInterval"/>.</summary>
    public TimeSpan ConcurrencyLeaseTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>After the shared counter said "exhausted", how long this instance refuses without asking again.</summary>
    public TimeSpan ExhaustedRecheck { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// While a response streams, its output is charged against the key's tokens per minute every this many tokens
    /// (from the instance's leased slice: no storage request per step), so long concurrent streams use up the minute
    /// as they run, not only when they end.
    /// </summary>
    public int StreamChargeTokens { get; set; } = 50;
}

namespace Melious.Gateway.Routing;

/// <summary>
/// One replica serving a catalog model: its base URL, its share of the traffic relative to the model's other
/// endpoints, and its resolved credential (never logged, never sent to a client).
/// </summary>
public sealed record UpstreamEndpoint(string BaseUrl, double Weight = 1, string? ApiKey = null)
{
    /// <summary>The identity of the endpoint for health and outstanding-request counting: its base URL.</summary>
    public string Key => BaseUrl;

    /// <summary><c>host:port</c> of the endpoint (<c>server.address</c> in telemetry, never a path or credential).</summary>
    public string Authority => Uri.TryCreate(BaseUrl, UriKind.Absolute, out var uri) ? uri.Authority : BaseUrl;
}

/// <summary>Which upstream failures move a request to the model's next fallback (before the first byte only).</summary>
[Flags]
public enum FallbackTriggers
{
    None = 0,

    /// <summary>The upstream still answered 429 after the retries.</summary>
    RateLimit = 1,

    /// <summary>502, 503 or 529 after the retries.</summary>
    Overloaded = 2,

    /// <summary>Any other 5xx, or the upstream timing out before its headers.</summary>
    ServerError = 4,

    /// <summary>No endpoint of the model accepted a connection.</summary>
    Connection = 8,

    /// <summary>"prompt is too long": the next model should have a longer context window.</summary>
    ContextOverflow = 16,

    All = RateLimit | Overloaded | ServerError | Connection | ContextOverflow,
}

public static class FallbackTriggerNames
{
    private static readonly (string Name, FallbackTriggers Trigger)[] Names =
    [
        ("rate_limit", FallbackTriggers.RateLimit),
        ("overloaded", FallbackTriggers.Overloaded),
        ("server_error", FallbackTriggers.ServerError),
        ("connection", FallbackTriggers.Connection),
        ("context_overflow", FallbackTriggers.ContextOverflow),
    ];

    public static IEnumerable<string> All => Names.Select(n => n.Name);

    /// <summary>Parses a comma-separated list (<c>rate_limit,context_overflow</c>, or <c>all</c>); unknown names are ignored.</summary>
    public static FallbackTriggers Parse(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return FallbackTriggers.All;
        }

        var result = FallbackTriggers.None;
        foreach (var part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (part.Equals("all", StringComparison.OrdinalIgnoreCase))
            {
                return FallbackTriggers.All;
            }

            foreach (var (name, trigger) in Names)
            {
                if (part.Equals(name, StringComparison.OrdinalIgnoreCase))
                {
                    result |= trigger;
                }
            }
        }

        return result;
    }

    public static bool IsKnown(string name) => name.Equals("all", StringComparison.OrdinalIgnoreCase) || Names.Any(n => n.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    public static string Format(FallbackTriggers triggers) => triggers == FallbackTriggers.All
        ? "all"
        : string.Join(",", Names.Where(n => triggers.HasFlag(n.Trigger)).Select(n => n.Name));
}

using System.Text.Json.Serialization;

namespace Melious.Gateway.Usage;

/// <summary>
/// One served <c>/v1/messages</c> request, as it travels through the <c>usage-events</c> queue. The gateway prices
/// the request and estimates its energy before publishing, so the writer is a pure function of the event: a
/// redelivered event always produces the same rows.
/// </summary>
public sealed record UsageEvent
{
    /// <summary>UUIDv7, 32 hex digits; RowKey of the billing and energy rows.</summary>
    public required string RequestId { get; init; }

    public required string Account { get; init; }

    /// <summary>Public key id (first 16 hex digits of the key hash), never the key.</summary>
    public required string KeyId { get; init; }

    public string? SessionId { get; init; }

    public string? AgentId { get; init; }

    public required string RequestedModel { get; init; }

    public required string UpstreamModel { get; init; }

    /// <summary>Upstream base URL (no credentials): the endpoint that served, for a pooled model.</summary>
    public required string Upstream { get; init; }

    /// <summary>The catalog model the request was first routed to, when <see cref="UpstreamModel"/> is a fallback that served it instead.</summary>
    public string? FallbackFrom { get; init; }

    public bool Stream { get; init; }

    /// <summary>Uncached input tokens (Anthropic <c>input_tokens</c>).</summary>
    public long InputTokens { get; init; }

    public long CacheReadTokens { get; init; }

    public long CacheWriteTokens { get; init; }

    /// <summary>Output tokens, reasoning included.</summary>
    public long OutputTokens { get; init; }

    public long ReasoningTokens { get; init; }

    /// <summary>True when the upstream reported no usage and the counts are the gateway's estimate.</summary>
    public bool UsageEstimated { get; init; }

    public required DateTimeOffset StartedAt { get; init; }

    public long? TtftMs { get; init; }

    public long DurationMs { get; init; }

    /// <summary>HTTP status the client got (200 for streams that later failed; see <see cref="ErrorType"/>).</summary>
    public int Status { get; init; }

    public string? StopReason { get; init; }

    public string? ErrorType { get; init; }

    public bool Cancelled { get; init; }

    public required string Currency { get; init; }

    public long CostNanos { get; init; }

    public long InputCostNanos { get; init; }

    public long OutputCostNanos { get; init; }

    public long CacheReadCostNanos { get; init; }

    public long CacheWriteCostNanos { get; init; }

    /// <summary>Web searches the gateway ran (the <c>web_search</c> server tool); included in <see cref="CostNanos"/>.</summary>
    public int WebSearchRequests { get; init; }

    public long WebSearchCostNanos { get; init; }

    public string? PriceVersion { get; init; }

    /// <summary>Null when the model has no energy parameters (<see cref="EnergyMethod"/> is then <c>unknown</c>).</summary>
    public double? EnergyWh { get; init; }

    public double? EnergyWhMin { get; init; }

    public double? EnergyWhMax { get; init; }

    public double? Gco2e { get; init; }

    public double? Gco2eMin { get; init; }

    public double? Gco2eMax { get; init; }

    public double? WaterMl { get; init; }

    public required string Region { get; init; }

    public double GridGco2ePerKwh { get; init; }

    public double Pue { get; init; }

    public required string EnergyMethod { get; init; }

    /// <summary><c>catalog</c>, <c>measured</c>, <c>known-model</c>, <c>parsed-name</c> or <c>unknown</c> (null in events from older gateways).</summary>
    public string? EnergySource { get; init; }

    /// <summary>UTC day of <see cref="StartedAt"/>: the partition date of every row this event produces.</summary>
    [JsonIgnore]
    public string Day => StartedAt.UtcDateTime.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);

    [JsonIgnore]
    public string Month => StartedAt.UtcDateTime.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture);

    [JsonIgnore]
    public bool IsError => Status >= 400 || ErrorType is not null;
}

/// <summary>One queue message: a batch of events (a busy gateway packs several per message).</summary>
public sealed record UsageMessage(List<UsageEvent> Events)
{
    public int V { get; init; } = 1;
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(UsageMessage))]
[JsonSerializable(typeof(UsageEvent))]
internal sealed partial class UsageJsonContext : JsonSerializerContext;

using System.Text.Json.Serialization;

namespace Melious.Gateway.Reporting;

// Anthropic Admin API shapes (GET /v1/organizations/usage_report/messages and /cost_report). Anthropic's fields keep
// their names and meaning; Melious adds fields (requests, cost, energy …) next to them, never in their place.

public sealed record UsageReportPage(IReadOnlyList<UsageReportBucket> Data, bool HasMore, string? NextPage);

public sealed record UsageReportBucket(string StartingAt, string EndingAt, IReadOnlyList<UsageReportResult> Results);

public sealed record CacheCreationTokens(
    [property: JsonPropertyName("ephemeral_1h_input_tokens")] long Ephemeral1hInputTokens,
    [property: JsonPropertyName("ephemeral_5m_input_tokens")] long Ephemeral5mInputTokens);

public sealed record ServerToolUse(long WebSearchRequests);

public sealed record UsageReportResult
{
    public long UncachedInputTokens { get; init; }
    public CacheCreationTokens CacheCreation { get; init; } = new(0, 0);
    public long CacheReadInputTokens { get; init; }
    public long OutputTokens { get; init; }
    public ServerToolUse ServerToolUse { get; init; } = new(0);
    public string? ApiKeyId { get; init; }
    public string? WorkspaceId { get; init; }
    public string? Model { get; init; }
    public string? ServiceTier { get; init; }
    public string? ContextWindow { get; init; }

    // Melious extras.
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? AccountId { get; init; }
    public long Requests { get; init; }
    public long ErrorRequests { get; init; }
    public long CancelledRequests { get; init; }
    public long ReasoningTokens { get; init; }
    public string Currency { get; init; } = "";
    /// <summary>Exact decimal string in major units (e.g. dollars), 9 decimals.</summary>
    public string Cost { get; init; } = "";
    public long CostNanos { get; init; }
    public decimal EnergyWh { get; init; }
    public decimal EnergyWhMin { get; init; }
    public decimal EnergyWhMax { get; init; }
    public decimal Gco2e { get; init; }
    public decimal Gco2eMin { get; init; }
    public decimal Gco2eMax { get; init; }
    public decimal WaterMl { get; init; }
    public long UnknownEnergyRequests { get; init; }
}

public sealed record CostReportPage(IReadOnlyList<CostReportBucket> Data, bool HasMore, string? NextPage);

public sealed record CostReportBucket(string StartingAt, string EndingAt, IReadOnlyList<CostReportResult> Results);

public sealed record CostReportResult
{
    /// <summary>As Anthropic: the amount in the currency's lowest units (cents for USD) as a decimal string.</summary>
    public string Amount { get; init; } = "0";
    public string Currency { get; init; } = "USD";
    public string? CostType { get; init; }
    public string? Description { get; init; }
    public string? Model { get; init; }
    public string? TokenType { get; init; }
    public string? ContextWindow { get; init; }
    public string? ServiceTier { get; init; }
    public string? WorkspaceId { get; init; }

    // Melious extras.
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? AccountId { get; init; }
    /// <summary>The same amount in major units (dollars), exact, 9 decimals.</summary>
    public string Cost { get; init; } = "";
    public long CostNanos { get; init; }
}

public sealed record SessionList(string StartingAt, string EndingAt, IReadOnlyList<SessionItem> Data);

public sealed record SessionItem
{
    public required string SessionId { get; init; }
    public required string AccountId { get; init; }
    public string? FirstRequestAt { get; init; }
    public string? LastRequestAt { get; init; }
    public long Requests { get; init; }
    public long ErrorRequests { get; init; }
    public long UncachedInputTokens { get; init; }
    public long CacheReadInputTokens { get; init; }
    public long CacheCreationInputTokens { get; init; }
    public long OutputTokens { get; init; }
    public long ReasoningTokens { get; init; }
    public string Currency { get; init; } = "";
    public string Cost { get; init; } = "";
    public long CostNanos { get; init; }
    public decimal EnergyWh { get; init; }
    public decimal Gco2e { get; init; }
}

public sealed record SessionRequests(string SessionId, string StartingAt, string EndingAt, IReadOnlyList<SessionRequestItem> Data);

public sealed record SessionRequestItem
{
    public required string RequestId { get; init; }
    public required string StartedAt { get; init; }
    public required string AccountId { get; init; }
    public required string ApiKeyId { get; init; }
    public required string RequestedModel { get; init; }
    public required string UpstreamModel { get; init; }
    public long UncachedInputTokens { get; init; }
    public long CacheReadInputTokens { get; init; }
    public long CacheCreationInputTokens { get; init; }
    public long OutputTokens { get; init; }
    public long ReasoningTokens { get; init; }
    public string Currency { get; init; } = "";
    public string Cost { get; init; } = "";
    public long CostNanos { get; init; }
    public long? TtftMs { get; init; }
    public long DurationMs { get; init; }
    public int Status { get; init; }
    public string? ErrorType { get; init; }
    public bool Cancelled { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(UsageReportPage))]
[JsonSerializable(typeof(CostReportPage))]
[JsonSerializable(typeof(SessionList))]
[JsonSerializable(typeof(SessionRequests))]
public sealed partial class UsageApiJsonContext : JsonSerializerContext;

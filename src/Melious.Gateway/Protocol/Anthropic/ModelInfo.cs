using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.Anthropic;

/// <summary>One entry of <c>GET /v1/models</c>, in Anthropic's <c>ModelInfo</c> shape.</summary>
public sealed record ModelInfo
{
    public string Type { get; init; } = "model";

    public required string Id { get; init; }

    public required string DisplayName { get; init; }

    public required string CreatedAt { get; init; }

    /// <summary><c>active</c>: a catalog model the gateway serves (the current API requires the field).</summary>
    public string Lifecycle { get; init; } = "active";

    public long? MaxInputTokens { get; init; }

    public long? MaxTokens { get; init; }

    /// <summary>Only with <c>?include_meta=true</c>.</summary>
    [JsonPropertyName("_meta")]
    public ModelMeta? Meta { get; init; }
}

public sealed record ModelMeta
{
    public required ModelCapabilities Capabilities { get; init; }

    public long ContextWindow { get; init; }

    public long MaxOutputTokens { get; init; }

    /// <summary>The catalog model this id resolves to (not sent upstream names for tiers unless asked for).</summary>
    public string? ResolvesTo { get; init; }
}

public sealed record ModelCapabilities(bool ToolUse, bool Vision, bool Thinking);

public sealed record ModelList
{
    public required List<ModelInfo> Data { get; init; }

    public bool HasMore { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? FirstId { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? LastId { get; init; }
}

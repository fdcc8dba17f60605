using System.Text.Json;
using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.Anthropic;

/// <summary>
/// Body of <c>POST /v1/messages</c> (and, without <see cref="MaxTokens"/>, of <c>count_tokens</c>).
/// Every property is nullable so that validation, not the serializer, names what is missing.
/// Unknown top-level fields (<c>context_management</c>, <c>container</c>, …) are ignored by design.
/// </summary>
public sealed record MessagesRequest
{
    public string? Model { get; init; }

    public long? MaxTokens { get; init; }

    public List<InputMessage>? Messages { get; init; }

    public MessageContent? System { get; init; }

    public List<string>? StopSequences { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public int? TopK { get; init; }

    /// <summary>A <see cref="SharedToolList"/> when the same bytes were parsed before (see <see cref="ToolSetCache"/>): read-only.</summary>
    [JsonConverter(typeof(ToolListConverter))]
    public List<ToolDefinition>? Tools { get; init; }

    public ToolChoice? ToolChoice { get; init; }

    public ThinkingConfig? Thinking { get; init; }

    public OutputConfig? OutputConfig { get; init; }

    public RequestMetadata? Metadata { get; init; }

    public bool? Stream { get; init; }
}

/// <summary>One entry of <c>messages[]</c>; role is <c>user</c>, <c>assistant</c> or <c>system</c>.</summary>
public sealed record InputMessage
{
    public string? Role { get; init; }

    public MessageContent? Content { get; init; }
}

public sealed record ToolDefinition
{
    /// <summary>Absent or <c>custom</c> for client tools; a dated server-tool type (<c>web_search_20250305</c>) otherwise.</summary>
    public string? Type { get; init; }

    public string? Name { get; init; }

    public string? Description { get; init; }

    public JsonElement? InputSchema { get; init; }

    public bool IsServerTool => Type is not null && Type != "custom";

    /// <summary>Server tool <c>web_search_*</c>: searches allowed in one response.</summary>
    public int? MaxUses { get; init; }

    /// <summary>Server tool <c>web_search_*</c>: only results from these domains.</summary>
    public List<string>? AllowedDomains { get; init; }

    /// <summary>Server tool <c>web_search_*</c>: never results from these domains.</summary>
    public List<string>? BlockedDomains { get; init; }

    /// <summary>Server tool <c>web_search_*</c>: where the user is, to localize results.</summary>
    public UserLocation? UserLocation { get; init; }

    public bool IsWebSearch => Type is not null && Type.StartsWith("web_search_", StringComparison.Ordinal);
}

/// <summary>Approximate user location of the web search tool (<c>type: approximate</c>).</summary>
public sealed record UserLocation
{
    public string? Type { get; init; }

    public string? City { get; init; }

    public string? Region { get; init; }

    /// <summary>ISO 3166-1 alpha-2.</summary>
    public string? Country { get; init; }

    public string? Timezone { get; init; }
}

public sealed record ToolChoice
{
    public string? Type { get; init; }

    public string? Name { get; init; }

    public bool? DisableParallelToolUse { get; init; }
}

public sealed record ThinkingConfig
{
    /// <summary><c>enabled</c>, <c>adaptive</c> or <c>disabled</c>.</summary>
    public string? Type { get; init; }

    public long? BudgetTokens { get; init; }

    public string? Display { get; init; }
}

public sealed record OutputConfig
{
    /// <summary><c>low</c>, <c>medium</c>, <c>high</c>, <c>xhigh</c> or <c>max</c>.</summary>
    public string? Effort { get; init; }

    public JsonElement? Format { get; init; }
}

public sealed record RequestMetadata
{
    /// <summary>Claude Code sends a JSON-encoded object here (<c>{"device_id":…,"session_id":…}</c>).</summary>
    public string? UserId { get; init; }
}

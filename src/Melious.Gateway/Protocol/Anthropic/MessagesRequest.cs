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

    /// <summary>
    /// Structured outputs as the beta <c>structured-outputs-2025-11-13</c> spells it: an alias of
    /// <see cref="OutputConfig.Format"/>, which wins when both are sent.
    /// </summary>
    public JsonElement? OutputFormat { get; init; }

    public RequestMetadata? Metadata { get; init; }

    public bool? Stream { get; init; }

    /// <summary>
    /// <c>{"edits":[{"type":"clear_thinking_20251015","keep":…}]}</c> (beta <c>context-management-2025-06-27</c>). Kept as
    /// raw JSON and read leniently (<see cref="ContextManagementRequest"/>): a shape the gateway does not know is never a 400.
    /// </summary>
    public JsonElement? ContextManagement { get; init; }
}

/// <summary>What the gateway honours of <c>context_management</c> toward OpenAI-compatible upstreams.</summary>
public static class ContextManagementRequest
{
    public const string ClearThinking = "clear_thinking_20251015";

    /// <summary>
    /// The number of most recent assistant turns whose thinking to keep, if the request has a <c>clear_thinking_20251015</c>
    /// edit: <c>keep: {"type":"thinking_turns","value":N}</c> → N, <c>keep: "all"</c> (or <c>{"type":"all"}</c>) → all,
    /// no <c>keep</c> → 1 (Anthropic's default). Null without such an edit, or when its shape is unknown.
    /// </summary>
    public static int? ThinkingTurnsToKeep(MessagesRequest request)
    {
        if (request.ContextManagement is not { ValueKind: JsonValueKind.Object } cm
            || !cm.TryGetProperty("edits", out var edits) || edits.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        foreach (var edit in edits.EnumerateArray())
        {
            if (edit.ValueKind != JsonValueKind.Object || !edit.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || !type.ValueEquals(ClearThinking))
            {
                continue;
            }

            if (!edit.TryGetProperty("keep", out var keep) || keep.ValueKind == JsonValueKind.Null)
            {
                return 1;
            }

            if (keep.ValueKind == JsonValueKind.String)
            {
                return keep.ValueEquals("all") ? int.MaxValue : keep.ValueEquals("none") ? 0 : null;
            }

            // JsonElement's ValueEquals and TryGetInt32 throw on other kinds: every kind is checked first (any shape the
            // client sends is read, never a 500).
            if (keep.ValueKind == JsonValueKind.Object && keep.TryGetProperty("type", out var keepType) && keepType.ValueKind == JsonValueKind.String)
            {
                if (keepType.ValueEquals("all"))
                {
                    return int.MaxValue;
                }

                if (keepType.ValueEquals("thinking_turns") && keep.TryGetProperty("value", out var value) && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var turns) && turns >= 0)
                {
                    return turns;
                }
            }

            return null;
        }

        return null;
    }
}

/// <summary>One entry of <c>messages[]</c>; role is <c>user</c>, <c>assistant</c> or <c>system</c>.</summary>
public sealed record InputMessage
{
    public string? Role { get; init; }

    public MessageContent? Content { get; init; }
}

public sealed record ToolDefinition
{
    /// <summary>The type of an MCP connector toolset (beta <c>mcp-client-2025-11-20</c>): the tools of one of <c>mcp_servers</c>.</summary>
    public const string McpToolset = "mcp_toolset";

    /// <summary>
    /// Absent or <c>custom</c> for client tools; a dated server-tool type (<c>web_search_20250305</c>) or
    /// <see cref="McpToolset"/> otherwise.
    /// </summary>
    public string? Type { get; init; }

    /// <summary>Required for client tools; a dated server tool has a fixed one (<c>web_search</c>), an MCP toolset none.</summary>
    public string? Name { get; init; }

    /// <summary>MCP toolset: the <c>name</c> of the <c>mcp_servers</c> entry whose tools it configures.</summary>
    public string? McpServerName { get; init; }

    public string? Description { get; init; }

    public JsonElement? InputSchema { get; init; }

    /// <summary>Tool search: the tool is only loaded once a <c>tool_reference</c> to it appears in the conversation.</summary>
    public bool? DeferLoading { get; init; }

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

    /// <summary>Anthropic's server-side tool search (<c>tool_search_tool_regex_…</c>, <c>tool_search_tool_bm25_…</c>).</summary>
    public bool IsToolSearch => Type is not null && Type.StartsWith("tool_search_tool_", StringComparison.Ordinal);
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

using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.Anthropic;

/// <summary>The non-streaming response of <c>POST /v1/messages</c>.</summary>
public sealed record Message
{
    public required string Id { get; init; }

    public string Type { get; init; } = "message";

    public string Role { get; init; } = "assistant";

    /// <summary>Always the model string the client sent, never the upstream model.</summary>
    public required string Model { get; init; }

    public required List<ResponseContentBlock> Content { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? StopReason { get; init; }

    /// <summary>Always written, null when no stop sequence matched (Claude Code validates its presence).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? StopSequence { get; init; }

    public required Usage Usage { get; init; }

    public BillingCost? BillingCost { get; init; }

    public EnvironmentImpact? EnvironmentImpact { get; init; }

    /// <summary>The context edits applied (only when the request asked for context management).</summary>
    public ContextManagementResponse? ContextManagement { get; init; }
}

/// <summary><c>context_management</c> of a response (and of the final <c>message_delta</c>): the edits the gateway applied.</summary>
public sealed record ContextManagementResponse(List<AppliedContextEdit> AppliedEdits);

/// <summary>One applied edit, in the API's <c>clear_thinking_20251015</c> response shape.</summary>
public sealed record AppliedContextEdit(string Type, int ClearedThinkingTurns, long ClearedInputTokens);

[JsonPolymorphic(TypeDiscriminatorPropertyName = "type")]
[JsonDerivedType(typeof(ResponseTextBlock), "text")]
[JsonDerivedType(typeof(ResponseThinkingBlock), "thinking")]
[JsonDerivedType(typeof(ResponseToolUseBlock), "tool_use")]
[JsonDerivedType(typeof(ResponseServerToolUseBlock), "server_tool_use")]
[JsonDerivedType(typeof(ResponseWebSearchToolResultBlock), "web_search_tool_result")]
public abstract record ResponseContentBlock;

public sealed record ResponseTextBlock(string Text) : ResponseContentBlock
{
    /// <summary>Web search citations (absent when none).</summary>
    public List<WebSearchCitation>? Citations { get; init; }
}

public sealed record ResponseThinkingBlock(string Thinking, string Signature) : ResponseContentBlock;

public sealed record ResponseToolUseBlock(string Id, string Name, System.Text.Json.JsonElement Input) : ResponseContentBlock
{
    /// <summary>Who invoked the tool: always the model itself here (the current API includes this).</summary>
    public ToolCaller Caller { get; init; } = ToolCaller.Direct;
}

/// <summary>A search the gateway ran for the model (id <c>srvtoolu_…</c>).</summary>
public sealed record ResponseServerToolUseBlock(string Id, string Name, System.Text.Json.JsonElement Input) : ResponseContentBlock;

/// <summary>Search results (an array of <c>web_search_result</c>) or a <c>web_search_tool_result_error</c> object.</summary>
public sealed record ResponseWebSearchToolResultBlock(string ToolUseId, System.Text.Json.JsonElement Content) : ResponseContentBlock;

public sealed record ToolCaller(string Type)
{
    public static ToolCaller Direct { get; } = new("direct");
}

/// <summary>Anthropic usage: <see cref="InputTokens"/> excludes cache reads and writes.</summary>
public sealed record Usage
{
    public long InputTokens { get; init; }

    public long CacheCreationInputTokens { get; init; }

    public long CacheReadInputTokens { get; init; }

    public long OutputTokens { get; init; }

    public OutputTokensDetails? OutputTokensDetails { get; init; }

    /// <summary>Server tools the gateway ran (web searches); absent when none.</summary>
    public ServerToolUsage? ServerToolUse { get; init; }
}

public sealed record OutputTokensDetails(long ThinkingTokens);

public sealed record ServerToolUsage(long WebSearchRequests);

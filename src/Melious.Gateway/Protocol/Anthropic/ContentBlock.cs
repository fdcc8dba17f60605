using System.Text.Json;
using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.Anthropic;

/// <summary>
/// A request content block. Not abstract: a block whose <c>type</c> the gateway does not know
/// (<c>server_tool_use</c>, <c>search_result</c>, a type invented next month) deserializes to this base
/// type and is dropped by the translator instead of failing the request.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type", IgnoreUnrecognizedTypeDiscriminators = true)]
[JsonDerivedType(typeof(TextBlock), "text")]
[JsonDerivedType(typeof(ImageBlock), "image")]
[JsonDerivedType(typeof(DocumentBlock), "document")]
[JsonDerivedType(typeof(ToolUseBlock), "tool_use")]
[JsonDerivedType(typeof(ToolResultBlock), "tool_result")]
[JsonDerivedType(typeof(ThinkingBlock), "thinking")]
[JsonDerivedType(typeof(RedactedThinkingBlock), "redacted_thinking")]
[JsonDerivedType(typeof(MidConversationSystemBlock), "mid_conv_system")]
[JsonDerivedType(typeof(ToolReferenceBlock), "tool_reference")]
[JsonDerivedType(typeof(ServerToolUseBlock), "server_tool_use")]
[JsonDerivedType(typeof(WebSearchToolResultBlock), "web_search_tool_result")]
public record ContentBlock;

public sealed record TextBlock : ContentBlock
{
    public string? Text { get; init; }
}

public sealed record ImageBlock : ContentBlock
{
    public MediaSource? Source { get; init; }
}

public sealed record DocumentBlock : ContentBlock
{
    public MediaSource? Source { get; init; }

    public string? Title { get; init; }

    public string? Context { get; init; }
}

/// <summary>Source of an image or document: <c>base64</c>, <c>url</c>, <c>text</c> or <c>content</c>.</summary>
public sealed record MediaSource
{
    public string? Type { get; init; }

    public string? MediaType { get; init; }

    public string? Data { get; init; }

    public string? Url { get; init; }

    public MessageContent? Content { get; init; }
}

public sealed record ToolUseBlock : ContentBlock
{
    public string? Id { get; init; }

    public string? Name { get; init; }

    public JsonElement? Input { get; init; }
}

public sealed record ToolResultBlock : ContentBlock
{
    public string? ToolUseId { get; init; }

    public MessageContent? Content { get; init; }

    public bool? IsError { get; init; }
}

public sealed record ThinkingBlock : ContentBlock
{
    public string? Thinking { get; init; }

    public string? Signature { get; init; }
}

public sealed record RedactedThinkingBlock : ContentBlock
{
    public string? Data { get; init; }
}

/// <summary>Newer SDKs can carry system text inside a message as a block.</summary>
public sealed record MidConversationSystemBlock : ContentBlock
{
    public MessageContent? Content { get; init; }
}

/// <summary>Claude Code's tool search returns these inside a tool_result to say which deferred tools were loaded.</summary>
public sealed record ToolReferenceBlock : ContentBlock
{
    public string? ToolName { get; init; }
}

/// <summary>A server tool call the gateway (or Anthropic) ran, replayed by the client (id <c>srvtoolu_…</c>).</summary>
public sealed record ServerToolUseBlock : ContentBlock
{
    public string? Id { get; init; }

    public string? Name { get; init; }

    public JsonElement? Input { get; init; }
}

/// <summary>
/// The replayed result of a web search: <see cref="Content"/> is an array of <c>web_search_result</c> items or a
/// <c>web_search_tool_result_error</c> object.
/// </summary>
public sealed record WebSearchToolResultBlock : ContentBlock
{
    public string? ToolUseId { get; init; }

    public JsonElement? Content { get; init; }
}

using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.OpenAI;

/// <summary>One Chat Completions message: <c>system</c>, <c>user</c>, <c>assistant</c> or <c>tool</c>.</summary>
public sealed record ChatMessage
{
    public required string Role { get; init; }

    public ChatContent? Content { get; init; }

    public List<ChatToolCall>? ToolCalls { get; init; }

    public string? ToolCallId { get; init; }

    /// <summary>Replayed thinking (DeepSeek, vLLM, SGLang and llama.cpp read this field).</summary>
    public string? ReasoningContent { get; init; }
}

/// <summary>Message content: a plain string, or parts when images are involved.</summary>
[JsonConverter(typeof(ChatContentConverter))]
public sealed record ChatContent
{
    public ChatContent(string text) => Text = text;

    public ChatContent(List<ChatContentPart> parts) => Parts = parts;

    public string? Text { get; }

    public List<ChatContentPart>? Parts { get; }
}

[JsonPolymorphic(TypeDiscriminatorPropertyName = "type")]
[JsonDerivedType(typeof(TextPart), "text")]
[JsonDerivedType(typeof(ImageUrlPart), "image_url")]
public abstract record ChatContentPart;

public sealed record TextPart(string Text) : ChatContentPart;

public sealed record ImageUrlPart(ImageUrl ImageUrl) : ChatContentPart;

/// <summary>
/// An image reference. Base64 images are written as a <c>data:</c> URI straight from the client's
/// base64 string, without building the URI in memory first.
/// </summary>
[JsonConverter(typeof(ImageUrlConverter))]
public sealed record ImageUrl(string? Url, string? MediaType = null, string? Base64Data = null);

public sealed record ChatToolCall(string Id, ChatFunctionCall Function)
{
    public string Type { get; init; } = "function";
}

/// <summary><see cref="Arguments"/> holds the tool input as JSON; it is written as a JSON string.</summary>
public sealed record ChatFunctionCall(
    string Name,
    [property: JsonConverter(typeof(JsonElementAsStringConverter))] System.Text.Json.JsonElement Arguments);

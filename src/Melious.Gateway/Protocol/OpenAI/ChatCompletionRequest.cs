using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.OpenAI;

/// <summary>
/// The Chat Completions request the gateway sends upstream. Write-only: the gateway never parses one.
/// Non-standard server extras (<c>top_k</c>, <c>chat_template_kwargs</c>, <c>continue_final_message</c>) are
/// only set when the catalog says the upstream understands them.
/// </summary>
public sealed record ChatCompletionRequest
{
    public required string Model { get; init; }

    public required List<ChatMessage> Messages { get; init; }

    public bool Stream { get; init; } = true;

    public StreamOptions? StreamOptions { get; init; }

    public long? MaxTokens { get; init; }

    public long? MaxCompletionTokens { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public int? TopK { get; init; }

    public List<string>? Stop { get; init; }

    [JsonConverter(typeof(ChatToolsConverter))]
    public List<ChatTool>? Tools { get; init; }

    public ChatToolChoice? ToolChoice { get; init; }

    public bool? ParallelToolCalls { get; init; }

    public string? ReasoningEffort { get; init; }

    public ChatTemplateKwargs? ChatTemplateKwargs { get; init; }

    public bool? ContinueFinalMessage { get; init; }

    public bool? AddGenerationPrompt { get; init; }

    public ResponseFormat? ResponseFormat { get; init; }
}

public sealed record StreamOptions(bool IncludeUsage);

public sealed record ChatTemplateKwargs(bool EnableThinking);

public sealed record ResponseFormat(string Type, JsonSchemaFormat? JsonSchema);

public sealed record JsonSchemaFormat(string Name, [property: JsonConverter(typeof(SanitizedSchemaConverter))] System.Text.Json.JsonElement Schema);

public sealed record ChatTool(ChatFunction Function)
{
    public string Type { get; init; } = "function";
}

public sealed record ChatFunction
{
    public required string Name { get; init; }

    public string? Description { get; init; }

    /// <summary>The client's JSON Schema, sanitized while it is written (see <see cref="SanitizedSchemaConverter"/>).</summary>
    [JsonConverter(typeof(SanitizedSchemaConverter))]
    public required System.Text.Json.JsonElement Parameters { get; init; }
}

/// <summary><c>"auto"</c>, <c>"none"</c>, <c>"required"</c> or <c>{"type":"function","function":{"name":…}}</c>.</summary>
[JsonConverter(typeof(ChatToolChoiceConverter))]
public sealed record ChatToolChoice(string Mode, string? FunctionName = null)
{
    public static ChatToolChoice Auto { get; } = new("auto");

    public static ChatToolChoice None { get; } = new("none");

    public static ChatToolChoice Required { get; } = new("required");

    public static ChatToolChoice Function(string name) => new("function", name);
}

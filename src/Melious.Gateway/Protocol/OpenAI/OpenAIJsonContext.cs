using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.OpenAI;

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(List<ChatContentPart>))]
internal sealed partial class OpenAIJsonContext : JsonSerializerContext;

using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.Anthropic;

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    AllowOutOfOrderMetadataProperties = true,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(MessagesRequest))]
[JsonSerializable(typeof(List<ContentBlock>))]
[JsonSerializable(typeof(List<ToolDefinition>))]
[JsonSerializable(typeof(Message))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(CountTokensResponse))]
[JsonSerializable(typeof(ModelInfo))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(WhoAmI))]
[JsonSerializable(typeof(BillingCost))]
[JsonSerializable(typeof(EnvironmentImpact))]
[JsonSerializable(typeof(Usage))]
[JsonSerializable(typeof(ContextManagementResponse))]
internal sealed partial class AnthropicJsonContext : JsonSerializerContext;

using System.Text.Json.Serialization;

namespace Melious.Cli;

/// <summary>The per-user config file (<see cref="UserConfig"/>).</summary>
public sealed record ConfigFile
{
    public string? BaseUrl { get; init; }

    public string? ApiKey { get; init; }
}

/// <summary>One entry of <c>GET /v1/models?include_meta=true</c>.</summary>
public sealed record GatewayModel
{
    public required string Id { get; init; }

    public string? DisplayName { get; init; }

    public long? MaxInputTokens { get; init; }

    public long? MaxTokens { get; init; }

    [JsonPropertyName("_meta")]
    public GatewayModelMeta? Meta { get; init; }
}

public sealed record GatewayModelMeta
{
    public GatewayCapabilities? Capabilities { get; init; }

    public long ContextWindow { get; init; }

    public long MaxOutputTokens { get; init; }

    public string? ResolvesTo { get; init; }
}

public sealed record GatewayCapabilities(bool ToolUse, bool Vision, bool Thinking);

public sealed record GatewayModelList
{
    public List<GatewayModel> Data { get; init; } = [];

    public bool HasMore { get; init; }
}

/// <summary><c>GET /v1/me</c>.</summary>
public sealed record WhoAmI
{
    public string Account { get; init; } = "";

    public string KeyId { get; init; } = "";

    public string KeyName { get; init; } = "";

    public string Role { get; init; } = "user";
}

public sealed record GatewayErrorBody
{
    public GatewayErrorDetail? Error { get; init; }
}

public sealed record GatewayErrorDetail
{
    public string? Type { get; init; }

    public string? Message { get; init; }
}

/// <summary><c>melious usage --json</c>: the rows shown and the totals per currency.</summary>
public sealed record UsageOutput
{
    public required string From { get; init; }

    public required string To { get; init; }

    public string TimeZone { get; init; } = "UTC";

    public required string By { get; init; }

    public List<UsageRow> Rows { get; init; } = [];

    public List<UsageRow> Totals { get; init; } = [];
}

public sealed record UsageRow
{
    public string? Day { get; init; }

    public string? Model { get; init; }

    public string? SessionId { get; init; }

    public string? FirstRequestAt { get; init; }

    public string? LastRequestAt { get; init; }

    public long Requests { get; init; }

    public long ErrorRequests { get; init; }

    public long UncachedInputTokens { get; init; }

    public long CacheReadInputTokens { get; init; }

    public long CacheCreationInputTokens { get; init; }

    public long OutputTokens { get; init; }

    public string Currency { get; init; } = "";

    /// <summary>Exact decimal string in major units (9 decimals), the sum of <see cref="CostNanos"/>.</summary>
    public string Cost { get; init; } = "";

    public long CostNanos { get; init; }

    public decimal EnergyWh { get; init; }

    public decimal Gco2e { get; init; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    WriteIndented = true)]
[JsonSerializable(typeof(ConfigFile))]
[JsonSerializable(typeof(GatewayModelList))]
[JsonSerializable(typeof(List<GatewayModel>))]
[JsonSerializable(typeof(WhoAmI))]
[JsonSerializable(typeof(GatewayErrorBody))]
[JsonSerializable(typeof(UsageOutput))]
internal sealed partial class CliJson : JsonSerializerContext;

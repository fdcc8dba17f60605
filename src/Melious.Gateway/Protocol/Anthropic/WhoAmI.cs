namespace Melious.Gateway.Protocol.Anthropic;

/// <summary>
/// <c>GET /v1/me</c>: who the presented key belongs to. A gateway extension (Anthropic's API has no such path); the
/// <c>melious</c> CLI shows it in <c>melious status</c>. Never contains the key.
/// </summary>
public sealed record WhoAmI
{
    public string Type { get; init; } = "api_key";

    public required string Account { get; init; }

    public required string KeyId { get; init; }

    public required string KeyName { get; init; }

    /// <summary><c>user</c> or <c>admin</c>.</summary>
    public required string Role { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
}

namespace Melious.Gateway.Protocol.Anthropic;

/// <summary><c>{"type":"error","error":{"type":…,"message":…},"request_id":…}</c></summary>
public sealed record ErrorResponse(ErrorDetail Error, string? RequestId)
{
    public string Type { get; init; } = "error";
}

public sealed record ErrorDetail(string Type, string Message);

namespace Melious.Gateway.Protocol.Anthropic;

public sealed record CountTokensResponse(long InputTokens);

namespace Melious.Gateway.Translation;

/// <summary>A request that cannot be sent to the chosen upstream (too long, unsupported content): a 400 to the client.</summary>
public sealed class RequestTranslationException(string message) : Exception(message);

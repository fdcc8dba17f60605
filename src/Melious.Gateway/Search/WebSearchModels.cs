namespace Melious.Gateway.Search;

/// <summary>One search as the model asked for it, with the tool's restrictions.</summary>
internal sealed record WebSearchQuery(
    string Query,
    IReadOnlyList<string>? AllowedDomains = null,
    IReadOnlyList<string>? BlockedDomains = null,
    string? Country = null,
    int MaxResults = 5);

/// <summary>One result: what the client sees (url, title, page age) plus the text the model reads.</summary>
internal sealed record WebSearchHit(string Url, string Title, string? PageAge, string Content);

/// <summary>The hits, or an Anthropic web search error code (<c>unavailable</c>, <c>too_many_requests</c>, …).</summary>
internal sealed record WebSearchOutcome(IReadOnlyList<WebSearchHit>? Hits, string? ErrorCode)
{
    public static WebSearchOutcome Error(string code) => new(null, code);

    public bool IsError => ErrorCode is not null;
}

/// <summary>Anthropic's error codes for <c>web_search_tool_result_error</c>.</summary>
internal static class WebSearchErrors
{
    public const string Unavailable = "unavailable";
    public const string TooManyRequests = "too_many_requests";
    public const string InvalidInput = "invalid_input";
    public const string MaxUsesExceeded = "max_uses_exceeded";
    public const string QueryTooLong = "query_too_long";
}

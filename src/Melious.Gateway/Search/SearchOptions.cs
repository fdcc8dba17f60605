namespace Melious.Gateway.Search;

/// <summary>
/// The deployment's web search provider (<c>Melious:Search</c>), used to serve Anthropic's <c>web_search</c> server
/// tool through open models (docs/web-search.md). Without a <see cref="Provider"/>, searches answer
/// <c>web_search_tool_result_error</c> with <c>unavailable</c>.
/// </summary>
public sealed class SearchOptions
{
    /// <summary><c>searxng</c> (JSON API), <c>brave</c> (Brave Search API) or <c>tavily</c>; empty: no provider.</summary>
    public string? Provider { get; set; }

    /// <summary>The provider's base URL (SearXNG: the instance root; Brave and Tavily default to their public APIs).</summary>
    public string? BaseUrl { get; set; }

    /// <summary>
    /// Where the provider key is, never the key itself: a configuration key (<c>SEARCH_API_KEY</c> or
    /// <c>config:Melious:Secrets:Brave</c>) or an environment variable (<c>env:BRAVE_API_KEY</c>).
    /// </summary>
    public string? ApiKeySetting { get; set; }

    /// <summary>
    /// Where the key that signs <c>encrypted_content</c> is (same forms as <see cref="ApiKeySetting"/>). Without
    /// it a random per-process key is used: replayed results from another instance or before a restart then reach
    /// the model without their page text.
    /// </summary>
    public string? SigningKeySetting { get; set; }

    /// <summary>Default price of one search, in the model's currency (a catalog <c>WebSearchPrice</c> overrides it).</summary>
    public string PricePerSearch { get; set; } = "0";

    /// <summary>Results per search handed to the model and the client.</summary>
    public int MaxResults { get; set; } = 5;

    /// <summary>Searches per response when the tool sets no <c>max_uses</c> (and the ceiling when it sets more).</summary>
    public int MaxUses { get; set; } = 10;

    /// <summary>How long one provider call may take before it answers <c>unavailable</c>.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);
}

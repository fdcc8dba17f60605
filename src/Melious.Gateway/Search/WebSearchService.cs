using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Search;

/// <summary>
/// Runs web searches against the deployment's provider (SearXNG JSON API, Brave Search API or Tavily) and seals the
/// results for the client. Domain restrictions are passed to the provider where it has them (Tavily's
/// include/exclude lists; <c>site:</c> operators for SearXNG and Brave) and always enforced on the results as well;
/// <c>user_location.country</c> goes to Brave (<c>country</c>) and Tavily (<c>country</c> is a name there, so it is
/// not sent). Never throws for a provider failure: that becomes an Anthropic error code.
/// </summary>
public sealed partial class WebSearchService : IDisposable
{
    private const int MaxQueryLength = 500;

    private readonly SearchOptions _options;
    private readonly string? _provider;
    private readonly string? _apiKey;
    private readonly HttpClient _http;
    private readonly ILogger<WebSearchService> _logger;

    public WebSearchService(IOptions<GatewayOptions> options, IConfiguration configuration, ILogger<WebSearchService> logger)
    {
        _options = options.Value.Search;
        _logger = logger;
        _provider = string.IsNullOrWhiteSpace(_options.Provider) ? null : _options.Provider.Trim().ToLowerInvariant();
        _apiKey = Resolve(configuration, _options.ApiKeySetting);
        Signer = new SearchResultSigner(Resolve(configuration, _options.SigningKeySetting));
        PricePerSearch = decimal.TryParse(_options.PricePerSearch, NumberStyles.Number, CultureInfo.InvariantCulture, out var price) && price >= 0 ? price : 0m;
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2), ConnectTimeout = TimeSpan.FromSeconds(10) })
        {
            Timeout = _options.Timeout > TimeSpan.Zero ? _options.Timeout : TimeSpan.FromSeconds(15),
        };
    }

    /// <summary>True when a provider is configured (searches can return results).</summary>
    public bool Configured => _provider is "searxng" or "brave" or "tavily";

    public decimal PricePerSearch { get; }

    public int MaxResults => Math.Clamp(_options.MaxResults, 1, 20);

    public int MaxUses => Math.Max(1, _options.MaxUses);

    internal SearchResultSigner Signer { get; }

    /// <summary>A <c>config:</c>/<c>env:</c> reference or a bare configuration key; null when unset.</summary>
    internal static string? Resolve(IConfiguration configuration, string? reference)
    {
        if (string.IsNullOrWhiteSpace(reference))
        {
            return null;
        }

        var value = reference.StartsWith("env:", StringComparison.Ordinal)
            ? Environment.GetEnvironmentVariable(reference[4..])
            : configuration[reference.StartsWith("config:", StringComparison.Ordinal) ? reference[7..] : reference];
        return string.IsNullOrEmpty(value) ? null : value;
    }

    internal async Task<WebSearchOutcome> SearchAsync(WebSearchQuery query, CancellationToken cancellationToken)
    {
        if (!Configured)
        {
            return WebSearchOutcome.Error(WebSearchErrors.Unavailable);
        }

        if (string.IsNullOrWhiteSpace(query.Query))
        {
            return WebSearchOutcome.Error(WebSearchErrors.InvalidInput);
        }

        if (query.Query.Length > MaxQueryLength)
        {
            return WebSearchOutcome.Error(WebSearchErrors.QueryTooLong);
        }

        try
        {
            using var request = BuildRequest(query);
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                return WebSearchOutcome.Error(WebSearchErrors.TooManyRequests);
            }

            if (!response.IsSuccessStatusCode)
            {
                Log.ProviderFailed(_logger, _provider!, ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture));
                return WebSearchOutcome.Error(WebSearchErrors.Unavailable);
            }

            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            using var document = await JsonDocument.ParseAsync(body, cancellationToken: cancellationToken);
            var hits = Filter(Parse(_provider!, document.RootElement), query);
            return new WebSearchOutcome(hits, null);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Log.ProviderFailed(_logger, _provider!, "timeout");
            return WebSearchOutcome.Error(WebSearchErrors.Unavailable);
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException or IOException or InvalidOperationException)
        {
            Log.ProviderFailed(_logger, _provider!, ex.GetType().Name);
            return WebSearchOutcome.Error(WebSearchErrors.Unavailable);
        }
    }

    private HttpRequestMessage BuildRequest(WebSearchQuery query)
    {
        var baseUrl = (_options.BaseUrl ?? _provider switch
        {
            "brave" => "https://api.search.brave.com",
            "tavily" => "https://api.tavily.com",
            _ => throw new InvalidOperationException("Melious:Search:BaseUrl is required for SearXNG"),
        }).TrimEnd('/');
        // Ask for a few more than needed: domain filtering happens after.
        var count = Math.Min(20, query.MaxResults * 2);
        switch (_provider)
        {
            case "brave":
            {
                var url = new StringBuilder(baseUrl).Append("/res/v1/web/search?q=").Append(Uri.EscapeDataString(WithSiteOperators(query)))
                    .Append("&count=").Append(count.ToString(CultureInfo.InvariantCulture));
                if (query.Country is { Length: 2 } country)
                {
                    url.Append("&country=").Append(Uri.EscapeDataString(country.ToLowerInvariant()));
                }

                var request = new HttpRequestMessage(HttpMethod.Get, url.ToString());
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
                if (_apiKey is not null)
                {
                    request.Headers.TryAddWithoutValidation("X-Subscription-Token", _apiKey);
                }

                return request;
            }

            case "tavily":
            {
                var payload = new System.Buffers.ArrayBufferWriter<byte>(256);
                using (var writer = new Utf8JsonWriter(payload))
                {
                    writer.WriteStartObject();
                    writer.WriteString("query", query.Query);
                    writer.WriteNumber("max_results", count);
                    WriteList(writer, "include_domains", query.AllowedDomains);
                    WriteList(writer, "exclude_domains", query.BlockedDomains);
                    writer.WriteEndObject();
                }

                var request = new HttpRequestMessage(HttpMethod.Post, baseUrl + "/search") { Content = new ByteArrayContent(payload.WrittenSpan.ToArray()) };
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                if (_apiKey is not null)
                {
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
                }

                return request;
            }

            default:
            {
                var url = baseUrl + "/search?format=json&q=" + Uri.EscapeDataString(WithSiteOperators(query));
                var request = new HttpRequestMessage(HttpMethod.Get, url);
                request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
                if (_apiKey is not null)
                {
                    // SearXNG has no keys of its own; a key is for a proxy in front of it.
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _apiKey);
                }

                return request;
            }
        }
    }

    private static void WriteList(Utf8JsonWriter writer, string name, IReadOnlyList<string>? values)
    {
        if (values is not { Count: > 0 })
        {
            return;
        }

        writer.WriteStartArray(name);
        foreach (var value in values)
        {
            writer.WriteStringValue(value);
        }

        writer.WriteEndArray();
    }

    /// <summary>The query with <c>site:</c> / <c>-site:</c> operators for the domain lists (SearXNG and Brave honour them).</summary>
    internal static string WithSiteOperators(WebSearchQuery query)
    {
        var text = new StringBuilder(query.Query);
        if (query.AllowedDomains is { Count: > 0 } allowed)
        {
            text.Append(' ');
            if (allowed.Count > 1)
            {
                text.Append('(');
            }

            text.AppendJoin(" OR ", allowed.Select(d => "site:" + d));
            if (allowed.Count > 1)
            {
                text.Append(')');
            }
        }

        foreach (var blocked in query.BlockedDomains ?? [])
        {
            text.Append(" -site:").Append(blocked);
        }

        return text.ToString();
    }

    /// <summary>Results in the provider's JSON shape → hits (SearXNG and Tavily: <c>results[]</c>; Brave: <c>web.results[]</c>).</summary>
    internal static List<WebSearchHit> Parse(string provider, JsonElement root)
    {
        var hits = new List<WebSearchHit>();
        var results = provider == "brave"
            ? root.TryGetProperty("web", out var web) && web.TryGetProperty("results", out var braveResults) ? braveResults : default
            : root.TryGetProperty("results", out var list) ? list : default;
        if (results.ValueKind != JsonValueKind.Array)
        {
            return hits;
        }

        foreach (var item in results.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object || Text(item, "url") is not { Length: > 0 } url)
            {
                continue;
            }

            var title = StripTags(Text(item, "title") ?? url);
            var (content, age) = provider switch
            {
                "brave" => (Text(item, "description"), Text(item, "page_age") ?? Text(item, "age")),
                "tavily" => (Text(item, "content"), Text(item, "published_date")),
                _ => (Text(item, "content"), Text(item, "publishedDate")),
            };
            hits.Add(new WebSearchHit(url, title, age, StripTags(content ?? "")));
        }

        return hits;
    }

    private static string? Text(JsonElement item, string name) =>
        item.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    /// <summary>Brave marks matches with <c>&lt;strong&gt;</c>; the model needs plain text.</summary>
    private static string StripTags(string text) =>
        text.Contains('<', StringComparison.Ordinal) ? TagPattern().Replace(text, "") : text;

    [System.Text.RegularExpressions.GeneratedRegex("</?(strong|b|em|i)>", System.Text.RegularExpressions.RegexOptions.IgnoreCase)]
    private static partial System.Text.RegularExpressions.Regex TagPattern();

    /// <summary>Enforces the domain lists on the results and keeps at most <see cref="WebSearchQuery.MaxResults"/>.</summary>
    internal static List<WebSearchHit> Filter(List<WebSearchHit> hits, WebSearchQuery query)
    {
        var kept = new List<WebSearchHit>(Math.Min(hits.Count, query.MaxResults));
        foreach (var hit in hits)
        {
            if (!Uri.TryCreate(hit.Url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                continue;
            }

            var host = uri.Host;
            if (query.AllowedDomains is { Count: > 0 } allowed && !allowed.Any(d => DomainMatches(host, d)))
            {
                continue;
            }

            if (query.BlockedDomains is { Count: > 0 } blocked && blocked.Any(d => DomainMatches(host, d)))
            {
                continue;
            }

            kept.Add(hit);
            if (kept.Count == query.MaxResults)
            {
                break;
            }
        }

        return kept;
    }

    /// <summary><c>docs.example.com</c> matches <c>example.com</c>; a scheme or path in the listed domain is ignored.</summary>
    internal static bool DomainMatches(string host, string domain)
    {
        var d = domain.Trim();
        var scheme = d.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            d = d[(scheme + 3)..];
        }

        var slash = d.IndexOf('/');
        if (slash >= 0)
        {
            d = d[..slash];
        }

        if (d.StartsWith("www.", StringComparison.OrdinalIgnoreCase))
        {
            d = d[4..];
        }

        return d.Length > 0 && (host.Equals(d, StringComparison.OrdinalIgnoreCase) || host.EndsWith("." + d, StringComparison.OrdinalIgnoreCase));
    }

    public void Dispose() => _http.Dispose();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Web search provider {Provider} failed ({Reason})")]
        public static partial void ProviderFailed(ILogger logger, string provider, string reason);
    }
}

using System.Globalization;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.Limits;

/// <summary>
/// Anthropic's rate-limit response headers, on successes and on 429s alike:
/// <c>anthropic-ratelimit-requests-{limit,remaining,reset}</c> for requests per minute and
/// <c>anthropic-ratelimit-tokens-{limit,remaining,reset}</c> for tokens per minute (input plus output: the gateway has
/// one token limit, so the <c>input-tokens</c>/<c>output-tokens</c> variants, which Anthropic sends for its separate
/// limits, are not sent). Reset is RFC 3339 UTC, when the current window ends. Only limits the key has are sent.
/// </summary>
public static class RateLimitHeaders
{
    public const string Prefix = "anthropic-ratelimit-";

    public static void Write(IHeaderDictionary headers, LimitDecision decision)
    {
        Write(headers, "requests", decision.Requests);
        Write(headers, "tokens", decision.Tokens);
    }

    private static void Write(IHeaderDictionary headers, string name, RateLimitStatus? status)
    {
        if (status is not { } s)
        {
            return;
        }

        headers[Prefix + name + "-limit"] = s.Limit.ToString(CultureInfo.InvariantCulture);
        headers[Prefix + name + "-remaining"] = s.Remaining.ToString(CultureInfo.InvariantCulture);
        headers[Prefix + name + "-reset"] = s.Reset.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
    }
}

using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.Reporting;

/// <summary>A client mistake in a report query: answered with a 400 and this message.</summary>
public sealed class ReportQueryException(string message) : Exception(message);

/// <summary>Parsing of the Admin-API-style query parameters (<c>starting_at</c>, <c>group_by[]</c>, <c>page</c> …).</summary>
public static class ReportQuery
{
    /// <summary>All values of <c>name[]</c> and <c>name</c> (Anthropic's SDKs send the bracketed form), comma lists split.</summary>
    public static List<string> Array(IQueryCollection query, string name)
    {
        var values = new List<string>();
        foreach (var key in new[] { name + "[]", name })
        {
            if (query.TryGetValue(key, out var given))
            {
                foreach (var value in given)
                {
                    values.AddRange((value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
                }
            }
        }

        return values;
    }

    /// <summary>Rejects any parameter that is not in <paramref name="allowed"/> (with or without <c>[]</c>).</summary>
    public static void RejectUnknown(IQueryCollection query, IReadOnlyDictionary<string, string?> allowed)
    {
        foreach (var key in query.Keys)
        {
            var name = key.EndsWith("[]", StringComparison.Ordinal) ? key[..^2] : key;
            if (!allowed.TryGetValue(name, out var whyNot))
            {
                throw new ReportQueryException($"unknown query parameter '{key}'");
            }

            if (whyNot is not null)
            {
                throw new ReportQueryException($"query parameter '{key}' is not supported: {whyNot}");
            }
        }
    }

    public static DateTimeOffset? Time(IQueryCollection query, string name, bool required)
    {
        var text = query[name].ToString();
        if (text.Length == 0)
        {
            return required ? throw new ReportQueryException($"{name} is required (an RFC 3339 timestamp such as 2026-12-01T00:00:00Z)") : null;
        }

        if (!DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var value))
        {
            throw new ReportQueryException($"{name} must be an RFC 3339 timestamp such as 2026-12-01T00:00:00Z (got '{Shorten(text)}')");
        }

        if (!UsageQueryService.InWindow(DateOnly.FromDateTime(value.UtcDateTime)))
        {
            throw new ReportQueryException($"{name} must be a time {UsageQueryService.DayWindow} (got '{Shorten(text)}')");
        }

        return value;
    }

    /// <summary>
    /// The UTC days a query covers: from the day of <c>starting_at</c> (buckets snap to the start of the day) up to
    /// the day before <c>ending_at</c> (exclusive; a time inside a day includes that day), or up to today.
    /// </summary>
    public static (DateOnly From, DateOnly To) Days(IQueryCollection query, DateTimeOffset now, bool startRequired, int defaultDays)
    {
        var end = Time(query, "ending_at", required: false);
        var endDay = end is { } e
            ? DateOnly.FromDateTime(e.UtcDateTime).AddDays(e.UtcDateTime.TimeOfDay == TimeSpan.Zero ? -1 : 0)
            : DateOnly.FromDateTime(now.UtcDateTime);
        var start = Time(query, "starting_at", startRequired);
        var startDay = start is { } s ? DateOnly.FromDateTime(s.UtcDateTime) : endDay.AddDays(1 - defaultDays);
        if (endDay < startDay)
        {
            throw new ReportQueryException("ending_at must be after starting_at");
        }

        if (endDay.DayNumber - startDay.DayNumber + 1 > UsageQueryService.MaxDays)
        {
            throw new ReportQueryException($"the range may cover at most {UsageQueryService.MaxDays} days");
        }

        return (startDay, endDay);
    }

    public static int Limit(IQueryCollection query, int defaultValue, int max)
    {
        var text = query["limit"].ToString();
        if (text.Length == 0)
        {
            return defaultValue;
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= 1 && value <= max
            ? value
            : throw new ReportQueryException($"limit must be a whole number from 1 to {max} (got '{Shorten(text)}')");
    }

    /// <summary>Rejects any <c>bucket_width</c> but <c>1d</c>: the gateway keeps daily rollups, no hourly ones.</summary>
    public static void DailyBuckets(IQueryCollection query)
    {
        var width = query["bucket_width"].ToString();
        if (width.Length == 0 || width == "1d")
        {
            return;
        }

        throw width is "1h" or "1m"
            ? new ReportQueryException($"bucket_width={width} is not supported: this gateway keeps daily usage rollups only; use bucket_width=1d")
            : new ReportQueryException($"bucket_width must be 1d (got '{Shorten(width)}')");
    }

    public static string Page(DateOnly next) => "page_" + Convert.ToBase64String(Encoding.ASCII.GetBytes(UsageQueryService.Day(next)));

    /// <summary>The first day of this page: the <c>page</c> token's day, or <paramref name="from"/>.</summary>
    public static DateOnly PageStart(IQueryCollection query, DateOnly from, DateOnly to)
    {
        var token = query["page"].ToString();
        if (token.Length == 0)
        {
            return from;
        }

        try
        {
            if (token.StartsWith("page_", StringComparison.Ordinal)
                && DateOnly.TryParseExact(Encoding.ASCII.GetString(Convert.FromBase64String(token[5..])), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day)
                && day >= from && day <= to)
            {
                return day;
            }
        }
        catch (FormatException)
        {
        }

        throw new ReportQueryException("page must be the next_page value of a previous response with the same starting_at and ending_at");
    }

    public static string Timestamp(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + "T00:00:00Z";

    public static string Timestamp(DateTimeOffset? time) => time?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture) ?? "";

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "…";
}

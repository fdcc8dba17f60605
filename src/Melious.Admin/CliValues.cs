using System.Globalization;

namespace Melious.Admin;

/// <summary>
/// Parsing and validation of option values. Numbers are always read with the invariant culture (a <c>.</c> as the
/// decimal separator, no thousands separators), so a command means the same thing on every machine. Each method
/// returns null for an option that was not given and throws <see cref="CliException"/> for a bad value.
/// </summary>
internal static class CliValues
{
    public static decimal? NonNegativeDecimal(string? text, string option)
    {
        if (text is null)
        {
            return null;
        }

        if (!decimal.TryParse(text.Trim(), NumberStyles.AllowDecimalPoint | NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) || value < 0)
        {
            throw new CliException($"{option} must be a non-negative decimal number written with '.', e.g. 0.60 (got '{text}')");
        }

        return value;
    }

    public static int? Int(string? text, string option, int min, int max = int.MaxValue)
    {
        if (text is null)
        {
            return null;
        }

        if (!int.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            throw new CliException(max == int.MaxValue
                ? $"{option} must be a whole number of at least {min} (got '{text}')"
                : $"{option} must be a whole number from {min} to {max} (got '{text}')");
        }

        return value;
    }

    public static long? Long(string? text, string option, long min)
    {
        if (text is null)
        {
            return null;
        }

        if (!long.TryParse(text.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) || value < min)
        {
            throw new CliException($"{option} must be a whole number of at least {min} (got '{text}')");
        }

        return value;
    }

    public static double? PositiveDouble(string? text, string option)
    {
        if (text is null)
        {
            return null;
        }

        if (!double.TryParse(text.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !double.IsFinite(value) || value <= 0)
        {
            throw new CliException($"{option} must be a positive number written with '.', e.g. 3.3 (got '{text}')");
        }

        return value;
    }

    public static bool? Bool(string? text, string option) => text?.Trim().ToLowerInvariant() switch
    {
        null => null,
        "true" => true,
        "false" => false,
        _ => throw new CliException($"{option} must be true or false (got '{text}')"),
    };

    /// <summary>An ISO 4217 alpha-3 code, upper-cased.</summary>
    public static string? Currency(string? text, string option)
    {
        if (text is null)
        {
            return null;
        }

        var trimmed = text.Trim();
        if (trimmed.Length != 3 || !trimmed.All(char.IsAsciiLetter))
        {
            throw new CliException($"{option} must be a three-letter ISO 4217 currency code such as USD or EUR (got '{text}')");
        }

        return trimmed.ToUpperInvariant();
    }

    public static DateOnly Date(string? text, string option)
    {
        if (text is null || !DateOnly.TryParseExact(text.Trim(), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
        {
            throw new CliException($"{option} must be a date as YYYY-MM-DD (got '{text}')");
        }

        return day;
    }

    public static (DateOnly From, DateOnly To) DateRange(string? from, string? to)
    {
        var start = Date(from, "--from");
        var end = Date(to, "--to");
        if (end < start)
        {
            throw new CliException($"--to ({Format(end)}) is before --from ({Format(start)})");
        }

        return (start, end);
    }

    public static string? AbsoluteHttpUrl(string? text, string option)
    {
        if (text is null)
        {
            return null;
        }

        if (!Uri.TryCreate(text.Trim(), UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new CliException($"{option} must be an absolute http(s) URL, e.g. http://10.0.0.5:8000/v1 (got '{text}')");
        }

        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            throw new CliException($"{option} must not contain credentials; store the key in configuration and use --api-key-ref");
        }

        return text.Trim().TrimEnd('/');
    }

    /// <summary>A reference to where an upstream key lives: <c>config:Section:Key</c> or <c>env:NAME</c>.</summary>
    public static string? KeyReference(string? text, string option)
    {
        if (text is null)
        {
            return null;
        }

        var trimmed = text.Trim();
        var valid = (trimmed.StartsWith("config:", StringComparison.OrdinalIgnoreCase) && trimmed.Length > "config:".Length)
            || (trimmed.StartsWith("env:", StringComparison.OrdinalIgnoreCase) && trimmed.Length > "env:".Length);
        if (!valid)
        {
            throw new CliException($"{option} must be config:<configuration key> or env:<variable name>, e.g. env:VLLM_API_KEY (never the key itself)");
        }

        return trimmed;
    }

    /// <summary>The same rule the key store applies: 1-128 letters, digits, '-', '_', '.' or '@'.</summary>
    public static string Account(string? text, string option = "--account")
    {
        var trimmed = text?.Trim() ?? "";
        if (trimmed.Length is 0 or > 128 || !trimmed.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '@'))
        {
            throw new CliException($"{option} must be 1-128 characters of letters, digits, '-', '_', '.' or '@' (got '{text}')");
        }

        return trimmed;
    }

    public static string? OptionalAccount(string? text) => text is null ? null : Account(text);

    public static string NonEmpty(string? text, string what, int maxLength = 256)
    {
        var trimmed = text?.Trim() ?? "";
        if (trimmed.Length == 0 || trimmed.Length > maxLength || trimmed.Any(char.IsControl))
        {
            throw new CliException($"{what} must be 1-{maxLength} printable characters (got '{text}')");
        }

        return trimmed;
    }

    /// <summary>Comma-separated model patterns; an empty string gives an empty list (all models).</summary>
    public static IReadOnlyList<string>? Patterns(string? text) =>
        text?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public static string Format(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    public static string Format(decimal value) => value.ToString(CultureInfo.InvariantCulture);

    public static string Format(long value) => value.ToString(CultureInfo.InvariantCulture);

    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}

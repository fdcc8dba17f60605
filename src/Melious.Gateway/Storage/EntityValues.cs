using System.Globalization;
using Azure.Data.Tables;

namespace Melious.Gateway.Storage;

/// <summary>Tolerant readers for table properties that an operator may have typed by hand in Storage Explorer.</summary>
internal static class EntityValues
{
    public static string? String(TableEntity entity, string name) =>
        entity.TryGetValue(name, out var value) && value is not null ? Convert.ToString(value, CultureInfo.InvariantCulture) : null;

    public static long? Long(TableEntity entity, string name) => entity.TryGetValue(name, out var value) ? value switch
    {
        long l => l,
        int i => i,
        double d => (long)d,
        string s when long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) => parsed,
        _ => null,
    } : null;

    public static double? Double(TableEntity entity, string name) => entity.TryGetValue(name, out var value) ? value switch
    {
        double d => d,
        long l => l,
        int i => i,
        string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) => parsed,
        _ => null,
    } : null;

    public static bool? Bool(TableEntity entity, string name) => entity.TryGetValue(name, out var value) ? value switch
    {
        bool b => b,
        string s when bool.TryParse(s, out var parsed) => parsed,
        int i => i != 0,
        long l => l != 0,
        _ => null,
    } : null;

    public static decimal? Decimal(TableEntity entity, string name) => entity.TryGetValue(name, out var value) ? value switch
    {
        string s when decimal.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed) => parsed,
        double d => (decimal)d,
        long l => l,
        int i => i,
        _ => null,
    } : null;

    public static DateTimeOffset? Date(TableEntity entity, string name) => entity.TryGetValue(name, out var value) ? value switch
    {
        DateTimeOffset d => d,
        DateTime d => new DateTimeOffset(DateTime.SpecifyKind(d, DateTimeKind.Utc)),
        string s when DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed) => parsed,
        _ => null,
    } : null;
}

/// <summary>Escapes values for use inside PartitionKey/RowKey (which forbid <c>/ \ # ?</c> and control characters).</summary>
public static class KeyEncoding
{
    public static string Encode(string value)
    {
        var needs = false;
        foreach (var c in value)
        {
            if (NeedsEscape(c))
            {
                needs = true;
                break;
            }
        }

        if (!needs)
        {
            return value;
        }

        var builder = new System.Text.StringBuilder(value.Length + 8);
        foreach (var c in value)
        {
            if (NeedsEscape(c))
            {
                builder.Append('%').Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
            }
            else
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }

    private static bool NeedsEscape(char c) => c is '/' or '\\' or '#' or '?' or '|' or '%' || char.IsControl(c);
}

using System.Security.Cryptography;
using System.Text;

namespace Melious.Gateway.Translation;

/// <summary>
/// OpenAI function names must match <c>^[a-zA-Z0-9_-]{1,64}$</c>; Anthropic tool names may be longer or use other
/// characters (MCP tools). Names that do not fit are rewritten reversibly for one request: invalid characters
/// become <c>_</c>, and a name over 64 characters becomes its first 55 characters, <c>_</c>, and 8 hex digits of its
/// SHA-256. Responses map the upstream name back to the client's.
/// </summary>
internal sealed class ToolNameMap
{
    private Dictionary<string, string>? _toOriginal;

    public static ToolNameMap Empty => new();

    public string ToUpstream(string original)
    {
        if (IsValid(original))
        {
            return original;
        }

        var builder = new StringBuilder(original.Length);
        foreach (var c in original)
        {
            builder.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '-' ? c : '_');
        }

        var sanitized = builder.ToString();
        if (sanitized.Length == 0 || sanitized.Length > 64 || sanitized != original)
        {
            var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(original)))[..8];
            sanitized = (sanitized.Length > 55 ? sanitized[..55] : sanitized) + "_" + hash;
        }

        (_toOriginal ??= new(StringComparer.Ordinal))[sanitized] = original;
        return sanitized;
    }

    public string ToOriginal(string upstream) =>
        _toOriginal is not null && _toOriginal.TryGetValue(upstream, out var original) ? original : upstream;

    private static bool IsValid(string name)
    {
        if (name.Length is 0 or > 64)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not '_' and not '-')
            {
                return false;
            }
        }

        return true;
    }
}

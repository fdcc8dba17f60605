namespace Melious.Gateway.Auth;

/// <summary>
/// What is wrong with a key, judged by its format alone (prefix, length, alphabet), never by the stored keys: the
/// answer and its timing reveal nothing about which keys exist. Messages never contain the key or any part of it.
/// </summary>
/// <remarks>Self-contained: the <c>melious</c> CLI compiles this file too, to check keys before sending them.</remarks>
public static class KeyFormat
{
    /// <summary>The prefix of every Melious key (same as <c>ApiKeys.Prefix</c>).</summary>
    public const string Prefix = "sk-mel-";

    /// <summary>Characters after <see cref="Prefix"/> in a minted key.</summary>
    public const int SuffixLength = 43;

    /// <summary>The length of a whole key (<c>sk-mel-</c> + 43 base62 characters).</summary>
    public const int KeyLength = 7 + SuffixLength;

    public const string AnthropicKeyMessage =
        "this is an Anthropic API key; the gateway needs a Melious key (sk-mel-…). Unset ANTHROPIC_API_KEY or set it to \"\"";

    public const string MissingPrefixMessage = "the key is missing its sk-mel- prefix";

    public const string TruncatedMessage = "the key looks truncated";

    public const string NotAMeliousKeyMessage = "this is not a Melious API key (they start with sk-mel-)";

    public const string UnknownKeyMessage = "invalid API key: this key does not exist";

    /// <summary>Null when the key has the shape of a Melious key (then only the key store can tell), else why not.</summary>
    public static string? Problem(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.StartsWith("sk-ant-", StringComparison.Ordinal))
        {
            return AnthropicKeyMessage;
        }

        if (key.StartsWith(Prefix, StringComparison.Ordinal))
        {
            var suffix = key.AsSpan(Prefix.Length);
            if (suffix.Length < SuffixLength)
            {
                return $"{TruncatedMessage}: a Melious key has {KeyLength} characters, this one has {key.Length}";
            }

            if (suffix.Length > SuffixLength)
            {
                return $"the key is too long: a Melious key has {KeyLength} characters, this one has {key.Length} (extra characters pasted with it?)";
            }

            return IsBase62(suffix) ? null : "the key contains characters a Melious key never has (only letters and digits follow sk-mel-)";
        }

        if (key.Length == SuffixLength && IsBase62(key))
        {
            return MissingPrefixMessage;
        }

        if (key.StartsWith("mel-", StringComparison.Ordinal) && key.Length == KeyLength - 3)
        {
            return MissingPrefixMessage + " (it starts with mel- instead of sk-mel-)";
        }

        return NotAMeliousKeyMessage;
    }

    private static bool IsBase62(ReadOnlySpan<char> text)
    {
        foreach (var c in text)
        {
            if (!char.IsAsciiLetterOrDigit(c))
            {
                return false;
            }
        }

        return true;
    }
}

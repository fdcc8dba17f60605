using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Melious.Gateway.Search;

/// <summary>
/// Seals a search result into the opaque <c>encrypted_content</c> string the client echoes back, and opens it again
/// on replay. The string is <c>mws1.</c> + base64url(JSON of url, title, page age, text) + <c>.</c> + base64url(the
/// first 16 bytes of HMAC-SHA256 over the payload). It is signed, not encrypted: it holds nothing the client did not
/// see, and the signature keeps a client from putting words in the model's mouth as "search results".
/// </summary>
internal sealed class SearchResultSigner
{
    private const string Prefix = "mws1.";
    private const int MacBytes = 16;
    private readonly byte[] _key;

    public SearchResultSigner(string? key)
    {
        _key = string.IsNullOrEmpty(key) ? RandomNumberGenerator.GetBytes(32) : SHA256.HashData(Encoding.UTF8.GetBytes(key));
    }

    public string Seal(WebSearchHit hit)
    {
        var payload = new System.Buffers.ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(payload))
        {
            writer.WriteStartObject();
            writer.WriteString("u", hit.Url);
            writer.WriteString("t", hit.Title);
            if (hit.PageAge is not null)
            {
                writer.WriteString("a", hit.PageAge);
            }

            writer.WriteString("c", hit.Content);
            writer.WriteEndObject();
        }

        var bytes = payload.WrittenSpan;
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(_key, bytes, mac);
        return Prefix + Base64Url.EncodeToString(bytes) + "." + Base64Url.EncodeToString(mac[..MacBytes]);
    }

    /// <summary>The sealed result, or null when the string is not one this key sealed (tampered, foreign, truncated).</summary>
    public WebSearchHit? Open(string? sealedContent)
    {
        if (sealedContent is null || !sealedContent.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var body = sealedContent.AsSpan(Prefix.Length);
        var dot = body.LastIndexOf('.');
        if (dot <= 0)
        {
            return null;
        }

        try
        {
            var payload = Base64Url.DecodeFromChars(body[..dot]);
            var mac = Base64Url.DecodeFromChars(body[(dot + 1)..]);
            Span<byte> expected = stackalloc byte[32];
            HMACSHA256.HashData(_key, payload, expected);
            if (mac.Length != MacBytes || !CryptographicOperations.FixedTimeEquals(mac, expected[..MacBytes]))
            {
                return null;
            }

            using var document = JsonDocument.Parse(payload);
            var root = document.RootElement;
            return new WebSearchHit(
                root.GetProperty("u").GetString() ?? "",
                root.GetProperty("t").GetString() ?? "",
                root.TryGetProperty("a", out var age) ? age.GetString() : null,
                root.GetProperty("c").GetString() ?? "");
        }
        catch (Exception ex) when (ex is FormatException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null;
        }
    }
}

using System.Text.Encodings.Web;
using System.Text.Json;

namespace Melious.Gateway.Protocol;

/// <summary>
/// JSON writing settings for bodies the gateway sends. Escaping is minimal (only what JSON requires): non-ASCII text
/// stays UTF-8 instead of six-byte <c>\uXXXX</c> escapes, which keeps upstream requests and responses compact and
/// byte-stable for prefix caches. These bodies are never embedded in HTML.
/// </summary>
internal static class WireJson
{
    public static readonly JsonWriterOptions WriterOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        SkipValidation = true,
    };

    public static readonly JsonSerializerOptions NodeOptions = new()
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>
    /// Parses a body an upstream sent (up to 256 levels deep) when it is a JSON object; null when it is not JSON or
    /// not an object. The caller disposes the document.
    /// </summary>
    public static JsonDocument? ParseObject(ReadOnlySpan<byte> json)
    {
        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
            document = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException)
        {
            return null;
        }

        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            return null;
        }

        return document;
    }
}

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
}

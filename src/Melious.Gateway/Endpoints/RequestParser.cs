using System.Text.Json;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Upstream;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Endpoints;

/// <summary>Parses and validates request bodies with the configured limits (JSON depth, message count, …).</summary>
public sealed class RequestParser
{
    private readonly AnthropicJsonContext _context;
    private readonly LimitsOptions _limits;

    public RequestParser(IOptions<GatewayOptions> options)
    {
        _limits = options.Value.Limits;
        _context = new AnthropicJsonContext(new JsonSerializerOptions(AnthropicJsonContext.Default.Options) { MaxDepth = Math.Max(8, _limits.MaxJsonDepth) });
    }

    public LimitsOptions Limits => _limits;

    /// <summary>Returns the request, or the 400 that names what is wrong.</summary>
    public (MessagesRequest? Request, GatewayError? Error) Parse(ReadOnlyMemory<byte> body, bool requireMaxTokens)
    {
        // JSON strings are checked by the parser, but raw pieces (tool schemas, tool inputs) are kept as they came:
        // reject invalid UTF-8 anywhere before anything is forwarded.
        if (!System.Text.Unicode.Utf8.IsValid(body.Span))
        {
            return (null, Invalid("invalid request body: it is not valid UTF-8"));
        }

        MessagesRequest? request;
        try
        {
            // The tools converter looks the raw tools array up in ToolSetCache.
            using var scope = ToolSetCache.Parsing(body);
            request = JsonSerializer.Deserialize(body.Span, _context.MessagesRequest);
        }
        catch (JsonException ex)
        {
            return (null, Invalid($"invalid request body: {Describe(ex)}"));
        }
        catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or ArgumentException or FormatException or OverflowException)
        {
            return (null, Invalid($"invalid request body: {ex.Message}"));
        }

        if (request is null)
        {
            return (null, Invalid("invalid request body: expected a JSON object"));
        }

        return MessagesRequestValidator.Validate(request, _limits, requireMaxTokens) is { } message
            ? (null, Invalid(message))
            : (request, null);
    }

    private static GatewayError Invalid(string message) => new(400, "invalid_request_error", message);

    private static string Describe(JsonException ex)
    {
        // Turn "$.messages[0].content" into the API's dotted form, and keep the reason short.
        var path = ex.Path is { Length: > 1 } p ? p.TrimStart('$').TrimStart('.').Replace("[", ".", StringComparison.Ordinal).Replace("]", "", StringComparison.Ordinal) : null;
        var reason = ex.Message;
        var cut = reason.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut > 0)
        {
            reason = reason[..cut];
        }

        if (reason.Length > 300)
        {
            reason = reason[..300];
        }

        return path is null ? reason : $"{path}: {reason}";
    }
}

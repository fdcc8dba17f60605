using Melious.Gateway.Protocol;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Melious.Gateway.Tokens;

namespace Melious.Gateway.Upstream;

/// <summary>An error to send to the client as <c>{"type":"error","error":{…}}</c>.</summary>
public sealed record GatewayError(int Status, string Type, string Message)
{
    /// <summary>Seconds for a <c>retry-after</c> header, when the client should wait.</summary>
    public string? RetryAfter { get; init; }

    /// <summary>Sets <c>x-should-retry</c> (false stops SDK and Claude Code retry loops).</summary>
    public bool? ShouldRetry { get; init; }
}

/// <summary>Maps upstream failures to Anthropic errors (protocol.md §C.7).</summary>
internal static partial class UpstreamErrors
{
    public static GatewayError FromStatus(int status, string? upstreamMessage, string? retryAfter, UpstreamContext context)
    {
        var message = Sanitize(upstreamMessage, context);
        switch (status)
        {
            case 400 or 422 when ContextLength(message, context) is { } tooLong:
                return new GatewayError(400, "invalid_request_error", tooLong);
            case 400 or 422:
                return new GatewayError(400, "invalid_request_error", Prefix(message, "the upstream rejected the request"));
            case 402:
                // Payment required (protocol.md §A.7): not retryable, unlike the 500 an api_error would be.
                return new GatewayError(402, "billing_error", Prefix(message, "the upstream refused the request for billing reasons"));
            case 401 or 403:
                // The upstream refused the gateway's own credential: a gateway problem, not the client's, and one that
                // lasts until an operator fixes it, so clients must not retry (Claude Code would for ~3 minutes).
                return new GatewayError(502, "api_error", "the upstream rejected the gateway's credentials; the operator must fix the upstream API key") { ShouldRetry = false };
            case 404:
                return new GatewayError(404, "not_found_error", $"model: {context.RequestedModel} is not available upstream");
            case 408 or 504:
                return new GatewayError(504, "timeout_error", Prefix(message, "the upstream timed out"));
            case 413:
                return new GatewayError(413, "request_too_large", Prefix(message, "the request is too large for the upstream"));
            case 429:
                return new GatewayError(429, "rate_limit_error", Prefix(message, "the upstream is rate limiting requests")) { RetryAfter = retryAfter };
            case 502 or 503 or 529:
                return new GatewayError(529, "overloaded_error", Prefix(message, "the upstream is overloaded")) { RetryAfter = retryAfter };
            case >= 500:
                return new GatewayError(500, "api_error", Prefix(message, "the upstream failed"));
            default:
                return new GatewayError(400, "invalid_request_error", Prefix(message, $"the upstream answered {status}"));
        }
    }

    /// <summary>
    /// The client error for an error body an upstream answered with a 2xx status (an OpenAI-style
    /// <c>{"error":{…}}</c> or an Anthropic <c>{"type":"error",…}</c>), decided before any stream starts: the status
    /// the body stands for (<see cref="StatusOfErrorBody"/>) mapped as <see cref="FromStatus"/> maps a real HTTP error
    /// of that status, so a context-length error is "prompt is too long" and a 503 an overloaded_error.
    /// </summary>
    public static GatewayError FromErrorBody(string? type, string? code, string? message, UpstreamContext context) =>
        FromStatus(StatusOfErrorBody(type, code, message, context), message, null, context);

    /// <summary>
    /// The HTTP status an error body stands for: an Anthropic error type names it, else a numeric <c>code</c> (number
    /// or string, 400–599) is it, else the words of <c>type</c> and a string <c>code</c> (OpenAI's
    /// <c>context_length_exceeded</c>, vLLM's <c>BadRequestError</c>, SGLang's <c>SERVICE_UNAVAILABLE</c>…), else a
    /// context-length message is a 400; anything else a 500.
    /// </summary>
    internal static int StatusOfErrorBody(string? type, string? code, string? message, UpstreamContext context)
    {
        var anthropic = type switch
        {
            "invalid_request_error" => 400,
            "authentication_error" => 401,
            "permission_error" => 403,
            "not_found_error" => 404,
            "request_too_large" => 413,
            "rate_limit_error" => 429,
            "billing_error" => 402,
            "api_error" => 500,
            "timeout_error" => 504,
            "overloaded_error" => 529,
            _ => 0,
        };
        if (anthropic != 0)
        {
            return anthropic;
        }

        if (long.TryParse(code, NumberStyles.Integer, CultureInfo.InvariantCulture, out var number) && number is >= 400 and < 600)
        {
            return (int)number;
        }

        var words = $"{type} {code}";
        if (ContextLength(message, context) is not null || words.Contains("context_length", StringComparison.OrdinalIgnoreCase) || words.Contains("context_size", StringComparison.OrdinalIgnoreCase))
        {
            return 400;
        }

        return words switch
        {
            _ when words.Contains("rate", StringComparison.OrdinalIgnoreCase) => 429,
            _ when words.Contains("overload", StringComparison.OrdinalIgnoreCase) || words.Contains("unavailable", StringComparison.OrdinalIgnoreCase) => 529,
            _ when words.Contains("not_found", StringComparison.OrdinalIgnoreCase) || words.Contains("notfound", StringComparison.OrdinalIgnoreCase) => 404,
            _ when words.Contains("timeout", StringComparison.OrdinalIgnoreCase) => 504,
            _ when words.Contains("invalid_request", StringComparison.OrdinalIgnoreCase) || words.Contains("badrequest", StringComparison.OrdinalIgnoreCase) || words.Contains("validation", StringComparison.OrdinalIgnoreCase) => 400,
            _ => 500,
        };
    }

    /// <summary>
    /// The client error for a JSON answer that is an OpenAI-style error body (<c>{"error":{…}}</c>, <c>{"error":"…"}</c>
    /// or older vLLM's flat <c>{"object":"error",…}</c>); null when it is not one.
    /// </summary>
    public static GatewayError? FromErrorBody(ReadOnlySpan<byte> json, UpstreamContext context)
    {
        using var document = WireJson.ParseObject(json);
        if (document is null)
        {
            return null;
        }

        var root = document.RootElement;
        JsonElement detail;
        if (root.TryGetProperty("error", out var error) && error.ValueKind is JsonValueKind.Object or JsonValueKind.String)
        {
            detail = error;
        }
        else if (root.TryGetProperty("object", out var kind) && kind.ValueKind == JsonValueKind.String && kind.ValueEquals("error"))
        {
            detail = root;
        }
        else
        {
            return null;
        }

        if (detail.ValueKind == JsonValueKind.String)
        {
            return FromErrorBody(null, null, detail.GetString(), context);
        }

        var code = detail.TryGetProperty("code", out var c) ? c.ValueKind switch
        {
            JsonValueKind.String => c.GetString(),
            JsonValueKind.Number => c.GetRawText(),
            _ => null,
        } : null;
        var message = StringOf(detail, "message") ?? StringOf(root, "message");
        return FromErrorBody(StringOf(detail, "type"), code, message, context);

        static string? StringOf(JsonElement element, string name) =>
            element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
    }

    /// <summary>
    /// The client error for an upstream stream whose first meaningful event is an error (a chunk with an
    /// <c>error</c> member or vLLM's flat <c>{"object":"error",…}</c>, or an <c>event: error</c> whose data may be
    /// plain text), decided before anything is sent to the client: mapped as the same error in a 200 JSON answer is
    /// (<see cref="FromErrorBody(ReadOnlySpan{byte}, UpstreamContext)"/>); any other text is its message, a 400 when
    /// it is a context-length error and a 500 otherwise.
    /// </summary>
    public static GatewayError FromStreamError(ReadOnlySpan<byte> data, UpstreamContext context)
    {
        if (FromErrorBody(data, context) is { } error)
        {
            return error;
        }

        // `event: error` with plain text, or JSON that is not an error body ({"message":…}, {"detail":…}).
        var message = ExtractMessage(data);
        return FromErrorBody(null, null, string.IsNullOrWhiteSpace(message) ? "upstream reported an error" : message, context);
    }

    /// <summary>
    /// The Anthropic error type and message for an error chunk that arrives after the stream started (written as an
    /// <c>error</c> event). A context-length error whose code says 400 (or 422) is an invalid_request_error in
    /// Anthropic's "prompt is too long" wording, as its HTTP twin is.
    /// </summary>
    public static (string Type, string Message) ForMidStream(long code, string? type, string message, UpstreamContext? context)
    {
        if (code is 400 or 422 && ContextLength(message, context) is { } tooLong)
        {
            return ("invalid_request_error", tooLong);
        }

        return (TypeForMidStream(code, type), message);
    }

    /// <summary>The Anthropic error type for an error chunk that arrives after the stream started.</summary>
    public static string TypeForMidStream(long code, string? type)
    {
        if (code is 429 || type?.Contains("rate", StringComparison.OrdinalIgnoreCase) == true)
        {
            return "rate_limit_error";
        }

        if (code is 503 or 529 || type?.Contains("overload", StringComparison.OrdinalIgnoreCase) == true)
        {
            return "overloaded_error";
        }

        return "api_error";
    }

    /// <summary>Pulls the human message out of an OpenAI, vLLM, FastAPI or plain-text error body.</summary>
    public static string? ExtractMessage(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(body.ToArray());
            var root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                if (root.TryGetProperty("error", out var error))
                {
                    if (error.ValueKind == JsonValueKind.String)
                    {
                        return error.GetString();
                    }

                    if (error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out var nested) && nested.ValueKind == JsonValueKind.String)
                    {
                        return nested.GetString();
                    }
                }

                foreach (var name in new[] { "message", "detail" })
                {
                    if (root.TryGetProperty(name, out var value))
                    {
                        return value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText();
                    }
                }
            }
        }
        catch (JsonException)
        {
        }

        var text = System.Text.Encoding.UTF8.GetString(body.Length > 2000 ? body[..2000] : body).Trim();
        return text.StartsWith('<') ? null : text;
    }

    /// <summary>Keeps the upstream model name and key off the wire, and bounds the length.</summary>
    internal static string? Sanitize(string? message, UpstreamContext context)
    {
        if (string.IsNullOrWhiteSpace(message))
        {
            return null;
        }

        if (!string.IsNullOrEmpty(context.ApiKey))
        {
            message = message.Replace(context.ApiKey, "[redacted]", StringComparison.Ordinal);
        }

        if (!string.IsNullOrEmpty(context.UpstreamModel) && context.UpstreamModel != context.RequestedModel)
        {
            message = message.Replace(context.UpstreamModel, context.RequestedModel, StringComparison.OrdinalIgnoreCase);
        }

        return message.Length > 1000 ? message[..1000] : message;
    }

    private static string Prefix(string? message, string fallback) => string.IsNullOrWhiteSpace(message) ? fallback : message;

    /// <summary>Recognises context-length errors and rewrites them in Anthropic's wording, which Claude Code acts on.</summary>
    internal static string? ContextLength(string? message, UpstreamContext? context)
    {
        if (message is null || !ContextWords().IsMatch(message))
        {
            return null;
        }

        long? max = null;
        long? prompt = null;
        if (MaxPattern().Match(message) is { Success: true } m)
        {
            max = long.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture);
        }

        // A total (prompt + completion, as vLLM and SGLang report it) first: that is what did not fit.
        if ((TotalPattern().Match(message) is { Success: true } t ? t : PromptPattern().Match(message)) is { Success: true } p)
        {
            prompt = long.Parse(p.Groups["n"].Value, CultureInfo.InvariantCulture);
        }

        max ??= context?.ContextWindow;
        if (max is null)
        {
            // Neither the message nor the request names the window: nothing to say "N > M" with.
            return null;
        }

        prompt ??= Math.Max(context?.EstimatedInputTokens ?? 0, max.Value + 1);
        if (prompt <= max)
        {
            // The prompt fits but prompt + max_tokens does not: still "too long" for the client's purposes.
            prompt = max + 1;
        }

        return string.Create(CultureInfo.InvariantCulture, $"prompt is too long: {prompt} tokens > {max} maximum");
    }

    [GeneratedRegex(@"context length|context size|context window|maximum context|exceed_context_size|too many tokens|prompt is too long|input is too long|longer than the model", RegexOptions.IgnoreCase)]
    private static partial Regex ContextWords();

    [GeneratedRegex(@"(?:maximum context length (?:is|of)|context length \(|context size \(|context window (?:is|of)|maximum)\D{0,10}(?<n>\d{3,9})", RegexOptions.IgnoreCase)]
    private static partial Regex MaxPattern();

    [GeneratedRegex(@"(?:request has|request \(|input \(|resulted in|prompt has|prompt \(|prompt contains at least)\D{0,10}(?<n>\d{2,9})", RegexOptions.IgnoreCase)]
    private static partial Regex PromptPattern();

    [GeneratedRegex(@"(?:you requested|total of(?: at least)?)\s+(?<n>\d{2,9}) tokens", RegexOptions.IgnoreCase)]
    private static partial Regex TotalPattern();
}

/// <summary>What error mapping needs to know about the request.</summary>
internal sealed record UpstreamContext(string RequestedModel, string UpstreamModel, string? ApiKey, long ContextWindow, InputEstimate Estimate)
{
    public UpstreamContext(string requestedModel, string upstreamModel, string? apiKey, long contextWindow, long estimatedInputTokens)
        : this(requestedModel, upstreamModel, apiKey, contextWindow, InputEstimate.Of(estimatedInputTokens))
    {
    }

    public long EstimatedInputTokens => Estimate.Value;

    /// <summary><c>gen_ai.provider.name</c> of the upstream: its server family (<c>vllm</c>, <c>ollama</c>, …).</summary>
    public string Provider { get; init; } = "vllm";
}

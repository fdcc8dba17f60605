using System.Text.Json;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Upstream;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.Endpoints;

/// <summary>Writes <c>{"type":"error","error":{"type":…,"message":…},"request_id":…}</c> with its status and headers.</summary>
public static class ErrorWriter
{
    public static async Task WriteAsync(HttpContext http, GatewayError error)
    {
        var requestId = RequestContext.EnsureRequestId(http);
        if (http.Response.HasStarted)
        {
            return;
        }

        var response = http.Response;
        response.StatusCode = error.Status;
        response.ContentType = "application/json";
        if (error.RetryAfter is { } retryAfter)
        {
            response.Headers.RetryAfter = retryAfter;
        }

        if (error.ShouldRetry is { } shouldRetry)
        {
            response.Headers["x-should-retry"] = shouldRetry ? "true" : "false";
        }

        if (HttpMethods.IsHead(http.Request.Method))
        {
            return;
        }

        var body = JsonSerializer.SerializeToUtf8Bytes(new ErrorResponse(new ErrorDetail(error.Type, error.Message), requestId), AnthropicJsonContext.Default.ErrorResponse);
        response.ContentLength = body.Length;
        try
        {
            await response.Body.WriteAsync(body, http.RequestAborted);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The client left.
        }
    }

    public static Task WriteAsync(HttpContext http, int status, string type, string message) =>
        WriteAsync(http, new GatewayError(status, type, message));

    /// <summary>The Anthropic error type for an HTTP status.</summary>
    public static string TypeFor(int status) => status switch
    {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        >= 500 => "api_error",
        _ => "invalid_request_error",
    };
}

using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// <c>HEAD /</c> and <c>GET /</c> (Claude Code preconnects with HEAD), <c>HEAD /api/hello</c> (newer Claude Code's
/// warm-up; answered like <c>/</c>), the telemetry path Claude Code posts to,
/// and the answers for routes and methods the gateway does not serve.
/// </summary>
public sealed class RootEndpoint(TimeProvider time)
{
    /// <summary>Newer Claude Code versions warm the connection up with <c>HEAD /api/hello</c>.</summary>
    public const string HelloPath = "/api/hello";

    private static readonly byte[] Body = "{\"name\":\"melious-gateway\",\"status\":\"ok\",\"api\":\"anthropic-messages\"}"u8.ToArray();

    public async Task HandleAsync(HttpContext http)
    {
        RequestContext.Start(http, time);
        http.Response.StatusCode = 200;
        http.Response.ContentType = "application/json";
        http.Response.ContentLength = Body.Length;
        if (!HttpMethods.IsHead(http.Request.Method))
        {
            await http.Response.Body.WriteAsync(Body, http.RequestAborted);
        }
    }

    /// <summary><c>POST /api/event_logging/batch</c>: accepted and dropped, so clients do not retry it.</summary>
    public Task TelemetryAsync(HttpContext http)
    {
        RequestContext.Start(http, time);
        http.Response.StatusCode = StatusCodes.Status204NoContent;
        return Task.CompletedTask;
    }

    /// <summary>Anthropic-shaped 404 for any other path, with a pointed message for a doubled <c>/v1</c>.</summary>
    public Task NotFoundAsync(HttpContext http)
    {
        RequestContext.Start(http, time);
        var path = http.Request.Path.Value ?? "";
        var message = path.StartsWith("/v1/v1/", StringComparison.OrdinalIgnoreCase) || path.Equals("/v1/v1", StringComparison.OrdinalIgnoreCase)
            ? "not found: the base URL must not end in /v1. Set ANTHROPIC_BASE_URL to the gateway's root (https://host), not https://host/v1"
            : $"not found: {http.Request.Method} {path}";
        return ErrorWriter.WriteAsync(http, 404, "not_found_error", message);
    }

    /// <summary>Anthropic-shaped 405 for a known path with the wrong method.</summary>
    public Task MethodNotAllowedAsync(HttpContext http, string allowed)
    {
        RequestContext.Start(http, time);
        http.Response.Headers.Allow = allowed;
        return ErrorWriter.WriteAsync(http, 405, "invalid_request_error", $"method {http.Request.Method} is not allowed on {http.Request.Path}; use {allowed}");
    }
}

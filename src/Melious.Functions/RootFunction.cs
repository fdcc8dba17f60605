using Melious.Gateway.Endpoints;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Functions;

/// <summary>
/// <c>GET</c>/<c>HEAD /</c> (Claude Code preconnects with HEAD) and <c>POST /api/event_logging/batch</c>.
/// </summary>
/// <remarks>
/// The root cannot use <c>Route = ""</c>: the Functions host replaces an empty route with the function name
/// (it would serve <c>/Root</c>), while the worker maps <c>/</c>, so nothing would match. An optional parameter
/// constrained to zero length matches exactly <c>/</c> in both the host's and the worker's router.
/// <see cref="FallbackFunction"/> answers <c>/</c> as well, should a host version route it there.
/// </remarks>
public sealed class RootFunction(RootEndpoint endpoint)
{
    public const string RootRoute = "{root:maxlength(0)?}";

    [Function("Root")]
    public async Task<IActionResult> RunAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "head", Route = RootRoute)] HttpRequest request)
    {
        await endpoint.HandleAsync(request.HttpContext);
        return new EmptyResult();
    }

    [Function("TelemetryBatch")]
    public async Task<IActionResult> TelemetryAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "api/event_logging/batch")] HttpRequest request)
    {
        await endpoint.TelemetryAsync(request.HttpContext);
        return new EmptyResult();
    }
}

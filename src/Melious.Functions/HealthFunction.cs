using Melious.Gateway.Endpoints;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Functions;

/// <summary>
/// <c>GET|HEAD /healthz</c> (liveness) and <c>/healthz/ready</c> (readiness), unauthenticated, <c>ok</c>/<c>fail</c>
/// only (see <see cref="HealthEndpoint"/>). The function names sort before the catch-all <c>Fallback</c>.
/// </summary>
public sealed class HealthFunction(HealthEndpoint endpoint)
{
    [Function("CheckLive")]
    public async Task<IActionResult> LiveAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "head", Route = "healthz")] HttpRequest request)
    {
        await endpoint.LiveAsync(request.HttpContext);
        return new EmptyResult();
    }

    [Function("CheckReady")]
    public async Task<IActionResult> ReadyAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "head", Route = "healthz/ready")] HttpRequest request)
    {
        await endpoint.ReadyAsync(request.HttpContext);
        return new EmptyResult();
    }
}

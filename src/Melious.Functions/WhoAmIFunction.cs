using Melious.Gateway.Endpoints;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Functions;

/// <summary><c>GET /v1/me</c>: the presented key's account, key id, name and role.</summary>
public sealed class WhoAmIFunction(WhoAmIEndpoint endpoint)
{
    // Named to sort before the catch-all "Fallback".
    [Function("AccountWhoAmI")]
    public async Task<IActionResult> RunAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "v1/me")] HttpRequest request)
    {
        await endpoint.HandleAsync(request.HttpContext);
        return new EmptyResult();
    }
}

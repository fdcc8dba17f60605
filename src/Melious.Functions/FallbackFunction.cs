using Melious.Gateway.Endpoints;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Functions;

/// <summary>
/// Every request no other function took: an Anthropic-shaped 405 (with <c>Allow</c>) for a gateway path used
/// with the wrong method, otherwise an Anthropic-shaped 404 (which also explains a doubled <c>/v1</c>). The host
/// and the worker both rank a catch-all below every literal or constrained route, so this never shadows the other
/// functions; should a host version route a served request here anyway, it still reaches the right endpoint.
/// </summary>
public sealed class FallbackFunction(
    MessagesEndpoint messages,
    CountTokensEndpoint countTokens,
    ModelsEndpoint models,
    RootEndpoint root,
    WhoAmIEndpoint whoAmI)
{
    [Function("Fallback")]
    public async Task<IActionResult> RunAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "head", "post", "put", "patch", "delete", "options", Route = "{*path}")] HttpRequest request)
    {
        await GatewayRoutes.DispatchAsync(request.HttpContext, messages, countTokens, models, root, whoAmI);
        return new EmptyResult();
    }
}

using Melious.Gateway.Endpoints;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Functions;

/// <summary><c>GET /v1/models</c> and <c>GET /v1/models/{id}</c>.</summary>
public sealed class ModelsFunction(ModelsEndpoint endpoint)
{
    [Function("ModelsList")]
    public async Task<IActionResult> ListAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "v1/models")] HttpRequest request)
    {
        await endpoint.ListAsync(request.HttpContext);
        return new EmptyResult();
    }

    /// <param name="request">The request.</param>
    /// <param name="id">The <c>{id}</c> route value (bound by name from the trigger's binding data).</param>
    [Function("ModelsGet")]
    public async Task<IActionResult> GetAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "v1/models/{id}")] HttpRequest request,
        string id)
    {
        await endpoint.GetAsync(request.HttpContext, id);
        return new EmptyResult();
    }
}

using Melious.Gateway.Endpoints;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Functions;

/// <summary>
/// Every request no other function took: an Anthropic-shaped 405 (with <c>Allow</c>) for a gateway path used
/// with the wrong method, otherwise an Anthropic-shaped 404 (which also explains a doubled <c>/v1</c>).
/// </summary>
/// <remarks>
/// The Functions host does NOT rank literal routes above a catch-all: it registers HTTP routes in function-name order
/// (ordinal, case-insensitive) and the first matching route wins (azure-functions-host #9876). The catch-all is
/// therefore named <see cref="Name"/>, which sorts after any function name that starts with a letter other than
/// <c>Z</c> or with <c>Z</c> followed by a letter or digit (<c>_</c> sorts after <c>Z</c> in an upper-cased ordinal
/// comparison). A guard test over the built <c>functions.metadata</c> fails if any HTTP function ever sorts after it,
/// and another reads the real host's invocation log to check each route runs its own function. Should a request
/// still arrive here for a served path, it reaches the right endpoint anyway.
/// </remarks>
public sealed class FallbackFunction(
    MessagesEndpoint messages,
    CountTokensEndpoint countTokens,
    ModelsEndpoint models,
    RootEndpoint root,
    WhoAmIEndpoint whoAmI)
{
    /// <summary>The catch-all's function name: it must sort last among the HTTP functions (see remarks).</summary>
    public const string Name = "Z_Fallback";

    [Function(Name)]
    public async Task<IActionResult> RunAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "head", "post", "put", "patch", "delete", "options", Route = "{*path}")] HttpRequest request)
    {
        await GatewayRoutes.DispatchAsync(request.HttpContext, messages, countTokens, models, root, whoAmI);
        return new EmptyResult();
    }
}

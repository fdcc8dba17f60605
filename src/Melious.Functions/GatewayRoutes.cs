using Melious.Gateway.Endpoints;
using Microsoft.AspNetCore.Http;

namespace Melious.Functions;

/// <summary>
/// The gateway's HTTP surface as a table, with the answers the self-host gives (its
/// <c>MapMeliousGateway</c>): used by <see cref="FallbackFunction"/> to choose between 404, 405 and, defensively,
/// the endpoint itself.
/// </summary>
internal static class GatewayRoutes
{
    internal enum Route
    {
        None,
        Root,
        Hello,
        Messages,
        CountTokens,
        Models,
        Model,
        Telemetry,
        WhoAmI,
    }

    internal static (Route Route, string? ModelId) Match(PathString path)
    {
        var value = path.Value is { Length: > 1 } p ? p.TrimEnd('/') : "/";
        if (value.Length == 0 || value == "/")
        {
            return (Route.Root, null);
        }

        if (Is(value, "/v1/messages"))
        {
            return (Route.Messages, null);
        }

        if (Is(value, "/v1/messages/count_tokens"))
        {
            return (Route.CountTokens, null);
        }

        if (Is(value, "/v1/models"))
        {
            return (Route.Models, null);
        }

        if (Is(value, RootEndpoint.HelloPath))
        {
            return (Route.Hello, null);
        }

        if (Is(value, "/v1/me"))
        {
            return (Route.WhoAmI, null);
        }

        if (Is(value, "/api/event_logging/batch"))
        {
            return (Route.Telemetry, null);
        }

        const string modelPrefix = "/v1/models/";
        if (value.StartsWith(modelPrefix, StringComparison.OrdinalIgnoreCase) && value.IndexOf('/', modelPrefix.Length) < 0)
        {
            return (Route.Model, value[modelPrefix.Length..]);
        }

        return (Route.None, null);

        static bool Is(string value, string route) => value.Equals(route, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The <c>Allow</c> header for a route, as the self-host sends it with a 405.</summary>
    internal static string Allowed(Route route) => route switch
    {
        Route.Root or Route.Hello => "GET, HEAD",
        Route.Models or Route.Model or Route.WhoAmI => "GET",
        _ => "POST",
    };

    internal static bool Accepts(Route route, string method) => route switch
    {
        Route.Root or Route.Hello => HttpMethods.IsGet(method) || HttpMethods.IsHead(method),
        Route.Models or Route.Model or Route.WhoAmI => HttpMethods.IsGet(method),
        Route.Messages or Route.CountTokens or Route.Telemetry => HttpMethods.IsPost(method),
        _ => false,
    };

    internal static Task DispatchAsync(HttpContext http, MessagesEndpoint messages, CountTokensEndpoint countTokens, ModelsEndpoint models, RootEndpoint root, WhoAmIEndpoint whoAmI)
    {
        var (route, modelId) = Match(http.Request.Path);
        if (route == Route.None || (route == Route.Telemetry && !Accepts(route, http.Request.Method)))
        {
            // The self-host maps no 405 for the telemetry path either.
            return root.NotFoundAsync(http);
        }

        if (!Accepts(route, http.Request.Method))
        {
            return root.MethodNotAllowedAsync(http, Allowed(route));
        }

        return route switch
        {
            Route.Root or Route.Hello => root.HandleAsync(http),
            Route.Messages => messages.HandleAsync(http),
            Route.CountTokens => countTokens.HandleAsync(http),
            Route.Models => models.ListAsync(http),
            Route.Model => models.GetAsync(http, modelId!),
            Route.WhoAmI => whoAmI.HandleAsync(http),
            _ => root.TelemetryAsync(http),
        };
    }
}

using Melious.Gateway.Endpoints;
using Melious.Gateway.Reporting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps the gateway's HTTP surface onto ASP.NET Core routing (the self-host; Functions map one function per route).</summary>
public static class GatewayEndpointRouteBuilderExtensions
{
    private static readonly string[] OtherThanPost = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"];
    private static readonly string[] OtherThanGet = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

    public static IEndpointRouteBuilder MapMeliousGateway(this IEndpointRouteBuilder app)
    {
        app.MapMethods("/", ["GET", "HEAD"], http => Get<RootEndpoint>(http).HandleAsync(http));
        app.MapMethods(RootEndpoint.HelloPath, ["GET", "HEAD"], http => Get<RootEndpoint>(http).HandleAsync(http));
        app.MapPost("/v1/messages", http => Get<MessagesEndpoint>(http).HandleAsync(http));
        app.MapPost("/v1/messages/count_tokens", http => Get<CountTokensEndpoint>(http).HandleAsync(http));
        app.MapGet("/v1/models", http => Get<ModelsEndpoint>(http).ListAsync(http));
        app.MapGet("/v1/models/{id}", http => Get<ModelsEndpoint>(http).GetAsync(http, RouteId(http)));
        app.MapGet("/v1/me", http => Get<WhoAmIEndpoint>(http).HandleAsync(http));
        app.MapMethods("/healthz", ["GET", "HEAD"], http => Get<HealthEndpoint>(http).LiveAsync(http));
        app.MapMethods("/healthz/ready", ["GET", "HEAD"], http => Get<HealthEndpoint>(http).ReadyAsync(http));
        app.MapPost("/api/event_logging/batch", http => Get<RootEndpoint>(http).TelemetryAsync(http));
        app.MapGet("/v1/organizations/usage_report/messages", http => Get<UsageApiEndpoint>(http).UsageReportAsync(http));
        app.MapGet("/v1/organizations/cost_report", http => Get<UsageApiEndpoint>(http).CostReportAsync(http));
        app.MapGet("/v1/usage/sessions", http => Get<UsageApiEndpoint>(http).SessionsAsync(http));
        app.MapMethods("/dashboard", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], http => Get<Melious.Gateway.Dashboard.DashboardEndpoint>(http).DispatchAsync(http));
        app.MapMethods("/dashboard/{**rest}", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], http => Get<Melious.Gateway.Dashboard.DashboardEndpoint>(http).DispatchAsync(http));
        app.MapGet("/v1/usage/sessions/{id}", http => Get<UsageApiEndpoint>(http).SessionAsync(http, RouteId(http)));

        app.MapMethods("/v1/messages", OtherThanPost, http => Get<RootEndpoint>(http).MethodNotAllowedAsync(http, "POST"));
        app.MapMethods("/v1/messages/count_tokens", OtherThanPost, http => Get<RootEndpoint>(http).MethodNotAllowedAsync(http, "POST"));
        app.MapMethods("/v1/models", OtherThanGet, http => Get<RootEndpoint>(http).MethodNotAllowedAsync(http, "GET"));
        app.MapMethods("/v1/models/{id}", OtherThanGet, http => Get<RootEndpoint>(http).MethodNotAllowedAsync(http, "GET"));
        app.MapMethods("/v1/me", OtherThanGet, http => Get<RootEndpoint>(http).MethodNotAllowedAsync(http, "GET"));
        app.MapMethods("/", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"], http => Get<RootEndpoint>(http).MethodNotAllowedAsync(http, "GET, HEAD"));
        app.MapMethods(RootEndpoint.HelloPath, ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"], http => Get<RootEndpoint>(http).MethodNotAllowedAsync(http, "GET, HEAD"));

        app.MapFallback(http => Get<RootEndpoint>(http).NotFoundAsync(http));
        return app;
    }

    // Plain RequestDelegates: no RequestDelegateFactory, so nothing is compiled from expression trees at start-up (that
    // compiler and the code it emits cost the JIT self-host memory and start time; docs/benchmarks-paced.md).
    private static T Get<T>(HttpContext http)
        where T : notnull => http.RequestServices.GetRequiredService<T>();

    private static string RouteId(HttpContext http) => http.Request.RouteValues["id"] as string ?? string.Empty;
}

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
        app.MapMethods("/", ["GET", "HEAD"], (HttpContext http, RootEndpoint root) => root.HandleAsync(http));
        app.MapMethods(RootEndpoint.HelloPath, ["GET", "HEAD"], (HttpContext http, RootEndpoint root) => root.HandleAsync(http));
        app.MapPost("/v1/messages", (HttpContext http, MessagesEndpoint endpoint) => endpoint.HandleAsync(http));
        app.MapPost("/v1/messages/count_tokens", (HttpContext http, CountTokensEndpoint endpoint) => endpoint.HandleAsync(http));
        app.MapGet("/v1/models", (HttpContext http, ModelsEndpoint endpoint) => endpoint.ListAsync(http));
        app.MapGet("/v1/models/{id}", (HttpContext http, string id, ModelsEndpoint endpoint) => endpoint.GetAsync(http, id));
        app.MapGet("/v1/me", (HttpContext http, WhoAmIEndpoint endpoint) => endpoint.HandleAsync(http));
        app.MapMethods("/healthz", ["GET", "HEAD"], (HttpContext http, HealthEndpoint health) => health.LiveAsync(http));
        app.MapMethods("/healthz/ready", ["GET", "HEAD"], (HttpContext http, HealthEndpoint health) => health.ReadyAsync(http));
        app.MapPost("/api/event_logging/batch", (HttpContext http, RootEndpoint root) => root.TelemetryAsync(http));
        app.MapGet("/v1/organizations/usage_report/messages", (HttpContext http, UsageApiEndpoint usage) => usage.UsageReportAsync(http));
        app.MapGet("/v1/organizations/cost_report", (HttpContext http, UsageApiEndpoint usage) => usage.CostReportAsync(http));
        app.MapGet("/v1/usage/sessions", (HttpContext http, UsageApiEndpoint usage) => usage.SessionsAsync(http));
        app.MapMethods("/dashboard", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], (HttpContext http, Melious.Gateway.Dashboard.DashboardEndpoint dashboard) => dashboard.DispatchAsync(http));
        app.MapMethods("/dashboard/{**rest}", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], (HttpContext http, Melious.Gateway.Dashboard.DashboardEndpoint dashboard) => dashboard.DispatchAsync(http));
        app.MapGet("/v1/usage/sessions/{id}", (HttpContext http, string id, UsageApiEndpoint usage) => usage.SessionAsync(http, id));

        app.MapMethods("/v1/messages", OtherThanPost, (HttpContext http, RootEndpoint root) => root.MethodNotAllowedAsync(http, "POST"));
        app.MapMethods("/v1/messages/count_tokens", OtherThanPost, (HttpContext http, RootEndpoint root) => root.MethodNotAllowedAsync(http, "POST"));
        app.MapMethods("/v1/models", OtherThanGet, (HttpContext http, RootEndpoint root) => root.MethodNotAllowedAsync(http, "GET"));
        app.MapMethods("/v1/models/{id}", OtherThanGet, (HttpContext http, RootEndpoint root) => root.MethodNotAllowedAsync(http, "GET"));
        app.MapMethods("/v1/me", OtherThanGet, (HttpContext http, RootEndpoint root) => root.MethodNotAllowedAsync(http, "GET"));
        app.MapMethods("/", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"], (HttpContext http, RootEndpoint root) => root.MethodNotAllowedAsync(http, "GET, HEAD"));
        app.MapMethods(RootEndpoint.HelloPath, ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"], (HttpContext http, RootEndpoint root) => root.MethodNotAllowedAsync(http, "GET, HEAD"));

        app.MapFallback((HttpContext http, RootEndpoint root) => root.NotFoundAsync(http));
        return app;
    }
}

using Melious.Gateway.Dashboard;
using Melious.Gateway.Reporting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Functions;

/// <summary>
/// The usage dashboard (<c>/dashboard</c> and everything under it) and the usage API, delegating to the core.
/// The function names sort before <c>Fallback</c> (the host may try routes in function-name order, and the
/// catch-all would otherwise take these paths).
/// </summary>
public sealed class DashboardFunction(DashboardEndpoint dashboard, UsageApiEndpoint usage)
{
    [Function("Dashboard")]
    public async Task<IActionResult> PageAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "head", "post", "put", "patch", "delete", "options", Route = "dashboard")] HttpRequest request)
    {
        await dashboard.DispatchAsync(request.HttpContext);
        return new EmptyResult();
    }

    [Function("DashboardPages")]
    public async Task<IActionResult> PagesAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "head", "post", "put", "patch", "delete", "options", Route = "dashboard/{*rest}")] HttpRequest request)
    {
        await dashboard.DispatchAsync(request.HttpContext);
        return new EmptyResult();
    }

    [Function("ApiUsageReport")]
    public async Task<IActionResult> UsageReportAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "v1/organizations/usage_report/messages")] HttpRequest request)
    {
        await usage.UsageReportAsync(request.HttpContext);
        return new EmptyResult();
    }

    [Function("ApiCostReport")]
    public async Task<IActionResult> CostReportAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "v1/organizations/cost_report")] HttpRequest request)
    {
        await usage.CostReportAsync(request.HttpContext);
        return new EmptyResult();
    }

    [Function("ApiUsageSessions")]
    public async Task<IActionResult> SessionsAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "v1/usage/sessions")] HttpRequest request)
    {
        await usage.SessionsAsync(request.HttpContext);
        return new EmptyResult();
    }

    /// <param name="request">The request.</param>
    /// <param name="id">The session id.</param>
    [Function("ApiUsageSession")]
    public async Task<IActionResult> SessionAsync(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", Route = "v1/usage/sessions/{id}")] HttpRequest request,
        string id)
    {
        await usage.SessionAsync(request.HttpContext, id);
        return new EmptyResult();
    }
}

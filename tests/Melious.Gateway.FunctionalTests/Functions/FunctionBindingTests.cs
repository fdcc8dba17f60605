using System.Reflection;
using System.Text.Json;
using Melious.Functions;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// The trigger attributes are the contract with the Functions host, which the tests cannot run here: check routes,
/// methods, authorization and the queue binding against what the gateway and the repository files expect.
/// </summary>
public sealed class FunctionBindingTests
{
    private static readonly Type[] FunctionTypes = typeof(MessagesFunction).Assembly.GetTypes()
        .Where(t => t.GetMethods().Any(m => m.GetCustomAttribute<FunctionAttribute>() is not null))
        .ToArray();

    public static TheoryData<string, string, string[]> HttpFunctions() => new()
    {
        { "Messages", "v1/messages", ["post"] },
        { "CountTokens", "v1/messages/count_tokens", ["post"] },
        { "ModelsList", "v1/models", ["get"] },
        { "ModelsGet", "v1/models/{id}", ["get"] },
        { "Root", RootFunction.RootRoute, ["get", "head"] },
        { "TelemetryBatch", "api/event_logging/batch", ["post"] },
        { FallbackFunction.Name, "{*path}", ["get", "head", "post", "put", "patch", "delete", "options"] },
        { "Dashboard", "dashboard", ["get", "head", "post", "put", "patch", "delete", "options"] },
        { "DashboardPages", "dashboard/{*rest}", ["get", "head", "post", "put", "patch", "delete", "options"] },
        { "ApiUsageReport", "v1/organizations/usage_report/messages", ["get"] },
        { "ApiCostReport", "v1/organizations/cost_report", ["get"] },
        { "ApiUsageSessions", "v1/usage/sessions", ["get"] },
        { "ApiUsageSession", "v1/usage/sessions/{id}", ["get"] },
        { "AccountWhoAmI", "v1/me", ["get"] },
        { "CheckLive", "healthz", ["get", "head"] },
        { "CheckReady", "healthz/ready", ["get", "head"] },
    };

    [Theory]
    [MemberData(nameof(HttpFunctions))]
    public void HttpFunction_IsAnonymousWithExpectedRouteAndMethods(string name, string route, string[] methods)
    {
        var trigger = Trigger<HttpTriggerAttribute>(name);

        Assert.Equal(AuthorizationLevel.Anonymous, trigger.AuthLevel);
        Assert.Equal(route, trigger.Route);
        Assert.Equal(methods, trigger.Methods);
    }

    [Fact]
    public void HttpRoutes_AreNeverEmpty_BecauseTheHostReplacesAnEmptyRouteWithTheFunctionName()
    {
        var routes = FunctionTypes.SelectMany(t => t.GetMethods())
            .SelectMany(m => m.GetParameters())
            .Select(p => p.GetCustomAttribute<HttpTriggerAttribute>())
            .OfType<HttpTriggerAttribute>()
            .ToList();

        Assert.Equal(HttpFunctions().Count, routes.Count);
        Assert.All(routes, r => Assert.False(string.IsNullOrEmpty(r.Route)));
    }

    [Fact]
    public void UsageQueue_ListensToTheQueueTheGatewayPublishesTo_ByLiteralName()
    {
        var trigger = Trigger<QueueTriggerAttribute>("UsageQueue");

        // A literal: the scale controller cannot resolve %Section:Key% against Section__Key app settings.
        Assert.Equal("usage-events", trigger.QueueName);
        Assert.DoesNotContain("%", trigger.QueueName);
        Assert.Null(trigger.Connection); // AzureWebJobsStorage
        Assert.Equal(trigger.QueueName, new UsageOptions().QueueName);
        Assert.Equal(trigger.QueueName + "-poison", new UsageOptions().PoisonQueueName);

        using var settings = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "local.settings.sample.json")));
        Assert.Equal(trigger.QueueName, settings.RootElement.GetProperty("Values").GetProperty("Melious__Usage__QueueName").GetString());
    }

    [Fact]
    public void HostJson_RemovesTheRoutePrefixAndMatchesThePublisherEncoding()
    {
        using var host = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "host.json")));
        var extensions = host.RootElement.GetProperty("extensions");

        Assert.Equal("", extensions.GetProperty("http").GetProperty("routePrefix").GetString());
        Assert.Equal("base64", extensions.GetProperty("queues").GetProperty("messageEncoding").GetString());
        Assert.Equal(5, extensions.GetProperty("queues").GetProperty("maxDequeueCount").GetInt32());
    }

    private static T Trigger<T>(string functionName)
        where T : Attribute
    {
        var method = FunctionTypes.SelectMany(t => t.GetMethods())
            .Single(m => m.GetCustomAttribute<FunctionAttribute>()?.Name == functionName);
        return method.GetParameters().Select(p => p.GetCustomAttribute<T>()).OfType<T>().Single();
    }
}

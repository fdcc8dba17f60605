using System.Reflection;
using Melious.Functions;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Usage;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>The worker's service graph: every function class can be created the way the worker creates it.</summary>
public sealed class DependencyInjectionTests
{
    private static readonly Assembly Functions = typeof(MessagesFunction).Assembly;

    public static TheoryData<string> FunctionClasses()
    {
        var data = new TheoryData<string>();
        foreach (var name in FunctionClassNames())
        {
            data.Add(name);
        }

        return data;
    }

    [Fact]
    public void EveryFunctionClass_IsFound()
    {
        string[] expected =
        [
            "Melious.Functions.CountTokensFunction", "Melious.Functions.DashboardFunction", "Melious.Functions.FallbackFunction", "Melious.Functions.HealthFunction", "Melious.Functions.MessagesFunction",
            "Melious.Functions.ModelsFunction", "Melious.Functions.RootFunction", "Melious.Functions.UsageQueueFunction",
            "Melious.Functions.WhoAmIFunction",
        ];

        Assert.Equal(expected, FunctionClassNames());
    }

    [Theory]
    [MemberData(nameof(FunctionClasses))]
    public void FunctionClass_IsActivatedFromTheServiceGraph(string functionClass)
    {
        using var host = FunctionsTestHost.Build(FunctionsTestHost.OfflineSettings());
        using var scope = host.Services.CreateScope();

        // The worker activates function classes with ActivatorUtilities from the invocation's services.
        Assert.NotNull(ActivatorUtilities.CreateInstance(scope.ServiceProvider, Functions.GetType(functionClass, throwOnError: true)!));
    }

    [Fact]
    public void GatewayServices_Resolve()
    {
        using var host = FunctionsTestHost.Build(FunctionsTestHost.OfflineSettings());
        var services = host.Services;

        Assert.NotNull(services.GetRequiredService<MessagesEndpoint>());
        Assert.NotNull(services.GetRequiredService<CountTokensEndpoint>());
        Assert.NotNull(services.GetRequiredService<ModelsEndpoint>());
        Assert.NotNull(services.GetRequiredService<RootEndpoint>());
        Assert.NotNull(services.GetRequiredService<UsageWriter>());
        Assert.NotNull(services.GetRequiredService<UsageMessageProcessor>());
        Assert.NotNull(services.GetRequiredService<IOptions<Melious.Gateway.GatewayOptions>>().Value);
    }

    [Fact]
    public async Task UsageQueueName_OtherThanTheTriggers_FailsTheWorkerStart()
    {
        var settings = FunctionsTestHost.OfflineSettings();
        settings["Melious:Usage:QueueName"] = "another-queue";
        using var host = FunctionsTestHost.Build(settings);

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync(TestContext.Current.CancellationToken));

        Assert.Contains("usage-events", error.Message);
    }

    [Fact]
    public void WorkerKestrel_AcceptsTheGatewaysLargestBody()
    {
        using var host = FunctionsTestHost.Build(FunctionsTestHost.OfflineSettings());
        var services = host.Services;
        var gateway = services.GetRequiredService<IOptions<Melious.Gateway.GatewayOptions>>().Value;
        var kestrel = services.GetRequiredService<IOptions<KestrelServerOptions>>().Value;

        Assert.True(kestrel.Limits.MaxRequestBodySize is null || kestrel.Limits.MaxRequestBodySize > gateway.Limits.MaxBodyBytes);
        Assert.True(gateway.Limits.MaxBodyBytes >= 32L * 1024 * 1024);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ApplicationInsightsWarningFilter_IsRemovedByTheFunctionsHost(bool addFunctionsHost)
    {
        const string provider = "Microsoft.Extensions.Logging.ApplicationInsights.ApplicationInsightsLoggerProvider";
        var collection = new ServiceCollection();
        collection.AddLogging();
        collection.AddApplicationInsightsTelemetryWorkerService();
        if (addFunctionsHost)
        {
            collection.AddMeliousFunctionsHost();
        }

        using var services = collection.BuildServiceProvider();
        var rules = services.GetRequiredService<IOptions<LoggerFilterOptions>>().Value.Rules;

        // Without the Functions host registration the SDK's Warning-only rule is there (the premise); with it, gone.
        Assert.Equal(!addFunctionsHost, rules.Any(r => r.ProviderName == provider));
    }

    private static string[] FunctionClassNames() =>
        Functions.GetTypes()
            .Where(t => t.GetMethods().Any(m => m.GetCustomAttribute<FunctionAttribute>() is not null))
            .Select(t => t.FullName!)
            .Order(StringComparer.Ordinal)
            .ToArray();
}

using Melious.Functions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// The worker's service graph without the Functions runtime: a generic host with the same two registrations
/// Program.cs makes (<c>AddMeliousGateway</c>, <c>AddMeliousFunctionsHost</c>), validated on build, so the gateway's
/// hosted services (storage initialisation, catalog load, usage publisher) run as they do in the worker.
/// </summary>
internal static class FunctionsTestHost
{
    /// <summary>Settings that need no storage and no upstream, for hosts that are built but not started.</summary>
    public static Dictionary<string, string?> OfflineSettings() => new()
    {
        ["Melious:Storage:ConnectionString"] = "UseDevelopmentStorage=true",
        ["Melious:Upstream:BaseUrl"] = "http://127.0.0.1:9/v1",
        ["Melious:Models:Main"] = "main-model",
        ["Melious:Usage:RunConsumer"] = "false",
    };

    public static IHost Build(IDictionary<string, string?> settings, ILoggerProvider? logs = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.ConfigureContainer(new DefaultServiceProviderFactory(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true }));
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Services.AddLogging();
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
        }

        builder.Services.AddMeliousGateway(builder.Configuration);
        builder.Services.AddMeliousFunctionsHost();
        return builder.Build();
    }

    public static async Task<IHost> StartAsync(IDictionary<string, string?> settings, ILoggerProvider? logs = null)
    {
        var host = Build(settings, logs);
        await host.StartAsync();
        return host;
    }
}

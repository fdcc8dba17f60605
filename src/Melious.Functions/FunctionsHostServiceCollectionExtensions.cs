using Melious.Gateway;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Functions;

/// <summary>The few settings the Functions worker needs on top of <c>AddMeliousGateway</c>.</summary>
public static class FunctionsHostServiceCollectionExtensions
{
    private const string ApplicationInsightsLoggerProvider =
        "Microsoft.Extensions.Logging.ApplicationInsights.ApplicationInsightsLoggerProvider";

    public static IServiceCollection AddMeliousFunctionsHost(this IServiceCollection services)
    {
        // The queue trigger's name is a literal (UsageQueue.Name); the publisher's must match it, or usage would pile up unread.
        services.AddOptions<GatewayOptions>()
            .Validate(
                o => string.Equals(o.Usage.QueueName, UsageQueue.Name, StringComparison.Ordinal),
                $"Melious:Usage:QueueName must be '{UsageQueue.Name}' in the Functions app: the usage queue trigger listens to that queue only")
            .ValidateOnStart();

        // The worker's own Kestrel (the host forwards each request to it) defaults to a 30,000,000-byte body
        // limit, below the gateway's 32 MiB. The core lifts the limit per request before reading
        // (IHttpMaxRequestBodySizeFeature), and enforces its own with an Anthropic-shaped 413; this makes the
        // server-wide default agree, so no path can fail with a bare Kestrel 413 or a proxy RequestBodyDestination error.
        services.AddOptions<KestrelServerOptions>()
            .Configure<IOptions<GatewayOptions>>((kestrel, gateway) =>
            {
                var needed = gateway.Value.Limits.MaxBodyBytes + 1;
                if (kestrel.Limits.MaxRequestBodySize is { } limit && limit < needed)
                {
                    kestrel.Limits.MaxRequestBodySize = needed;
                }
            });

        // The Application Insights SDK adds a Warning-only filter for its logger; drop it so the "Logging"
        // configuration (appsettings.json, app settings) decides what reaches Application Insights.
        services.Configure<LoggerFilterOptions>(options =>
        {
            var rule = options.Rules.FirstOrDefault(r => r.ProviderName == ApplicationInsightsLoggerProvider);
            if (rule is not null)
            {
                options.Rules.Remove(rule);
            }
        });

        services.AddSingleton(sp => UsageQueueRetryPolicy.From(sp.GetRequiredService<IConfiguration>()));
        services.AddSingleton<UsageMessageProcessor>();
        return services;
    }
}

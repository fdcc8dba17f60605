using Melious.Gateway.Auth;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Routing;
using Melious.Gateway.Storage;
using Melious.Gateway.Upstream;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>The gateway's single composition root, shared by the Functions app and the self-host.</summary>
public static class GatewayServiceCollectionExtensions
{
    /// <summary>
    /// Registers every gateway service, bound to the <c>Melious</c> configuration section. Hosted services start in
    /// this order: storage initialisation, the model catalog's first load, the usage publisher.
    /// </summary>
    public static IServiceCollection AddMeliousGateway(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<Melious.Gateway.GatewayOptions>()
            .Bind(configuration.GetSection(Melious.Gateway.GatewayOptions.SectionName))
            .Validate(o => o.Upstream.BaseUrl is null || Uri.TryCreate(o.Upstream.BaseUrl, UriKind.Absolute, out _),
                "Melious:Upstream:BaseUrl must be an absolute URL, e.g. http://127.0.0.1:11434/v1")
            .Validate(o => o.Limits.MaxBodyBytes > 0 && o.Limits.MaxMessages > 0 && o.Limits.MaxJsonDepth > 0,
                "Melious:Limits values must be positive")
            .Validate(o => o.Streaming.PingInterval > TimeSpan.Zero && o.Streaming.IdleTimeout > TimeSpan.Zero,
                "Melious:Streaming:PingInterval and IdleTimeout must be positive")
            .Validate(o => o.RateLimits.Window > TimeSpan.Zero && o.RateLimits.HeartbeatInterval > TimeSpan.Zero && o.RateLimits.ConcurrencyLeaseTtl > o.RateLimits.HeartbeatInterval,
                "Melious:RateLimits: Window and HeartbeatInterval must be positive and ConcurrencyLeaseTtl longer than HeartbeatInterval")
            .Validate(o => o.Auth.CacheTtl <= TimeSpan.FromSeconds(60),
                "Melious:Auth:CacheTtl must be at most 60 seconds so revocations apply within a minute")
            .ValidateOnStart();

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<StorageClients>();

        services.TryAddSingleton<ApiKeyStore>();
        services.TryAddSingleton<ApiKeyAuthenticator>();
        services.TryAddSingleton<Melious.Gateway.Limits.QuotaStore>();
        services.TryAddSingleton<Melious.Gateway.Limits.KeyRateLimiter>();
        services.TryAddSingleton<BudgetGuard>();

        services.TryAddSingleton<ModelCatalogStore>();
        services.TryAddSingleton<ModelCatalog>();
        services.TryAddSingleton<ModelRouter>();

        services.TryAddSingleton<UsageCalculator>();
        services.TryAddSingleton<UsageWriter>();
        services.TryAddSingleton<UsageReader>();
        services.TryAddSingleton<QueueUsagePublisher>();
        services.TryAddSingleton<IUsageSink>(sp => sp.GetRequiredService<QueueUsagePublisher>());

        services.TryAddSingleton<RequestParser>();
        services.AddMetrics();
        services.TryAddSingleton<Melious.Gateway.Telemetry.GatewayMetrics>();
        services.TryAddSingleton<UpstreamPool>();
        services.TryAddSingleton<UpstreamClient>();
        services.TryAddSingleton<Melious.Gateway.Search.WebSearchService>();
        services.TryAddSingleton<OpenAIForwarder>();
        services.TryAddSingleton<AnthropicForwarder>();
        services.TryAddSingleton<MessagesEndpoint>();
        services.TryAddSingleton<CountTokensEndpoint>();
        services.TryAddSingleton<ModelsEndpoint>();
        services.TryAddSingleton<WhoAmIEndpoint>();
        services.TryAddSingleton<RootEndpoint>();
        services.TryAddSingleton<HealthEndpoint>();

        services.TryAddSingleton<Melious.Gateway.Reporting.UsageQueryService>();
        services.TryAddSingleton<Melious.Gateway.Reporting.UsageApiEndpoint>();
        services.TryAddSingleton<Melious.Gateway.Dashboard.DashboardSessions>();
        services.TryAddSingleton<Melious.Gateway.Dashboard.DashboardEndpoint>();

        services.AddHostedService<Melious.Gateway.Hosting.StorageInitializer>();
        services.AddHostedService<Melious.Gateway.Hosting.KeyVaultReferences.Check>();
        services.AddHostedService(sp => sp.GetRequiredService<ModelCatalog>());
        services.AddHostedService(sp => sp.GetRequiredService<QueueUsagePublisher>());
        services.AddHostedService(sp => sp.GetRequiredService<Melious.Gateway.Limits.KeyRateLimiter>());
        services.AddHostedService<EndpointProber>();
        services.AddHostedService<Melious.Gateway.Hosting.NativeHeapTrimmer>();
        return services;
    }

    /// <summary>
    /// Adds the queue consumer that writes usage rows (the self-host's equivalent of the Functions queue trigger).
    /// It does nothing when <c>Melious:Usage:RunConsumer</c> is false.
    /// </summary>
    public static IServiceCollection AddMeliousUsageConsumer(this IServiceCollection services)
    {
        services.TryAddSingleton<UsageQueueConsumer>();
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<IOptions<Melious.Gateway.GatewayOptions>>().Value.Usage.RunConsumer
            ? sp.GetRequiredService<UsageQueueConsumer>()
            : new NoopHostedService());
        return services;
    }

    private sealed class NoopHostedService : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

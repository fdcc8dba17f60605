using System.Runtime.CompilerServices;
using Melious.Gateway;
using Melious.Gateway.Telemetry;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Melious.SelfHost;

/// <summary>
/// Builds the self-hosted gateway: Kestrel, the core services, the usage queue consumer and the gateway routes.
/// Program.cs runs it; tests and benchmarks build the very same app with extra configuration.
/// </summary>
public static class SelfHostApp
{
    public static WebApplication Create(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        builder.Services.AddMeliousGateway(builder.Configuration);
        builder.Services.AddMeliousUsageConsumer();

        // Undeliverable usage events are spooled next to the app unless configured elsewhere.
        var contentRoot = builder.Environment.ContentRootPath;
        builder.Services.PostConfigure<GatewayOptions>(options =>
            options.Usage.SpoolDirectory ??= Path.Combine(contentRoot, ".data", "usage-spool"));

        // OpenTelemetry: the gateway's GenAI metrics and spans go out over OTLP only when an endpoint is configured
        // (OTEL_EXPORTER_OTLP_ENDPOINT, plus the standard OTEL_* variables for protocol, headers and service name).
        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            AddOtlpExport(builder.Services);
        }

        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapMeliousGateway();
        return app;
    }

    /// <summary>
    /// A method of its own, never inlined: the OpenTelemetry assemblies (five of them) are loaded only when it runs,
    /// not whenever <see cref="Create"/> is compiled.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AddOtlpExport(IServiceCollection services) =>
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("melious-gateway"))
            .WithMetrics(metrics => metrics.AddMeter(GatewayMetrics.MeterName))
            .WithTracing(tracing => tracing.AddSource(GatewayMetrics.ActivitySourceName))
            .UseOtlpExporter();
}

using Melious.Gateway;

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

        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapMeliousGateway();
        return app;
    }
}

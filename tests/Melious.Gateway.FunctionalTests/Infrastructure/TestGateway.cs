using System.Net;
using System.Net.Http.Headers;
using Melious.Gateway.Auth;
using Melious.Gateway.Routing;
using Melious.Gateway.Usage;
using Melious.SelfHost;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>
/// The gateway under test. <see cref="StartAsync"/>: the self-host (<see cref="SelfHostApp"/>, exactly what Program.cs
/// runs) on a real Kestrel loopback port, with its storage isolated by a table prefix and queue names of its own, and
/// every log line captured. <see cref="OnFunctionsHost"/>: the Functions app under the real Functions host, shared by
/// the run (<see cref="FunctionsHostFixture"/>); its <see cref="Services"/> are storage-side only and its
/// <see cref="Logs"/> are the host's and worker's output lines printed while this gateway was in use.
/// </summary>
public sealed class TestGateway : IAsyncDisposable
{
    private readonly WebApplication? _app;
    private readonly FunctionsHostFixture? _functions;

    private TestGateway(WebApplication? app, string prefix, CapturingLoggerProvider logs, string spool, FunctionsHostFixture? functions = null)
    {
        _app = app;
        _functions = functions;
        Prefix = prefix;
        Logs = logs;
        SpoolDirectory = spool;
    }

    public HostKind Kind => _functions is null ? HostKind.SelfHost : HostKind.FunctionsHost;

    public string Prefix { get; }

    public CapturingLoggerProvider Logs { get; }

    public string SpoolDirectory { get; }

    public string BaseUrl { get; private set; } = "";

    public IServiceProvider Services => _app?.Services ?? _functions!.Services;

    public string QueueName => _functions is null ? Prefix + "-usage" : Melious.Functions.UsageQueue.Name;

    public QueueUsagePublisher Publisher => Services.GetRequiredService<QueueUsagePublisher>();

    public static async Task<TestGateway> StartAsync(string storageConnectionString, string upstreamBaseUrl, IDictionary<string, string?>? settings = null, string? prefix = null, Action<WebApplicationBuilder>? configure = null, string[]? args = null)
    {
        prefix ??= AzuriteFixture.NewPrefix();
        var logs = new CapturingLoggerProvider();
        var spool = Path.Combine(Path.GetTempPath(), "melious-spool-" + prefix);
        var config = new Dictionary<string, string?>
        {
            ["Melious:Storage:ConnectionString"] = storageConnectionString,
            ["Melious:Storage:TablePrefix"] = prefix,
            ["Melious:Usage:QueueName"] = prefix + "-usage",
            ["Melious:Usage:PoisonQueueName"] = prefix + "-usage-poison",
            ["Melious:Usage:SpoolDirectory"] = spool,
            ["Melious:Usage:ConsumerPollInterval"] = "00:00:00.100",
            ["Melious:Upstream:BaseUrl"] = upstreamBaseUrl,
            ["Melious:Models:Main"] = "main-model",
            ["Melious:Models:Secondary"] = "secondary-model",
            ["Melious:Models:Lightweight"] = "light-model",
            ["Melious:Streaming:MaxRetryDelay"] = "00:00:01",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            config[key] = value;
        }

        // args: what Program.cs gets from the command line, read before configure runs (the OTLP switch is).
        var app = SelfHostApp.Create(args ?? [], builder =>
        {
            builder.Configuration.AddInMemoryCollection(config);
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
            builder.Logging.ClearProviders();
            builder.Logging.SetMinimumLevel(LogLevel.Trace);
            builder.Logging.AddProvider(logs);
            configure?.Invoke(builder);
        });
        await app.StartAsync();
        var gateway = new TestGateway(app, prefix, logs, spool);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        gateway.BaseUrl = $"http://127.0.0.1:{new Uri(address).Port}";
        return gateway;
    }

    /// <summary>The shared Functions host as a gateway (see the class summary); disposing it leaves the host running.</summary>
    public static TestGateway OnFunctionsHost(FunctionsHostFixture functions)
    {
        functions.EnsureRunning();
        var logs = new CapturingLoggerProvider();
        functions.Tap = logs;
        return new TestGateway(null, functions.Prefix, logs, "", functions) { BaseUrl = functions.BaseUrl };
    }

    public async Task<string> CreateKeyAsync(string account = "acme", string name = "test", KeyLimits? limits = null)
    {
        var (key, _) = await Services.GetRequiredService<ApiKeyStore>().CreateAsync(account, name, limits, CancellationToken.None);
        return key;
    }

    public HttpClient Client(string? key, bool bearer = false)
    {
        var client = new HttpClient { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromMinutes(2) };
        if (key is not null)
        {
            if (bearer)
            {
                client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            }
            else
            {
                client.DefaultRequestHeaders.Add("x-api-key", key);
            }
        }

        client.DefaultRequestHeaders.Add("anthropic-version", "2023-06-01");
        return client;
    }

    public Task RefreshCatalogAsync() => Services.GetRequiredService<ModelCatalog>().RefreshAsync(CancellationToken.None);

    public async ValueTask DisposeAsync()
    {
        if (_app is null)
        {
            if (_functions!.Tap == Logs)
            {
                _functions.Tap = null;
            }

            return;
        }

        await _app.StopAsync();
        await _app.DisposeAsync();
        if (Directory.Exists(SpoolDirectory))
        {
            Directory.Delete(SpoolDirectory, recursive: true);
        }
    }
}

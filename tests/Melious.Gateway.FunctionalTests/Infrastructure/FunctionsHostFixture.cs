using System.Collections.Concurrent;
using System.Diagnostics;
using Melious.Gateway.Auth;
using Melious.Gateway.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>
/// The Functions app (src/Melious.Functions, built with these tests) under the real Azure Functions host
/// (<see cref="FunctionsApp.HostRunScript"/>), started once per test run for the <see cref="FunctionsHostCollection"/>:
/// an Azurite of its own (the usage queue trigger listens to the literal <c>usage-events</c> queue, which no self-host
/// test may read), one scripted upstream whose script each test replaces (the collection runs its tests one at a time),
/// the <c>Melious__*</c> settings as environment variables, a free port, and every line the host and worker print.
/// Where the host is missing, each test using it is skipped with the reason.
/// </summary>
public sealed class FunctionsHostFixture : IAsyncLifetime, IGatewayTarget
{
    /// <summary>Pings every 2 s here (15 s by default), so a test can see them flow during upstream silence.</summary>
    public static readonly TimeSpan PingInterval = TimeSpan.FromSeconds(2);

    private readonly ConcurrentQueue<string> _output = new();
    private readonly string _spool = Path.Combine(Path.GetTempPath(), "melious-fnhost-spool-" + Guid.NewGuid().ToString("N")[..8]);
    private Process? _host;
    private IHost? _storageSide;
    private string? _failure;

    public AzuriteProcess Azurite { get; } = new();

    public ScriptedUpstream Upstream { get; private set; } = null!;

    public string Prefix { get; } = "fn" + Guid.NewGuid().ToString("N")[..10];

    public int Port { get; } = Ports.Free();

    public string BaseUrl => $"http://127.0.0.1:{Port}";

    public string ConnectionString => Azurite.ConnectionString;

    /// <summary>Every line the host (and through it, the worker) printed, in order.</summary>
    public IReadOnlyCollection<string> Output => _output;

    public string OutputText => string.Join('\n', _output);

    /// <summary>Where output lines also go while a test's gateway is in use (<see cref="TestGateway.OnFunctionsHost"/>).</summary>
    public CapturingLoggerProvider? Tap { get; set; }

    /// <summary>The host's process id (the worker is its child).</summary>
    public int Pid => _host?.Id ?? 0;

    /// <summary>
    /// The gateway's storage-side services on the same account and prefix as the worker (keys, catalog, usage
    /// tables, a publisher to the trigger's queue): what <c>melious-admin</c> would use. Not the worker's own.
    /// </summary>
    public IServiceProvider Services => _storageSide?.Services ?? throw new InvalidOperationException("the Functions host is not running");

    /// <summary>The settings the worker gets (as <c>Melious__*</c> environment variables).</summary>
    public Dictionary<string, string?> Settings => new()
    {
        ["Melious:Storage:ConnectionString"] = Azurite.ConnectionString,
        ["Melious:Storage:TablePrefix"] = Prefix,
        ["Melious:Usage:SpoolDirectory"] = _spool,
        ["Melious:Upstream:BaseUrl"] = Upstream.OpenAIBaseUrl,
        ["Melious:Models:Main"] = "main-model",
        ["Melious:Models:Secondary"] = "secondary-model",
        ["Melious:Models:Lightweight"] = "light-model",
        ["Melious:Streaming:MaxRetryDelay"] = "00:00:01",
        ["Melious:Streaming:PingInterval"] = PingInterval.ToString(),
        // The worker reloads the models table every second (15 s by default), so a test's catalog edit (CatalogKit)
        // reaches it in about a second; the self-host reloads on demand instead.
        ["Melious:Catalog:RefreshInterval"] = "00:00:01",
        ["Melious:Dashboard:SessionSecret"] = Dashboard.DashboardBrowserTests.SessionSecret,
    };

    public async ValueTask InitializeAsync()
    {
        if (FunctionsApp.MissingHost is not null)
        {
            return;
        }

        try
        {
            // Started while the whole test assembly starts up, on a machine that may be busy: a generous bound.
            await Azurite.StartAsync(TimeSpan.FromMinutes(2));
            Upstream = await ScriptedUpstream.StartAsync((_, context) => Sse.WriteAsync(context, Sse.TextAnswer(["ok"])));
            var environment = Settings.ToDictionary(s => "Melious__" + s.Key["Melious:".Length..].Replace(":", "__", StringComparison.Ordinal), s => s.Value);
            // A failed queue message becomes visible again after 1 s here (host.json: 30 s), so the poison test sees
            // all maxDequeueCount deliveries (host.json's, unchanged) in seconds. The host overrides host.json from
            // AzureFunctionsJobHost__* variables, as App Service app settings would.
            environment["AzureFunctionsJobHost__extensions__queues__visibilityTimeout"] = "00:00:01";
            environment["AzureFunctionsJobHost__extensions__queues__maxPollingInterval"] = "00:00:01";
            _host = await StartHostAsync(environment, Port, _output, line => Tap?.Lines.Enqueue(line));
            await WaitReadyAsync(_host, BaseUrl, _output);

            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            builder.Configuration.AddInMemoryCollection(Settings);
            builder.Services.AddLogging();
            builder.Services.AddMeliousGateway(builder.Configuration);
            _storageSide = builder.Build();
            await _storageSide.StartAsync();
        }
        catch (Exception ex)
        {
            _failure = $"the Functions host did not start: {ex.Message}\n--- host output ---\n{Tail(_output, 80)}";
        }
    }

    /// <summary>Skips the calling test where the host is missing; fails it where the host did not start.</summary>
    public void EnsureRunning()
    {
        if (FunctionsApp.MissingHost is { } missing)
        {
            Assert.Skip("Functions host tests need " + missing);
        }

        Assert.True(_failure is null, _failure);
        Assert.True(_host is { HasExited: false }, "the Functions host exited:\n" + Tail(_output, 80));
    }

    /// <summary>Replaces the upstream's script (and forgets the requests it saw) for the next test.</summary>
    public void Rescript(Func<UpstreamRequest, Microsoft.AspNetCore.Http.HttpContext, Task> handler) => Upstream.Rescript(handler);

    public async Task<string> CreateKeyAsync(string account = "acme", string name = "test", KeyLimits? limits = null)
    {
        var (key, _) = await Services.GetRequiredService<ApiKeyStore>().CreateAsync(account, name, limits, CancellationToken.None);
        return key;
    }

    /// <summary>Host output lines from index <paramref name="from"/> on (see <see cref="Output"/>'s count).</summary>
    public List<string> OutputSince(int from) => _output.Skip(from).ToList();

    public async ValueTask DisposeAsync()
    {
        if (_storageSide is not null)
        {
            await _storageSide.StopAsync(CancellationToken.None);
            _storageSide.Dispose();
        }

        if (_host is not null)
        {
            await StopHostAsync(_host);
        }

        if (Upstream is not null)
        {
            await Upstream.DisposeAsync();
        }

        await Azurite.DisposeAsync();
        if (Directory.Exists(_spool))
        {
            Directory.Delete(_spool, recursive: true);
        }
    }

    /// <summary>
    /// Starts the app under the host's run.sh (which execs the host: the process is the host) with the given app
    /// settings plus AzureWebJobsStorage for <paramref name="azurite"/>'s account; every output line goes to
    /// <paramref name="output"/>. Inherited <c>Melious__*</c> variables are dropped so only these settings apply.
    /// </summary>
    public static async Task<Process> StartHostAsync(IReadOnlyDictionary<string, string?> settings, int port, ConcurrentQueue<string> output, Action<string>? tap = null)
    {
        ProcessStartInfo info;
        if (FunctionsApp.HostRunScript is { } run)
        {
            await BuildHostAsync(run);
            info = new ProcessStartInfo(run) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            info.ArgumentList.Add(FunctionsApp.Directory);
        }
        else
        {
            // Core Tools (not installable on the project's machines, so not exercised here): `func host start` in
            // the app's build output, the same settings as environment variables.
            var func = FunctionsApp.Func ?? throw new InvalidOperationException(FunctionsApp.MissingHost);
            info = new ProcessStartInfo(func) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = FunctionsApp.Directory };
            foreach (var arg in new[] { "host", "start", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            {
                info.ArgumentList.Add(arg);
            }

            info.Environment["FUNCTIONS_WORKER_RUNTIME"] = "dotnet-isolated";
        }

        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("Melious__", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            info.Environment.Remove(key);
        }

        foreach (var (key, value) in settings)
        {
            info.Environment[key] = value;
        }

        info.Environment["AzureWebJobsStorage"] = settings.TryGetValue("Melious__Storage__ConnectionString", out var storage) ? storage : null;
        info.Environment["FUNCTIONS_HOST_URLS"] = $"http://127.0.0.1:{port}";
        info.Environment["FNHOST_CONSOLE"] = "1";
        info.Environment["FUNCTIONS_LOG_PATH"] = Path.Combine(Path.GetTempPath(), "melious-fnhost-logs");
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => Append(output, e.Data, tap);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data, tap);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Waits (bounded) until the host answers <c>GET /</c> with 200, or exits.</summary>
    public static async Task WaitReadyAsync(Process host, string baseUrl, ConcurrentQueue<string> output)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (true)
        {
            if (host.HasExited)
            {
                throw new InvalidOperationException($"the host exited with code {host.ExitCode}");
            }

            try
            {
                using var response = await client.GetAsync(baseUrl + "/");
                if (response.StatusCode == System.Net.HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("the host did not answer GET / with 200 within 3 minutes");
            }

            await Task.Delay(250);
        }
    }

    /// <summary>SIGTERM (the host stops its worker), then a kill of whatever is left of the host and its children.</summary>
    public static async Task StopHostAsync(Process host)
    {
        var children = Descendants(host.Id);
        if (!host.HasExited)
        {
            using (var kill = Process.Start("kill", ["-TERM", host.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            try
            {
                await host.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                host.Kill(entireProcessTree: true);
                await host.WaitForExitAsync();
            }
        }

        foreach (var pid in children)
        {
            try
            {
                using var child = Process.GetProcessById(pid);
                child.Kill(entireProcessTree: true);
            }
            catch (ArgumentException)
            {
                // already gone
            }
            catch (InvalidOperationException)
            {
            }
        }

        host.Dispose();
    }

    public static string Tail(IEnumerable<string> lines, int count) => string.Join('\n', lines.TakeLast(count));

    private static async Task BuildHostAsync(string runScript)
    {
        var build = Path.Combine(Path.GetDirectoryName(runScript)!, "build.sh");
        if (!File.Exists(build))
        {
            return;
        }

        var info = new ProcessStartInfo(build) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{build} failed ({process.ExitCode}): {await stderr}");
        }

        await stdout;
    }

    private static List<int> Descendants(int pid)
    {
        var all = new List<int>();
        var frontier = new Queue<int>([pid]);
        while (frontier.Count > 0)
        {
            var parent = frontier.Dequeue();
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out var candidate))
                {
                    continue;
                }

                try
                {
                    var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    if (int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) == parent)
                    {
                        all.Add(candidate);
                        frontier.Enqueue(candidate);
                    }
                }
                catch (IOException)
                {
                }
                catch (UnauthorizedAccessException)
                {
                }
            }
        }

        return all;
    }

    private static void Append(ConcurrentQueue<string> output, string? line, Action<string>? tap)
    {
        if (line is not null && output.Count < 500_000)
        {
            output.Enqueue(line);
            tap?.Invoke(line);
        }
    }
}

/// <summary>
/// Tests against the Functions host share one host (started once per run), and run one at a time: each replaces the
/// shared upstream's script.
/// </summary>
[CollectionDefinition(Name)]
public sealed class FunctionsHostCollection : ICollectionFixture<FunctionsHostFixture>
{
    public const string Name = "Functions host";
}

using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Bench;
using Melious.Gateway.Auth;
using Melious.Gateway.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.LoadBench;

/// <summary>One load setting: concurrency, inter-chunk delay, with or without a tool call.</summary>
public sealed record Setting(int Concurrency, int DelayMs, bool Tool)
{
    public string Label => string.Create(CultureInfo.InvariantCulture, $"c{Concurrency}-d{DelayMs}-{(Tool ? "tool" : "text")}");
}

/// <summary>
/// The orchestrator: Azurite, the scripted upstream (child process), the self-host gateway (child process, Release
/// build), the load client in this process. Prints one table and one <c>BENCH_JSON</c> line per figure.
/// </summary>
public sealed partial class Bench : IDisposable
{
    private const string MainModel = "bench-opus";
    private const string SecondaryModel = "bench-sonnet";
    private const string LightModel = "bench-haiku";

    private readonly Options _o;
    private readonly string _repo;
    private readonly string _outDir;
    private readonly string _work;
    private readonly JsonArray _results = [];
    private readonly Dictionary<string, double> _figures = new(StringComparer.Ordinal);
    private readonly List<string> _summary = [];
    private readonly HttpClient _control = new() { Timeout = TimeSpan.FromSeconds(30) };

    private Azurite? _azurite;
    private ChildProcess? _upstream;
    private ChildProcess? _gateway;
    private RssSampler? _gatewaySampler;
    private ServiceProvider? _services;
    private readonly List<PathResult> _settingRequests = [];
    private LoadClient? _client;
    private string _apiKey = "";
    private string _upstreamBase = "";
    private string _gatewayBase = "";
    private string _gatewayDll = "";
    private LoadClient.Worker[] _workers = [];

    // The Functions pass (--functions-host): _gateway is then the Functions host process and _workerPid its
    // isolated-worker child; gateway CPU is the sum of both. _pass prefixes the figures of that pass.
    private bool _functions;
    private int _workerPid;
    private string _pass = "";

    public Bench(Options options)
    {
        _o = options;
        _repo = RepoPaths.FindRoot(options.Repo);
        _outDir = options.OutDir ?? Path.Combine(_repo, "artifacts", "bench");
        _work = Path.Combine(Path.GetTempPath(), "melious-loadbench-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
    }

    private int Pid(ChildProcess? p) => p?.Pid ?? 0;

    private CpuSnapshot Cpu()
    {
        var (user, sys) = _gateway is null ? (0, 0) : ProcStats.CpuSplitMs(_gateway.Pid);
        if (_workerPid > 0)
        {
            var (workerUser, workerSys) = ProcStats.CpuSplitMs(_workerPid);
            user += workerUser;
            sys += workerSys;
        }

        return new(
            user + sys,
            sys,
            _upstream is null ? 0 : ProcStats.CpuMs(_upstream.Pid),
            _azurite is null ? 0 : ProcStats.CpuMs(_azurite.Process.Pid),
            ProcStats.CpuMs(Environment.ProcessId));
    }

    public async Task<int> RunAsync()
    {
        Directory.CreateDirectory(_outDir);
        Directory.CreateDirectory(_work);
        PrintHeader();

        _gatewayDll = _o.GatewayDll ?? Path.Combine(_repo, "src", "Melious.SelfHost", "bin", "Release", "net10.0", "Melious.SelfHost.dll");
        if (!File.Exists(_gatewayDll))
        {
            throw new InvalidOperationException($"{_gatewayDll} not found: run `dotnet build -c Release src/Melious.SelfHost` (scripts/bench.sh does)");
        }

        var azuriteExe = _o.AzuriteExe ?? Path.Combine(_repo, "tools", "node_modules", ".bin", "azurite");
        if (!File.Exists(azuriteExe))
        {
            throw new InvalidOperationException($"{azuriteExe} not found: run `cd tools && npm install` (scripts/bench.sh does)");
        }

        Step("starting Azurite (in memory)");
        _azurite = await Azurite.StartAsync(azuriteExe, Path.Combine(_work, "azurite"));
        try
        {
            await PrepareStorageAsync();
        }
        catch (Exception ex)
        {
            // Seen once (2026-12-06): Azurite passed its port check, then refused every table connection. The likely
            // cause, reproduced by hand: two of its ports were the same (Net.FreePort now never hands a port out
            // twice), so it listened on one and exited on the other. Should it happen otherwise, say what it printed.
            throw new InvalidOperationException(
                $"Azurite passed its port check but its storage calls failed (Azurite exited: {_azurite.Process.HasExited}); its output: {_azurite.Process.Output}", ex);
        }

        Step("starting the scripted upstream (separate process)");
        await StartUpstreamAsync();
        var baseScenario = new Scenario(_o.Tokens, _o.TokensPerChunk, 0, 0, false);
        await SetScenarioAsync(baseScenario);

        // Start-up first, on a fresh Azurite: launch 1 also seeds the empty model catalog; later launches find
        // storage ready (as a restarted or scaled-out instance does). The last launch serves the load tests.
        Step($"launching the self-host gateway (Release, separate process) {_o.Launches} time(s) to time its start");
        var starts = new List<StartResult>();
        for (var i = 0; i < _o.Launches; i++)
        {
            if (i > 0)
            {
                StopGateway();
                await Task.Delay(300);
                await WaitQuietAsync();
            }

            starts.Add(await LaunchGatewayAsync());
        }

        _gatewaySampler = new RssSampler(_gateway!.Pid);
        _client = new LoadClient(_gatewayBase, _upstreamBase, _apiKey)
        {
            MessagesBody = BenchRequests.Messages(),
            CountTokensBody = BenchRequests.CountTokens(),
            Expected = new ScenarioPayload(baseScenario),
        };
        _workers = Enumerable.Range(0, Math.Max(Math.Max(64, _o.SlowStreams), _o.CountTokensConcurrency) + 8).Select(_ => new LoadClient.Worker()).ToArray();

        await CaptureDirectBodyAsync();
        if (!PacedOnly)
        {
            // (A paced-only run warms up with its own small requests: the 36 KB bodies would inflate the heap it measures.)
            await GlobalWarmupAsync();
        }

        var idle = await IdleAsync();
        if (_o.Pool)
        {
            return await PoolPassAsync(idle);
        }

        var settings = new List<Setting>();
        foreach (var c in new[] { 1, 32 })
        {
            foreach (var d in new[] { 0, 5 })
            {
                foreach (var tool in new[] { false, true })
                {
                    var s = new Setting(c, d, tool);
                    if (_o.Only.Count == 0 || _o.Only.Contains(s.Label))
                    {
                        settings.Add(s);
                    }
                }
            }
        }

        foreach (var setting in settings)
        {
            await RunSettingAsync(setting, idle);
        }

        await PacedPassAsync(idle, withAnchors: true);
        if (!_o.SkipCountTokens)
        {
            await CountTokensAsync();
        }

        if (!_o.SkipSlow)
        {
            await SlowStreamsAsync();
        }

        if (_summary.Count > 0)
        {
            Console.WriteLine("\nAll settings (ms; gateway vs direct; ratio = gateway req/s ÷ direct req/s; sust = incl. usage drain; CPU = gateway ms/request; RSS = gateway peak MB; other = cores used outside the bench):");
            Console.WriteLine($"  {"setting",-13}{"gwTTFT",8}{"dTTFT",8}{"added",8}{"gwTotal",9}{"dTotal",9}{"gw r/s",8}{"d r/s",8}{"ratio",7}{"sust",7}{"CPU",8}{"RSS",6}{"err",5}{"other",7}");
            foreach (var line in _summary)
            {
                Console.WriteLine(line);
            }
        }

        ReportStarts(starts);
        var misses = PacedOnly ? 0 : ReportTargets();
        var usageOk = true;
        if (_o.VerifyUsage)
        {
            var billed = await VerifyUsageAsync();
            var stored = await VerifyStoragePathsAsync();
            usageOk = billed && stored;
        }

        if (_o.FunctionsHost is not null)
        {
            await FunctionsPassAsync(settings);
        }

        var file = Path.Combine(_outDir, "loadbench.json");
        await File.WriteAllTextAsync(file, _results.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"\nAll figures as JSON: {file}");
        Console.WriteLine($"Gateway log lines with warn/fail: {_gateway?.WarningLines ?? 0}");
        if (_o.DumpGatewayLog && _gateway is not null)
        {
            Console.WriteLine("---- gateway output (last 400 lines) ----\n" + _gateway.Output);
        }
        return usageOk ? 0 : 1;
    }

    /// <summary>
    /// The same settings once more, through the Functions app (src/Melious.Functions, Release) under the real Azure
    /// Functions host: same Azurite, same scripted upstream, same request bodies, same direct baseline. The host
    /// routes the request and proxies the SSE stream to the isolated worker over HTTP; the worker runs the same core.
    /// Printed next to the self-host's figures: added TTFT (p50, p99: gateway − direct of the same setting) and CPU
    /// per stream (host + worker processes, from /proc, usage queue trigger included). Never asserted.
    /// </summary>
    private async Task FunctionsPassAsync(List<Setting> settings)
    {
        var appDir = _o.FunctionsApp ?? Path.Combine(_repo, "src", "Melious.Functions", "bin", "Release", "net10.0");
        var run = Path.Combine(_o.FunctionsHost!, "run.sh");
        if (!File.Exists(run) || !File.Exists(Path.Combine(appDir, "functions.metadata")))
        {
            Console.WriteLine($"SKIPPED: Functions host pass ({(File.Exists(run) ? $"{appDir}/functions.metadata not found: run `dotnet build -c Release src/Melious.Functions`" : $"{run} not found")})");
            return;
        }

        var clock = Stopwatch.StartNew();
        Console.WriteLine();
        Step($"Functions pass: stopping the self-host; starting {appDir} under {run} (the real Azure Functions host)");
        StopGateway();
        _functions = true;
        _pass = "fn:";
        _gatewayDll = Path.Combine(appDir, "Melious.Functions.dll");
        await WaitQuietAsync();
        var start = await LaunchGatewayAsync();
        _workerPid = ProcStats.Children(_gateway!.Pid).Where(c => c.CommandLine.Contains("Melious.Functions", StringComparison.Ordinal)).Select(c => c.Pid).FirstOrDefault();
        if (_workerPid == 0)
        {
            Console.WriteLine("  ⚠ the worker process (a child of the host running Melious.Functions) was not found: CPU is the host's only");
        }
        else
        {
            var worker = ProcStats.ReadStatus(_workerPid);
            Console.WriteLine($"  worker pid {_workerPid} (child of the host): RSS {Fmt.N(worker.RssMb, 1)} MB, {worker.Threads} threads");
        }

        _gatewaySampler = new RssSampler(_gateway.Pid);
        var direct = _client!.DirectBody;
        var expected = _client.Expected;
        _client.Dispose();
        _client = new LoadClient(_gatewayBase, _upstreamBase, _apiKey)
        {
            MessagesBody = BenchRequests.Messages(),
            CountTokensBody = BenchRequests.CountTokens(),
            DirectBody = direct,
            Expected = expected,
        };
        if (!PacedOnly)
        {
            await GlobalWarmupAsync();
        }

        var idle = await IdleAsync();
        foreach (var setting in settings)
        {
            await RunSettingAsync(setting, idle);
        }

        await PacedPassAsync(idle, withAnchors: false);
        double F(string key) => _figures.TryGetValue(key, out var v) ? v : double.NaN;
        Console.WriteLine($"\nFunctions host vs self-host (same upstream and requests; added = gateway − direct of the same setting, ms; CPU = ms per stream, self-host process vs Functions host + worker processes, incl. usage pipeline and drain less idle burn / inside the gateway slices only; RSS = peak MB of the host process only). Start → first served request: {Fmt.N(start.FirstServedMs, 0)} ms. Printed, not asserted:");
        Console.WriteLine($"  {"setting",-13}{"self p50",10}{"fn p50",10}{"self p99",10}{"fn p99",10}{"self CPU",10}{"fn CPU",10}{"self sl.",10}{"fn sl.",10}{"fn RSS",8}{"fn err",8}");
        foreach (var setting in settings)
        {
            var l = setting.Label;
            Console.WriteLine($"  {l,-13}{Fmt.Signed(F(l + ".added_ttft_p50")),10}{Fmt.Signed(F("fn:" + l + ".added_ttft_p50")),10}{Fmt.Signed(F(l + ".added_ttft_p99")),10}{Fmt.Signed(F("fn:" + l + ".added_ttft_p99")),10}{Fmt.N(F(l + ".cpu"), 3),10}{Fmt.N(F("fn:" + l + ".cpu"), 3),10}{Fmt.N(F(l + ".cpu_slices"), 3),10}{Fmt.N(F("fn:" + l + ".cpu_slices"), 3),10}{Fmt.N(F("fn:" + l + ".rss"), 0),8}{F("fn:" + l + ".errors"),8}");
            Emit(new JsonObject
            {
                ["kind"] = "functions_overhead",
                ["setting"] = l,
                ["self_host"] = new JsonObject { ["added_ttft_p50_ms"] = Distribution.Round(F(l + ".added_ttft_p50")), ["added_ttft_p99_ms"] = Distribution.Round(F(l + ".added_ttft_p99")), ["cpu_ms_per_stream"] = Distribution.Round(F(l + ".cpu")), ["cpu_ms_per_stream_in_slices"] = Distribution.Round(F(l + ".cpu_slices")) },
                ["functions"] = new JsonObject { ["added_ttft_p50_ms"] = Distribution.Round(F("fn:" + l + ".added_ttft_p50")), ["added_ttft_p99_ms"] = Distribution.Round(F("fn:" + l + ".added_ttft_p99")), ["cpu_ms_per_stream_host_plus_worker"] = Distribution.Round(F("fn:" + l + ".cpu")), ["cpu_ms_per_stream_in_slices"] = Distribution.Round(F("fn:" + l + ".cpu_slices")), ["host_peak_rss_mb"] = Distribution.Round(F("fn:" + l + ".rss"), 1), ["errors"] = F("fn:" + l + ".errors") },
                ["start_first_served_ms"] = Distribution.Round(start.FirstServedMs, 1),
            });
        }

        Console.WriteLine($"  (Functions pass took {Fmt.N(clock.Elapsed.TotalSeconds, 0)} s; functions-host log lines with warn/fail: {_gateway.WarningLines})");
    }

    /// <summary>
    /// Usage accounting check (for other builds of the gateway, e.g. Native AOT): once the queue has drained, every
    /// measured gateway request has a billing row and an energy row (the rows are keyed by request id, so there can be
    /// no more rows than requests; warm-up and probe requests add a few), and nothing went to the poison queue.
    /// </summary>
    private async Task<bool> VerifyUsageAsync()
    {
        await DrainAsync(TimeSpan.FromSeconds(60));
        var storage = _services!.GetRequiredService<StorageClients>();
        async Task<long> CountAsync(string table)
        {
            long n = 0;
            await foreach (var _ in storage.Table(table).QueryAsync<Azure.Data.Tables.TableEntity>(select: ["RowKey"], maxPerPage: 1000))
            {
                n++;
            }

            return n;
        }

        var billing = await CountAsync("billing");
        var energy = await CountAsync("energy");
        var pending = (await storage.Queue("usage-events").GetPropertiesAsync()).Value.ApproximateMessagesCount;
        var poison = (await storage.Queue("usage-events-poison").GetPropertiesAsync()).Value.ApproximateMessagesCount;
        var measured = _settingRequests.Sum(r => (long)r.Ok);
        var ok = measured > 0 && billing >= measured && energy == billing && pending == 0 && poison == 0;
        Console.WriteLine($"Usage check: {measured} measured gateway requests; {billing} billing rows, {energy} energy rows; {pending} queued, {poison} poison — {(ok ? "PASS" : "FAIL")}");
        Emit(new JsonObject { ["kind"] = "usage-check", ["measured_requests"] = measured, ["billing_rows"] = billing, ["energy_rows"] = energy, ["queued"] = pending, ["poison"] = poison, ["ok"] = ok });
        return ok;
    }

    /// <summary>
    /// With the usage check (the published builds' passes): the storage reads that the load does not exercise work in
    /// the build under test. The readiness probe queries the catalog table; at start the gateway loads (and here seeds)
    /// its model catalog, and its rate limiter counts instances, both table queries; and neither they, the key store
    /// nor the storage set-up logged a warning or an error. A Native AOT build once failed every table query (a
    /// reflection binder of Azure.Data.Tables, see src/Melious.SelfHost/TableEntityBinder.rd.xml) while serving and
    /// billing requests as usual.
    /// </summary>
    private async Task<bool> VerifyStoragePathsAsync()
    {
        using var ready = await _control.GetAsync(_gatewayBase + "/healthz/ready");
        var storage = _services!.GetRequiredService<StorageClients>();
        var models = 0;
        await foreach (var _ in storage.Table(TableNames.Models).QueryAsync<Azure.Data.Tables.TableEntity>(select: ["RowKey"]))
        {
            models++;
        }

        string[] storageCategories = ["Melious.Gateway.Routing.", "Melious.Gateway.Limits.", "Melious.Gateway.Auth.", "Melious.Gateway.Hosting."];
        var problems = (_gateway?.ProblemHeaders ?? []).Where(h => storageCategories.Any(c => h.AsSpan(6).StartsWith(c, StringComparison.Ordinal))).ToList();
        var ok = ready.IsSuccessStatusCode && models > 0 && problems.Count == 0;
        Console.WriteLine($"Storage paths check: readiness {(int)ready.StatusCode}, {models} catalog rows, {problems.Count} catalog/limiter/key/storage warnings or errors logged — {(ok ? "PASS" : "FAIL")}");
        foreach (var problem in problems.Take(10))
        {
            Console.WriteLine("  " + problem);
        }

        Emit(new JsonObject { ["kind"] = "storage-paths-check", ["readiness_status"] = (int)ready.StatusCode, ["catalog_rows"] = models, ["problems"] = problems.Count, ["ok"] = ok });
        return ok;
    }

    private void PrintHeader()
    {
        Console.WriteLine("Melious gateway load bench" + (_o.Quick ? " (--quick smoke run: figures are indicative only)" : ""));
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, .NET {Environment.Version}, CLK_TCK={ProcStats.ClockTicks}");
        Console.WriteLine($"per setting: {_o.MeasureSeconds:0.#} s measured per path in {_o.Rounds} round(s) of gateway slice → usage drain → direct slice, {_o.Tokens} tokens, {_o.TokensPerChunk} token(s)/chunk");
        var body = BenchRequests.Messages();
        if (_o.GatewayEnv.Count > 0)
        {
            Console.WriteLine("gateway environment overrides: " + string.Join(' ', _o.GatewayEnv.Select(kv => kv.Key + "=" + kv.Value)));
        }

        Console.WriteLine($"request: {body.Length / 1024.0:0.0} KB Messages body, {BenchRequests.ToolCount} tools, model {BenchRequests.Model}; count_tokens body {BenchRequests.CountTokens().Length / 1024.0:0.0} KB");
    }

    private static void Step(string text) => Console.WriteLine($"[{DateTime.Now:HH:mm:ss}] {text}");

    private async Task PrepareStorageAsync()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Melious:Storage:ConnectionString"] = _azurite!.ConnectionString,
        }).Build();
        _services = new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(config).AddMeliousGateway(config).BuildServiceProvider();
        var storage = _services.GetRequiredService<StorageClients>();
        foreach (var table in TableNames.All)
        {
            await storage.Table(table).CreateIfNotExistsAsync();
        }

        await storage.Queue("usage-events").CreateIfNotExistsAsync();
        var (key, _) = await _services.GetRequiredService<ApiKeyStore>().CreateAsync("bench", "loadbench", null, CancellationToken.None);
        _apiKey = key;
    }

    private async Task StartUpstreamAsync()
    {
        var port = Net.FreePort();
        var (file, prefix) = RepoPaths.Self();
        _upstream = ChildProcess.Start("upstream", file,
            [.. prefix, "upstream", "--port", port.ToString(CultureInfo.InvariantCulture), "--parent", Environment.ProcessId.ToString(CultureInfo.InvariantCulture)],
            new Dictionary<string, string> { ["DOTNET_gcServer"] = "0", ["DOTNET_TieredPGO"] = "1" });
        _upstreamBase = $"http://127.0.0.1:{port}";
        await Net.WaitOpenAsync(port, TimeSpan.FromSeconds(30), _upstream);
        (await _control.GetAsync(_upstreamBase + "/health")).EnsureSuccessStatusCode();
    }

    private async Task SetScenarioAsync(Scenario scenario)
    {
        using var response = await _control.PostAsync($"{_upstreamBase}/control/scenario?{scenario.Query}", null);
        response.EnsureSuccessStatusCode();
        foreach (var (_, baseUrl) in _poolUpstreams)
        {
            using var other = await _control.PostAsync($"{baseUrl}/control/scenario?{scenario.Query}", null);
            other.EnsureSuccessStatusCode();
        }
        if (_client is not null)
        {
            _client.Expected = new ScenarioPayload(scenario);
        }
    }

    private async Task<JsonNode?> UpstreamStatsAsync(bool reset = false) =>
        JsonNode.Parse(await _control.GetStringAsync(_upstreamBase + "/control/stats" + (reset ? "?reset=1" : "")));

    private sealed record StartResult(double ListeningMs, double FirstServedMs, double RssMb, int Threads);

    /// <summary>Starts the self-host and polls until a streamed /v1/messages succeeds; measures launch → that moment.</summary>
    private async Task<StartResult> LaunchGatewayAsync()
    {
        var port = Net.FreePort();
        _gatewayBase = $"http://127.0.0.1:{port}";
        var env = new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = _gatewayBase,
            ["DOTNET_NOLOGO"] = "1",
            ["Melious__Storage__ConnectionString"] = _azurite!.ConnectionString,
            ["Melious__Upstream__BaseUrl"] = _upstreamBase + "/v1",
            ["Melious__Models__Main"] = MainModel,
            ["Melious__Models__Secondary"] = SecondaryModel,
            ["Melious__Models__Lightweight"] = LightModel,
            ["Melious__Usage__SpoolDirectory"] = Path.Combine(_work, "usage-spool"),
        };
        if (_functions)
        {
            // As FunctionsHostFixture and scripts/run-functions.sh start it: the host's own storage on the same
            // Azurite, a free port, the queue trigger polling at most every second (host.json's default is a minute,
            // which DrainAsync would wait out), a failed message visible again after 1 s.
            env.Remove("ASPNETCORE_URLS");
            env["AzureWebJobsStorage"] = _azurite.ConnectionString;
            env["FUNCTIONS_HOST_URLS"] = _gatewayBase;
            env["FUNCTIONS_LOG_PATH"] = Path.Combine(_work, "functions-logs");
            env["AzureFunctionsJobHost__extensions__queues__maxPollingInterval"] = "00:00:01";
            env["AzureFunctionsJobHost__extensions__queues__visibilityTimeout"] = "00:00:01";

            // As the deployed Function App's settings (infra/app/api.bicep): the host's thread-pool workers do not spin
            // either (the worker's own runtimeconfig already says so).
            env["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0";
        }

        if (_o.Pool)
        {
            // The pool model is added to the catalog after the start (an empty catalog is seeded first): read it soon.
            env["Melious__Catalog__RefreshInterval"] = "00:00:01";
        }

        foreach (var (key, value) in _o.GatewayEnv)
        {
            env[key] = value;
        }

        // The working directory is the build output, so the self-host reads its appsettings.json (log levels)
        // exactly as `cd bin/Release/net10.0 && dotnet Melious.SelfHost.dll` or a container would.
        var dir = Path.GetDirectoryName(_gatewayDll)!;
        var messages = new Uri(_gatewayBase + "/v1/messages?beta=true");
        using var probe = new LoadClient(_gatewayBase, _upstreamBase, _apiKey) { Expected = _client?.Expected ?? new ScenarioPayload(new Scenario(_o.Tokens, _o.TokensPerChunk, 0, 0, false)) };
        var body = BenchRequests.Messages();
        var worker = new LoadClient.Worker();
        // A .dll runs under `dotnet`; anything else is an executable (a Native AOT or a self-contained JIT publish).
        // The Functions host: run.sh execs the host, so the child is the host itself; it starts the worker as its child.
        _gateway = _functions
            ? ChildProcess.Start("functions-host", Path.Combine(_o.FunctionsHost!, "run.sh"), [dir], env, dir)
            : _gatewayDll.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
                ? ChildProcess.Start("gateway", "dotnet", [_gatewayDll], env, dir)
                : ChildProcess.Start("gateway", _gatewayDll, [], env, dir);
        var start = _gateway.StartTimestamp;
        double listening = double.NaN;
        var deadline = Stopwatch.GetTimestamp() + (_functions ? 180 : 60) * Stopwatch.Frequency;
        string? last = null;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_gateway.HasExited)
            {
                throw new InvalidOperationException("the gateway exited during start:\n" + _gateway.Output);
            }

            var sample = await probe.GatewayAsync(worker, messages, body, CancellationToken.None);
            var now = Stopwatch.GetTimestamp();
            if (sample.Error is null)
            {
                var served = Distribution.TicksToMs(now - start);
                if (double.IsNaN(listening))
                {
                    listening = served;
                }

                await Task.Delay(200);
                var status = ProcStats.ReadStatus(_gateway.Pid);
                Console.WriteLine($"  gateway pid {_gateway.Pid} on {_gatewayBase}: first HTTP answer {Fmt.N(listening, 0)} ms, first served /v1/messages {Fmt.N(served, 0)} ms after launch; RSS {Fmt.N(status.RssMb, 1)} MB, {status.Threads} threads");
                return new StartResult(listening, served, status.RssMb, status.Threads);
            }

            if (double.IsNaN(listening) && !sample.Error.StartsWith("HttpRequestException", StringComparison.Ordinal))
            {
                listening = Distribution.TicksToMs(now - start);
            }

            last = sample.Error;
            await Task.Delay(5);
        }

        throw new InvalidOperationException($"the gateway served no request within {(_functions ? 180 : 60)} s (last: {last}):\n{_gateway.Output}");
    }

    private void StopGateway()
    {
        _gatewaySampler?.Dispose();
        _gatewaySampler = null;
        _gateway?.Dispose();
        _gateway = null;
    }

    /// <summary>Asks the upstream to keep the next body, sends one request through the gateway, replays that body directly.</summary>
    private async Task CaptureDirectBodyAsync()
    {
        (await _control.PostAsync(_upstreamBase + "/control/capture", null)).EnsureSuccessStatusCode();
        var sample = await _client!.GatewayAsync(_workers[0], new Uri(_gatewayBase + "/v1/messages?beta=true"), _client.MessagesBody, CancellationToken.None);
        if (sample.Error is not null)
        {
            throw new InvalidOperationException("capture request failed: " + sample.Error);
        }

        _client.DirectBody = await _control.GetByteArrayAsync(_upstreamBase + "/control/captured");
        using var doc = JsonDocument.Parse(_client.DirectBody);
        var root = doc.RootElement;
        Console.WriteLine($"  direct baseline body: the gateway's own upstream request, captured: {_client.DirectBody.Length / 1024.0:0.0} KB, model {root.GetProperty("model").GetString()}, {root.GetProperty("messages").GetArrayLength()} messages, {(root.TryGetProperty("tools", out var t) ? t.GetArrayLength() : 0)} tools, stream={root.GetProperty("stream")}");
    }

    private async Task GlobalWarmupAsync()
    {
        Step($"warm-up: {_o.WarmupRequests} requests per path (gateway, direct), with and without a tool call");
        foreach (var tool in new[] { false, true })
        {
            await SetScenarioAsync(new Scenario(_o.Tokens, _o.TokensPerChunk, 0, 0, tool));
            foreach (var target in new[] { Target.Gateway, Target.Direct })
            {
                var result = new PathResult();
                await RunSliceAsync(target, 8, TimeSpan.FromSeconds(60), _o.WarmupRequests / 2, result);
                if (result.Errors > 0)
                {
                    Console.WriteLine($"  warm-up {target}: {result.Errors} errors, first: {result.ErrorKinds.First().Error}");
                }
            }
        }

        if (!_o.Quick)
        {
            await SettleJitAsync();
        }

        await DrainAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// The targets are about a gateway that has been serving for a while. The runtime keeps recompiling hot methods
    /// at tier 1 for several seconds of traffic after the fixed warm-up (about 13 s on a 2-core machine), and that
    /// compiler thread takes a core from the first measured rounds. So warm-up goes on, alternating paths and
    /// scenarios, until the tier-1 compiler threads of the gateway, the upstream and this client spent under 20 ms
    /// of CPU in a whole round (bounded: 60 s).
    /// </summary>
    private Task SettleJitAsync()
    {
        int[] pids = _workerPid > 0 ? [_gateway!.Pid, _workerPid, _upstream!.Pid, Environment.ProcessId] : [_gateway!.Pid, _upstream!.Pid, Environment.ProcessId];
        return SettleJitAsync("jit_settle_s", pids, async () =>
        {
            foreach (var tool in new[] { false, true })
            {
                await SetScenarioAsync(new Scenario(_o.Tokens, _o.TokensPerChunk, 0, 0, tool));
                foreach (var (target, concurrency) in new[] { (Target.Gateway, 1), (Target.Direct, 1), (Target.Gateway, 32), (Target.Direct, 32) })
                {
                    await RunSliceAsync(target, concurrency, TimeSpan.FromSeconds(0.5), int.MaxValue, new PathResult());
                }
            }
        });
    }

    /// <summary>Runs <paramref name="round"/> until the tier-1 compiler threads of <paramref name="pids"/> spent under 20 ms of CPU in one (bounded: 60 s).</summary>
    private async Task SettleJitAsync(string figure, int[] pids, Func<Task> round)
    {
        var clock = Stopwatch.StartNew();
        var total = 0.0;
        var rounds = 0;
        var spent = double.NaN;
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            var before = pids.Select(ProcStats.TieringCpuMs).ToArray();
            await round();

            // Per thread: a compiler thread that started during the round counts whole.
            spent = pids.Select((pid, i) => ProcStats.TieringCpuMs(pid).Sum(t => t.Value - before[i].GetValueOrDefault(t.Key))).Sum();
            total += spent;
            rounds++;
            if (spent < 20)
            {
                break;
            }
        }

        Console.WriteLine($"  warm-up until tier-1 compilation settled: {rounds} round(s), {Fmt.N(clock.Elapsed.TotalSeconds, 1)} s, " +
                          $"compiler threads spent {Fmt.N(total, 0)} ms CPU (last round {Fmt.N(spent, 0)} ms){(spent < 20 ? "" : " ⚠ not settled within 60 s")}");
        _figures[figure] = clock.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// The gateway's background burn with no traffic (catalog refresh, queue polling, timers): the lowest rate over
    /// several 2-second windows after the usage queue drained, so a late burst of work is not mistaken for idle.
    /// </summary>
    private async Task<double> IdleAsync()
    {
        await DrainAsync(TimeSpan.FromSeconds(30));
        var rate = double.MaxValue;
        for (var i = 0; i < (_o.Quick ? 1 : 3); i++)
        {
            // Windows of 2 s: /proc CPU time has a 10 ms resolution.
            var before = Cpu().Gateway;
            var t0 = Stopwatch.GetTimestamp();
            await Task.Delay(_o.Quick ? 1000 : 2000);
            rate = Math.Min(rate, (Cpu().Gateway - before) / (Distribution.TicksToMs(Stopwatch.GetTimestamp() - t0) / 1000));
        }

        var status = ProcStats.ReadStatus(_gateway!.Pid);
        Console.WriteLine($"  gateway idle after warm-up: {Fmt.N(rate, 2)} CPU ms/s (subtracted from per-request CPU), RSS {Fmt.N(status.RssMb, 1)} MB, {status.Threads} threads");
        _figures["idle_rss_mb"] = status.RssMb;
        _figures["idle_threads"] = status.Threads;
        return rate;
    }

    /// <summary>Runs <paramref name="concurrency"/> closed-loop workers until the duration or request count is used up.</summary>
    private Task RunSliceAsync(Target target, int concurrency, TimeSpan duration, int maxRequests, PathResult into) =>
        RunWorkersAsync(worker => _client!.SendAsync(target, worker, CancellationToken.None), concurrency, duration, maxRequests, into, TimeSpan.FromMilliseconds(_o.ThinkMs));

    /// <summary>
    /// Closed-loop workers, each sending one request with <paramref name="send"/> after the other (then pausing for
    /// <paramref name="think"/>), until the duration or request count is used up; samples, wall time and CPU go to
    /// <paramref name="into"/>.
    /// </summary>
    private async Task RunWorkersAsync(Func<LoadClient.Worker, Task<Sample>> send, int concurrency, TimeSpan duration, int maxRequests, PathResult into, TimeSpan think)
    {
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var issued = 0;
        var cpuBefore = Cpu();
        var tasks = new Task[concurrency];
        for (var i = 0; i < concurrency; i++)
        {
            var worker = _workers[i];
            tasks[i] = Task.Run(async () =>
            {
                while (Stopwatch.GetTimestamp() < deadline && Interlocked.Increment(ref issued) <= maxRequests)
                {
                    var sample = await send(worker);
                    lock (into.Samples)
                    {
                        into.Samples.Add(sample);
                    }

                    if (think > TimeSpan.Zero)
                    {
                        await Task.Delay(think);
                    }
                }
            });
        }

        await Task.WhenAll(tasks);
        into.WallSeconds += Distribution.TicksToMs(Stopwatch.GetTimestamp() - start) / 1000;
        into.Cpu += Cpu() - cpuBefore;
    }

    /// <summary>Waits (bounded by --wait-quiet) until processes outside the bench use under a quarter of a core.</summary>
    private async Task<bool> WaitQuietAsync()
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(_o.WaitQuietSeconds * Stopwatch.Frequency);
        var warned = false;
        while (true)
        {
            var cpu0 = Cpu();
            var m0 = MachineLoad.Read();
            var t0 = Stopwatch.GetTimestamp();
            await Task.Delay(1000);
            var seconds = Distribution.TicksToMs(Stopwatch.GetTimestamp() - t0) / 1000;
            var d = Cpu() - cpu0;
            var foreign = MachineLoad.BusyCores(m0, MachineLoad.Read()) - (d.Gateway + d.Upstream + d.Azurite + d.Client) / 1000 / seconds;
            if (foreign < 0.25)
            {
                return true;
            }

            if (Stopwatch.GetTimestamp() > deadline)
            {
                return false;
            }

            if (!warned)
            {
                Console.WriteLine($"  waiting for a quiet machine: {Fmt.N(foreign, 2)} cores busy outside the bench (up to {_o.WaitQuietSeconds:0} s)");
                warned = true;
            }
        }
    }

    /// <summary>
    /// Waits (bounded) until the usage pipeline has caught up: the usage queue is empty (or, with the consumer turned
    /// off, no longer changing) and neither the gateway nor Azurite burns more than a tenth of a core.
    /// </summary>
    private async Task<double> DrainAsync(TimeSpan max)
    {
        var queue = _services!.GetRequiredService<StorageClients>().Queue("usage-events");
        var consumer = !(_o.GatewayEnv.TryGetValue("Melious__Usage__RunConsumer", out var run) && run.Equals("false", StringComparison.OrdinalIgnoreCase));
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(max.TotalSeconds * Stopwatch.Frequency);
        var previous = -1;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            var depth = (await queue.GetPropertiesAsync()).Value.ApproximateMessagesCount;
            var before = Cpu();
            await Task.Delay(100);
            var d = Cpu() - before;
            if ((consumer ? depth == 0 : depth == previous) && d.Gateway + d.Azurite <= 10)
            {
                break;
            }

            previous = depth;
        }

        return Distribution.TicksToMs(Stopwatch.GetTimestamp() - start) / 1000;
    }

    private async Task RunSettingAsync(Setting setting, double idleCpuPerSecond)
    {
        var scenario = new Scenario(_o.Tokens, _o.TokensPerChunk, setting.DelayMs, 0, setting.Tool);
        Step($"setting {setting.Label}: C={setting.Concurrency}, {scenario.Label}");
        await SetScenarioAsync(scenario);

        // A short warm-up of this exact setting (connections opened, the delay path jitted).
        var warm = new PathResult();
        foreach (var target in new[] { Target.Gateway, Target.Direct })
        {
            await RunSliceAsync(target, setting.Concurrency, TimeSpan.FromSeconds(_o.Quick ? 0.3 : 1.5), Math.Max(2 * setting.Concurrency, 20), warm);
        }

        await DrainAsync(TimeSpan.FromSeconds(15));
        var quiet = await WaitQuietAsync();
        var gateway = new PathResult();
        _settingRequests.Add(gateway);
        var direct = new PathResult();
        await UpstreamStatsAsync(reset: true);
        _gatewaySampler!.Reset();
        var threadsBefore = ProcStats.ReadStatus(_gateway!.Pid).Threads;
        var cpuStart = Cpu();
        var machineStart = MachineLoad.Read();
        var t0 = Stopwatch.GetTimestamp();
        var slice = TimeSpan.FromSeconds(_o.MeasureSeconds / _o.Rounds);
        var drainSeconds = 0.0;
        for (var round = 0; round < _o.Rounds; round++)
        {
            // Gateway slice, then the usage pipeline catches up (its CPU is charged to the gateway), then a direct
            // slice on a machine that is quiet again: the baseline never pays for the gateway's backlog.
            await RunSliceAsync(Target.Gateway, setting.Concurrency, slice, 1_000_000, gateway);
            drainSeconds += await DrainAsync(TimeSpan.FromSeconds(_o.Quick ? 5 : 15));
            await RunSliceAsync(Target.Direct, setting.Concurrency, slice, 1_000_000, direct);
        }

        var measuredSeconds = Distribution.TicksToMs(Stopwatch.GetTimestamp() - t0) / 1000;
        var peak = _gatewaySampler.Read();
        drainSeconds += await DrainAsync(TimeSpan.FromSeconds(_o.Quick ? 5 : 15));
        var cpuAll = Cpu() - cpuStart;
        var machineCores = MachineLoad.BusyCores(machineStart, MachineLoad.Read());
        var benchCores = (cpuAll.Gateway + cpuAll.Upstream + cpuAll.Azurite + cpuAll.Client) / 1000 / (Distribution.TicksToMs(Stopwatch.GetTimestamp() - t0) / 1000);
        // /proc/stat and per-process tick sampling disagree a little (and this VM's idle accounting is coarse): clamp at 0.
        var foreignCores = Math.Max(0, machineCores - benchCores);
        var upstreamStats = await UpstreamStatsAsync();

        // Gateway CPU per request: everything the gateway process burned from the first slice until the usage
        // queue was drained (its own request work, the usage publisher and consumer, GC, JIT), less idle burn.
        var gwCpuTotal = cpuAll.Gateway - idleCpuPerSecond * measuredSeconds;
        var gwCpuPerRequest = gwCpuTotal / Math.Max(1, gateway.Samples.Count);
        var gwCpuInSlices = gateway.Cpu.Gateway / Math.Max(1, gateway.Samples.Count);
        var gwSysShare = cpuAll.GatewaySys / Math.Max(1e-9, cpuAll.Gateway);
        var upstreamPerRequest = (gateway.Cpu.Upstream + direct.Cpu.Upstream) / Math.Max(1, gateway.Samples.Count + direct.Samples.Count);
        var upstreamCoresDirect = direct.Cpu.Upstream / 1000 / Math.Max(1e-9, direct.WallSeconds);
        var clientCoresDirect = direct.Cpu.Client / 1000 / Math.Max(1e-9, direct.WallSeconds);
        var azuritePerRequest = cpuAll.Azurite / Math.Max(1, gateway.Samples.Count);
        var clientPerGw = gateway.Cpu.Client / Math.Max(1, gateway.Samples.Count);
        var clientPerDirect = direct.Cpu.Client / Math.Max(1, direct.Samples.Count);
        var addedTtft = gateway.Ttft.P(0.5) - direct.Ttft.P(0.5);
        var ratio = gateway.Rps / direct.Rps;
        var sustainedRps = gateway.Ok / Math.Max(1e-9, gateway.WallSeconds + drainSeconds);

        var sb = new StringBuilder();
        sb.AppendLine($"  ┌ {setting.Label}: concurrency {setting.Concurrency}, {scenario.Label} ({scenario.CompletionTokens} output tokens reported)");
        sb.AppendLine($"  │ {"",-24}{"gateway",12}{"direct",12}{"gw − direct",14}");
        void Row(string name, double g, double d, string? delta = null) =>
            sb.AppendLine($"  │ {name,-24}{Fmt.N(g),12}{Fmt.N(d),12}{delta ?? Fmt.Signed(g - d),14}");
        Row("TTFT p50 (ms)", gateway.Ttft.P(0.5), direct.Ttft.P(0.5));
        Row("TTFT p95 (ms)", gateway.Ttft.P(0.95), direct.Ttft.P(0.95));
        Row("TTFT p99 (ms)", gateway.Ttft.P(0.99), direct.Ttft.P(0.99));
        Row("total p50 (ms)", gateway.Total.P(0.5), direct.Total.P(0.5));
        Row("total p95 (ms)", gateway.Total.P(0.95), direct.Total.P(0.95));
        Row("total p99 (ms)", gateway.Total.P(0.99), direct.Total.P(0.99));
        Row("requests/s", gateway.Rps, direct.Rps, "×" + Fmt.N(ratio, 3));
        sb.AppendLine($"  │ {"sustained req/s",-24}{Fmt.N(sustainedRps),12}{"",12}{"×" + Fmt.N(sustainedRps / direct.Rps, 3),14}  (gateway slices + usage-queue drain time)");
        sb.AppendLine($"  │ {"requests (errors)",-24}{$"{gateway.Samples.Count} ({gateway.Errors})",12}{$"{direct.Samples.Count} ({direct.Errors})",12}");
        sb.AppendLine($"  │ gateway CPU/request: {Fmt.N(gwCpuPerRequest, 3)} ms incl. usage pipeline + drain ({Fmt.N(gwCpuInSlices, 3)} ms inside its own slices, {Fmt.N(100 * gwSysShare, 0)}% kernel); peak RSS {Fmt.N(peak.PeakRssMb, 1)} MB (sampled {Fmt.N(peak.SampledPeakMb, 1)}, VmHWM {Fmt.N(peak.HwmMb, 1)}); threads {threadsBefore} → peak {peak.PeakThreads}");
        sb.AppendLine($"  │ other CPU/request: upstream {Fmt.N(upstreamPerRequest, 3)} ms, azurite {Fmt.N(azuritePerRequest, 3)} ms per gateway request, client {Fmt.N(clientPerGw, 3)} ms (gateway path) / {Fmt.N(clientPerDirect, 3)} ms (direct)");
        sb.AppendLine($"  │ direct phases: upstream busy {Fmt.N(upstreamCoresDirect, 2)} cores, client {Fmt.N(clientCoresDirect, 2)} cores of {Environment.ProcessorCount}; upstream served {upstreamStats?["requests"]} requests, max {upstreamStats?["max_active"]} at once; usage drain {Fmt.N(drainSeconds, 1)} s");
        sb.AppendLine($"  │ machine: {Fmt.N(machineCores, 2)} cores busy, bench processes {Fmt.N(benchCores, 2)}, outside the bench {Fmt.N(foreignCores, 2)}{(foreignCores > 0.25 ? "  ⚠ other load on the machine: figures are contended" : "")}{(quiet ? "" : " (no quiet window found)")}");
        foreach (var (error, count) in gateway.ErrorKinds.Take(3))
        {
            sb.AppendLine($"  │ gateway error ×{count}: {error}");
        }

        foreach (var (error, count) in direct.ErrorKinds.Take(3))
        {
            sb.AppendLine($"  │ direct error ×{count}: {error}");
        }

        sb.Append("  └");
        Console.WriteLine(sb.ToString());

        var json = new JsonObject
        {
            ["kind"] = "stream",
            ["host"] = _functions ? "functions" : "self-host",
            ["setting"] = setting.Label,
            ["concurrency"] = setting.Concurrency,
            ["tokens"] = scenario.Tokens,
            ["tokens_per_chunk"] = scenario.TokensPerChunk,
            ["delay_ms"] = setting.DelayMs,
            ["tool"] = setting.Tool,
            ["gateway"] = gateway.ToJson(),
            ["direct"] = direct.ToJson(),
            ["added_ttft_p50_ms"] = Distribution.Round(addedTtft),
            ["added_total_p50_ms"] = Distribution.Round(gateway.Total.P(0.5) - direct.Total.P(0.5)),
            ["throughput_ratio"] = Distribution.Round(ratio),
            ["sustained_rps"] = Distribution.Round(sustainedRps, 1),
            ["sustained_ratio"] = Distribution.Round(sustainedRps / direct.Rps),
            ["usage_drain_s"] = Distribution.Round(drainSeconds, 2),
            ["foreign_cores"] = Distribution.Round(foreignCores, 2),
            ["gateway_cpu_ms_per_request"] = Distribution.Round(gwCpuPerRequest),
            ["gateway_cpu_ms_per_request_in_slices"] = Distribution.Round(gwCpuInSlices),
            ["gateway_cpu_kernel_share"] = Distribution.Round(gwSysShare),
            ["gateway_peak_rss_mb"] = Distribution.Round(peak.PeakRssMb, 1),
            ["gateway_threads_peak"] = peak.PeakThreads,
            ["errors"] = gateway.Errors + direct.Errors,
            ["upstream_cpu_ms_per_request"] = Distribution.Round(upstreamPerRequest),
            ["upstream_cores_direct"] = Distribution.Round(upstreamCoresDirect),
            ["client_cores_direct"] = Distribution.Round(clientCoresDirect),
            ["azurite_cpu_ms_per_gateway_request"] = Distribution.Round(azuritePerRequest),
            ["client_cpu_ms_per_request"] = new JsonObject { ["gateway"] = Distribution.Round(clientPerGw), ["direct"] = Distribution.Round(clientPerDirect) },
        };
        Emit(json);
        _summary.Add($"  {setting.Label,-13}{Fmt.N(gateway.Ttft.P(0.5)),8}{Fmt.N(direct.Ttft.P(0.5)),8}{Fmt.Signed(addedTtft),8}{Fmt.N(gateway.Total.P(0.5), 1),9}{Fmt.N(direct.Total.P(0.5), 1),9}{Fmt.N(gateway.Rps, 0),8}{Fmt.N(direct.Rps, 0),8}{Fmt.N(ratio, 3),7}{Fmt.N(sustainedRps / direct.Rps, 3),7}{Fmt.N(gwCpuPerRequest, 3),8}{Fmt.N(peak.PeakRssMb, 0),6}{gateway.Errors + direct.Errors,5}{Fmt.N(foreignCores, 2),7}");
        _figures[$"{_pass}{setting.Label}.added_ttft_p50"] = addedTtft;
        _figures[$"{_pass}{setting.Label}.added_ttft_p99"] = gateway.Ttft.P(0.99) - direct.Ttft.P(0.99);
        _figures[$"{_pass}{setting.Label}.ratio"] = ratio;
        _figures[$"{_pass}{setting.Label}.cpu"] = gwCpuPerRequest;
        _figures[$"{_pass}{setting.Label}.cpu_slices"] = gwCpuInSlices;
        _figures[$"{_pass}{setting.Label}.rss"] = peak.PeakRssMb;
        _figures[$"{_pass}{setting.Label}.errors"] = gateway.Errors + direct.Errors;
    }

    private void Emit(JsonObject json)
    {
        _results.Add(json.DeepClone());
        Console.WriteLine("BENCH_JSON " + json.ToJsonString());
    }

    private async Task CountTokensAsync()
    {
        Step($"count_tokens: {BenchRequests.ToolCount}-tool body ({_client!.CountTokensBody.Length / 1024.0:0.0} KB), concurrency {_o.CountTokensConcurrency}, {_o.CountTokensSeconds:0.#} s");
        var warm = new PathResult();
        await RunSliceAsync(Target.CountTokens, _o.CountTokensConcurrency, TimeSpan.FromSeconds(30), _o.Quick ? 200 : 1000, warm);
        await WaitQuietAsync();
        var result = new PathResult();
        var m0 = MachineLoad.Read();
        _gatewaySampler!.Reset();
        await RunSliceAsync(Target.CountTokens, _o.CountTokensConcurrency, TimeSpan.FromSeconds(_o.CountTokensSeconds), 10_000_000, result);
        var peak = _gatewaySampler.Read();
        var cpu = result.Cpu.Gateway / Math.Max(1, result.Samples.Count);
        var gwCores = result.Cpu.Gateway / 1000 / result.WallSeconds;
        var clientCores = result.Cpu.Client / 1000 / result.WallSeconds;
        var foreign = Math.Max(0, MachineLoad.BusyCores(m0, MachineLoad.Read()) - (result.Cpu.Gateway + result.Cpu.Upstream + result.Cpu.Azurite + result.Cpu.Client) / 1000 / result.WallSeconds);
        Console.WriteLine($"  count_tokens: {Fmt.N(result.Rps, 0)} req/s, latency p50 {Fmt.N(result.Total.P(0.5))} ms p99 {Fmt.N(result.Total.P(0.99))} ms, {result.Samples.Count} requests, {result.Errors} errors; gateway {Fmt.N(cpu, 3)} CPU ms/request ({Fmt.N(gwCores, 2)} cores), client {Fmt.N(clientCores, 2)} cores, outside the bench {Fmt.N(foreign, 2)} cores; peak RSS {Fmt.N(peak.PeakRssMb, 1)} MB");
        foreach (var (error, count) in result.ErrorKinds.Take(3))
        {
            Console.WriteLine($"  error ×{count}: {error}");
        }

        Emit(new JsonObject
        {
            ["kind"] = "count_tokens",
            ["tools"] = BenchRequests.ToolCount,
            ["body_bytes"] = _client.CountTokensBody.Length,
            ["concurrency"] = _o.CountTokensConcurrency,
            ["rps"] = Distribution.Round(result.Rps, 1),
            ["latency_ms"] = result.Total.ToJson(),
            ["requests"] = result.Samples.Count,
            ["errors"] = result.Errors,
            ["gateway_cpu_ms_per_request"] = Distribution.Round(cpu),
            ["gateway_cores"] = Distribution.Round(gwCores),
            ["client_cores"] = Distribution.Round(clientCores),
            ["foreign_cores"] = Distribution.Round(foreign, 2),
            ["gateway_peak_rss_mb"] = Distribution.Round(peak.PeakRssMb, 1),
        });
        _figures["count_tokens.rps"] = result.Rps;
        _figures["count_tokens.errors"] = result.Errors;
    }

    private async Task SlowStreamsAsync()
    {
        var n = _o.SlowStreams;
        var scenario = new Scenario(_o.SlowTokens, 1, 1000, 0, false);
        Step($"slow streams: {n} concurrent, {scenario.Tokens} tokens at one token per second (~{scenario.Tokens} s each)");
        await SetScenarioAsync(scenario);
        await DrainAsync(TimeSpan.FromSeconds(20));
        await Task.Delay(1000);
        var before = ProcStats.ReadStatus(_gateway!.Pid);
        await UpstreamStatsAsync(reset: true);
        _gatewaySampler!.Reset();
        var cpuBefore = Cpu();
        var t0 = Stopwatch.GetTimestamp();

        var samples = new Sample[n];
        var messages = new Uri(_gatewayBase + "/v1/messages?beta=true");
        var streams = new Task[n];
        var probes = new List<double>();
        var probeErrors = 0;
        using var stopProbe = new CancellationTokenSource();
        var tiny = BenchRequests.TinyCountTokens();
        var probeWorker = new LoadClient.Worker();
        var probeTask = Task.Run(async () =>
        {
            // Thread-pool health: a tiny count_tokens every 250 ms must stay fast while the streams run.
            while (!stopProbe.IsCancellationRequested)
            {
                var s = await _client!.CountTokensAsync(probeWorker, tiny, CancellationToken.None);
                lock (probes)
                {
                    if (s.Error is null)
                    {
                        probes.Add(Distribution.TicksToMs(s.TotalTicks));
                    }
                    else
                    {
                        probeErrors++;
                    }
                }

                try
                {
                    await Task.Delay(250, stopProbe.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });

        // Ramp up over ~2 s (50 streams per 100 ms) so the listen backlogs are not the thing being measured.
        for (var i = 0; i < n; i++)
        {
            var index = i;
            var worker = _workers[i];
            streams[i] = Task.Run(async () => samples[index] = await _client!.GatewayAsync(worker, messages, _client.MessagesBody, CancellationToken.None));
            if (i % 50 == 49)
            {
                await Task.Delay(100);
            }
        }

        var midThreads = 0;
        var monitor = Task.Run(async () =>
        {
            while (!streams.All(t => t.IsCompleted))
            {
                midThreads = Math.Max(midThreads, ProcStats.ReadStatus(_gateway.Pid).Threads);
                await Task.Delay(500);
            }
        });
        var all = Task.WhenAll(streams);
        if (await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(scenario.Tokens + 60))) != all)
        {
            Console.WriteLine("  slow streams did not finish in time; counting unfinished ones as errors");
        }

        await monitor.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { });
        var wall = Distribution.TicksToMs(Stopwatch.GetTimestamp() - t0) / 1000;
        var peak = _gatewaySampler.Read();
        var upstreamStats = await UpstreamStatsAsync();
        stopProbe.Cancel();
        await probeTask;
        await Task.Delay(3000);
        var after = ProcStats.ReadStatus(_gateway.Pid);
        var cpu = Cpu() - cpuBefore;

        var finished = samples.Where((s, i) => streams[i].IsCompletedSuccessfully).ToList();
        var ok = finished.Where(s => s.Error is null).ToList();
        var errors = n - ok.Count;
        var ttft = new Distribution(ok.Select(s => Distribution.TicksToMs(s.TtftTicks)));
        var total = new Distribution(ok.Select(s => Distribution.TicksToMs(s.TotalTicks)));
        var probe = new Distribution(probes);
        Console.WriteLine($"  {ok.Count}/{n} streams valid, {errors} errors; upstream saw max {upstreamStats?["max_active"]} concurrent streams");
        Console.WriteLine($"  stream TTFT p50 {Fmt.N(ttft.P(0.5))} ms p99 {Fmt.N(ttft.P(0.99))} ms max {Fmt.N(ttft.Max)} ms; total p50 {Fmt.N(total.P(0.5) / 1000, 2)} s max {Fmt.N(total.Max / 1000, 2)} s (upstream pacing {scenario.Tokens} s)");
        Console.WriteLine($"  probe (tiny count_tokens every 250 ms during the streams): p50 {Fmt.N(probe.P(0.5))} ms p99 {Fmt.N(probe.P(0.99))} ms max {Fmt.N(probe.Max)} ms, {probe.Count} ok, {probeErrors} errors");
        Console.WriteLine($"  gateway RSS: before {Fmt.N(before.RssMb, 1)} MB, peak {Fmt.N(peak.PeakRssMb, 1)} MB (VmHWM {Fmt.N(peak.HwmMb, 1)}), after {Fmt.N(after.RssMb, 1)} MB; threads: before {before.Threads}, peak {Math.Max(peak.PeakThreads, midThreads)}, after {after.Threads}");
        Console.WriteLine($"  gateway CPU {Fmt.N(cpu.Gateway / 1000, 2)} s over {Fmt.N(wall, 1)} s ({Fmt.N(cpu.Gateway / Math.Max(1, n), 2)} ms per stream)");
        foreach (var group in samples.Where(s => s.Error is not null).GroupBy(s => s.Error).Take(3))
        {
            Console.WriteLine($"  error ×{group.Count()}: {group.Key}");
        }

        Emit(new JsonObject
        {
            ["kind"] = "slow_streams",
            ["streams"] = n,
            ["tokens_per_stream"] = scenario.Tokens,
            ["ok"] = ok.Count,
            ["errors"] = errors,
            ["upstream_max_concurrent"] = upstreamStats?["max_active"]?.DeepClone(),
            ["ttft_ms"] = ttft.ToJson(),
            ["total_ms"] = total.ToJson(),
            ["probe_ms"] = probe.ToJson(),
            ["probe_errors"] = probeErrors,
            ["gateway_rss_mb"] = new JsonObject { ["before"] = Distribution.Round(before.RssMb, 1), ["peak"] = Distribution.Round(peak.PeakRssMb, 1), ["after"] = Distribution.Round(after.RssMb, 1) },
            ["gateway_threads"] = new JsonObject { ["before"] = before.Threads, ["peak"] = Math.Max(peak.PeakThreads, midThreads), ["after"] = after.Threads },
            ["gateway_cpu_ms_per_stream"] = Distribution.Round(cpu.Gateway / Math.Max(1, n)),
        });
        _figures["slow.rss"] = peak.PeakRssMb;
        _figures["slow.errors"] = errors + probeErrors;
        _figures["slow.streams"] = n;
    }

    private void ReportStarts(List<StartResult> starts)
    {
        var served = new Distribution(starts.Select(s => s.FirstServedMs));
        Console.WriteLine($"\nStart (process launch → first successful streamed /v1/messages), {starts.Count} launch(es): {string.Join(", ", starts.Select(s => Fmt.N(s.FirstServedMs, 0) + " ms"))}; median {Fmt.N(served.P(0.5), 0)} ms");
        Console.WriteLine("  (launches happen first, on a fresh Azurite: the first also meets a cold Azurite and seeds the empty model catalog)");
        Emit(new JsonObject
        {
            ["kind"] = "start",
            ["launches"] = starts.Count,
            ["first_served_ms"] = new JsonArray(starts.Select(s => Distribution.Round(s.FirstServedMs, 1)).ToArray()),
            ["first_http_answer_ms"] = new JsonArray(starts.Select(s => Distribution.Round(s.ListeningMs, 1)).ToArray()),
            ["median_first_served_ms"] = Distribution.Round(served.P(0.5), 1),
            ["rss_after_start_mb"] = Distribution.Round(starts[0].RssMb, 1),
        });
        _figures["start.ms"] = served.P(0.5);
    }

    /// <summary>Prints PASS/MISS against the issue's targets. Never fails the run: figures are printed, not asserted.</summary>
    private int ReportTargets()
    {
        double F(string key) => _figures.TryGetValue(key, out var v) ? v : double.NaN;
        var rss32 = new[] { "c32-d0-text", "c32-d0-tool", "c32-d5-text", "c32-d5-tool" }.Select(l => F(l + ".rss")).Where(v => !double.IsNaN(v)).DefaultIfEmpty(double.NaN).Max();
        var errors = _figures.Where(kv => kv.Key.EndsWith(".errors", StringComparison.Ordinal) && kv.Key != "slow.errors").Sum(kv => kv.Value);
        var targets = new (string Name, double Value, string Unit, double Limit, bool AtMost)[]
        {
            ("added TTFT p50, C=1, 0 ms, text", F("c1-d0-text.added_ttft_p50"), "ms", 0.5, true),
            ("throughput C=32, 0 ms, 200 tok, text (× direct)", F("c32-d0-text.ratio"), "×", 0.7, false),
            ("gateway CPU per 200-token stream (C=32, 0 ms)", F("c32-d0-text.cpu"), "ms", 1.0, true),
            ("peak RSS at C=32", rss32, "MB", 120, true),
            ($"{F("slow.streams"):0} slow streams: peak RSS", F("slow.rss"), "MB", 300, true),
            ($"{F("slow.streams"):0} slow streams: errors", F("slow.errors"), "", 0, true),
            ("count_tokens (25 tools)", F("count_tokens.rps"), "req/s", 5000, false),
            ("start → first served request", F("start.ms") / 1000, "s", 1.0, true),
            ("stream errors (all settings)", errors, "", 0, true),
        };

        Console.WriteLine("\nTargets (2-core machine; figures are printed, not asserted):");
        var misses = 0;
        var json = new JsonArray();
        foreach (var (name, value, unit, limit, atMost) in targets)
        {
            var pass = !double.IsNaN(value) && (atMost ? value <= limit : value >= limit);
            var verdict = double.IsNaN(value) ? "n/a " : pass ? "PASS" : "MISS";
            if (verdict == "MISS")
            {
                misses++;
            }

            Console.WriteLine($"  {verdict}  {name,-52} {Fmt.N(value, 3),10} {unit,-6} (target {(atMost ? "≤" : "≥")} {limit.ToString(CultureInfo.InvariantCulture)} {unit})");
            json.Add(new JsonObject { ["target"] = name, ["value"] = Distribution.Round(value), ["limit"] = limit, ["at_most"] = atMost, ["verdict"] = verdict.Trim() });
        }

        Emit(new JsonObject { ["kind"] = "targets", ["quick"] = _o.Quick, ["misses"] = misses, ["targets"] = json });
        return misses;
    }

    public void Dispose()
    {
        // Every step on its own: one failure must not leave a child process running.
        foreach (var step in new Action[]
        {
            () => _gatewaySampler?.Dispose(),
            () => _client?.Dispose(),
            () => _control.Dispose(),
            () => _gateway?.Dispose(),
            () => _upstream?.Dispose(),
            () => _azurite?.Dispose(),
            () => _services?.Dispose(),
            ChildProcess.KillAll,
            () => Directory.Delete(_work, recursive: true),
        })
        {
            try
            {
                step();
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or UnauthorizedAccessException or ObjectDisposedException)
            {
            }
        }
    }
}

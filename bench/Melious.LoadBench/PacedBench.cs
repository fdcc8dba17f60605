using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Bench;

namespace Melious.LoadBench;

/// <summary>One paced setting: closed-loop workers (<see cref="Burst"/> = false) or N streams at once.</summary>
public sealed record PacedSetting(string Label, int Concurrency, int DelayMs, int TtftMs, int Tokens, bool Burst);

/// <summary>
/// The paced streaming pass (docs/benchmarks-paced.md). Real model servers write one chunk per token, 5–50 ms apart,
/// so each token costs the proxy a wake-up, a read, (for the gateway) a translation, a write and a flush. The scripted
/// upstream streams a small request's answer token by token (one write+flush per chunk) after a first-token delay, and
/// the same streams are measured on four paths, interleaved round by round:
/// <list type="bullet">
/// <item>direct: the OpenAI request straight to the upstream (the baseline);</item>
/// <item>nginx: Debian's nginx, one worker, <c>proxy_buffering off</c>, carrying the same OpenAI stream;</item>
/// <item>YARP: bench/Melious.YarpAnchor (Yarp.ReverseProxy, defaults), carrying the same OpenAI stream;</item>
/// <item>the gateway: the Anthropic request, translated to OpenAI and back, usage pipeline on.</item>
/// </list>
/// Every stream on every path is validated as in the other settings. Printed per path: streams, errors, TTFT p50/p99
/// and added TTFT (path − direct of the same rounds), CPU per streamed token of the proxy process(es), the upstream's
/// and the client's CPU per token, and peak RSS. Figures are printed, never asserted.
/// </summary>
public sealed partial class Bench
{
    private const string PathDirect = "direct";
    private const string PathNginx = "nginx";
    private const string PathYarp = "YARP";

    private readonly List<JsonObject> _pacedRows = [];
    private ChildProcess? _nginx;
    private string _nginxBase = "";
    private ChildProcess? _yarp;
    private string _yarpBase = "";
    private LoadClient.Worker[] _pacedWorkers = [];

    /// <summary>Only paced settings were asked for (<c>--only paced…</c>): the classic warm-up and targets are skipped.</summary>
    private bool PacedOnly => _o.Paced.Enabled && _o.Only.Count > 0 && _o.Only.All(l => l.StartsWith("paced", StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// The gateway pass's label: the self-host as built (a .dll run with dotnet: JIT), the published JIT build (an
    /// executable with its runtimeconfig.json: scripts/publish-selfhost.sh, trimmed, ReadyToRun, self-contained), a
    /// Native AOT executable (no runtimeconfig), or the Functions host.
    /// </summary>
    private string PacedGatewayLabel =>
        _functions ? "Functions host"
        : _gatewayDll.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? "self-host JIT"
        : File.Exists(_gatewayDll + ".runtimeconfig.json") ? PathPublished
        : "self-host AOT";

    /// <summary>The path label of the published JIT build (scripts/publish-selfhost.sh).</summary>
    private const string PathPublished = "self-host R2R";

    private List<PacedSetting> PacedSettings()
    {
        var p = _o.Paced;
        if (_o.Quick)
        {
            // The smoke run: proves every path works, in a few seconds.
            return [new PacedSetting("paced-c1", 1, 2, Math.Min(p.TtftMs, 5), Math.Min(p.Tokens, 20), false)];
        }

        var all = new List<PacedSetting>
        {
            // C=1 measures first-token latency: 50-token streams give ~35 streams per path in the default 10 s (a p50 of
            // 10 streams moved by tenths of a millisecond between runs); the later tokens do not change it.
            new("paced-c1", 1, 5, p.TtftMs, Math.Min(p.Tokens, 50), false),
            new("paced-c64", 64, 10, p.TtftMs, p.Tokens, false),
            new("paced-c64-d0", 64, 0, p.TtftMs, p.Tokens, false),
            new("paced-1000", p.BurstStreams, p.BurstDelayMs, p.TtftMs, p.Tokens, true),
        };
        var chosen = all.Where(s => _o.Only.Contains(s.Label)).ToList();
        return chosen.Count > 0 ? chosen : all;
    }

    /// <summary>
    /// A small (~2 KB) streaming Messages request, as in the issue's measurement: a system prompt and one user turn,
    /// no tools. Deterministic.
    /// </summary>
    internal static byte[] PacedRequestBody()
    {
        var system = new StringBuilder();
        while (system.Length < 1400)
        {
            system.Append("You are a careful coding assistant. Answer briefly, cite file paths, and prefer small, reviewable changes. ");
        }

        var body = new JsonObject
        {
            ["model"] = BenchRequests.Model,
            ["max_tokens"] = 4096,
            ["stream"] = true,
            ["system"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = system.ToString() }),
            ["messages"] = new JsonArray(new JsonObject
            {
                ["role"] = "user",
                ["content"] = "Why does the build fail after the parser change? `Peek()` now returns `Token?` and `Expect` dereferences it; explain and fix it.",
            }),
        };
        return Encoding.UTF8.GetBytes(body.ToJsonString());
    }

    /// <summary>
    /// Runs the paced settings on every path. <paramref name="withAnchors"/> starts nginx and YARP (first pass only;
    /// the Functions pass measures its gateway against a fresh direct baseline and reuses the anchors' rows).
    /// </summary>
    private async Task PacedPassAsync(double gatewayIdleCpuPerSecond, bool withAnchors)
    {
        if (!_o.Paced.Enabled)
        {
            return;
        }

        var settings = PacedSettings();
        var clock = Stopwatch.StartNew();
        Console.WriteLine();
        Step($"paced pass ({PacedGatewayLabel}): {string.Join(", ", settings.Select(s => s.Label))}; small request ({PacedRequestBody().Length} B), one upstream write+flush per token");

        var body = PacedRequestBody();
        var gatewayClient = new LoadClient(_gatewayBase, _upstreamBase, _apiKey) { MessagesBody = body, Expected = new ScenarioPayload(new Scenario(settings[0].Tokens, 1, 0, 0, false)) };
        await SetScenarioAsync(new Scenario(settings[0].Tokens, 1, 0, 0, false));
        (await _control.PostAsync(_upstreamBase + "/control/capture", null)).EnsureSuccessStatusCode();
        _pacedWorkers = _pacedWorkers.Length > 0 ? _pacedWorkers : Enumerable.Range(0, Math.Max(64, settings.Max(s => s.Concurrency))).Select(_ => new LoadClient.Worker()).ToArray();
        var capture = await gatewayClient.GatewayAsync(_pacedWorkers[0], new Uri(_gatewayBase + "/v1/messages?beta=true"), body, CancellationToken.None);
        if (capture.Error is not null)
        {
            throw new InvalidOperationException("paced pass: capture request failed: " + capture.Error);
        }

        gatewayClient.DirectBody = await _control.GetByteArrayAsync(_upstreamBase + "/control/captured");
        Console.WriteLine($"  direct body: the gateway's own upstream request for it, captured ({gatewayClient.DirectBody.Length} B)");

        // path → (client, target, CPU reader, RSS pid)
        var paths = new List<(string Name, LoadClient Client, Target Target, Func<double> CpuMs, int RssPid)>
        {
            (PathDirect, gatewayClient, Target.Direct, () => 0, 0),
        };
        if (withAnchors)
        {
            await StartAnchorsAsync();
            if (_nginx is not null)
            {
                var nginxClient = new LoadClient(_gatewayBase, _nginxBase, _apiKey) { DirectBody = gatewayClient.DirectBody };
                var master = _nginx.Pid;
                var worker = ProcStats.Children(master).Select(c => c.Pid).FirstOrDefault();
                paths.Add((PathNginx, nginxClient, Target.Direct, () => ProcStats.CpuMs(master) + ProcStats.Children(master).Sum(c => ProcStats.CpuMs(c.Pid)), worker > 0 ? worker : master));
            }

            if (_yarp is not null)
            {
                var yarpClient = new LoadClient(_gatewayBase, _yarpBase, _apiKey) { DirectBody = gatewayClient.DirectBody };
                var pid = _yarp.Pid;
                paths.Add((PathYarp, yarpClient, Target.Direct, () => ProcStats.CpuMs(pid), pid));
            }
        }

        paths.Add((PacedGatewayLabel, gatewayClient, Target.Gateway, () => Cpu().Gateway, _gateway!.Pid));
        var samplers = paths.Where(p => p.RssPid > 0).ToDictionary(p => p.Name, p => new RssSampler(p.RssPid));
        try
        {
            // Warm-up of every path (JIT of the anchor and of the small-request path), unpaced; twice outside --quick,
            // so that most hot methods reached tier 1 before anything is measured.
            await SetScenarioAsync(new Scenario(settings[0].Tokens, 1, 0, 0, false));
            foreach (var path in _o.Quick ? paths : [.. paths, .. paths])
            {
                path.Client.Expected = new ScenarioPayload(new Scenario(settings[0].Tokens, 1, 0, 0, false));
                var warm = new PathResult();
                await PacedSliceAsync(path.Client, path.Target, 8, TimeSpan.FromSeconds(_o.Quick ? 2 : 10), _o.Quick ? 20 : 4 * _o.WarmupRequests, warm);
                if (warm.Errors > 0)
                {
                    Console.WriteLine($"  warm-up {path.Name}: {warm.Errors} errors, first: {warm.ErrorKinds.First().Error}");
                }
            }

            if (!_o.Quick)
            {
                // The figures are about processes that have been serving for a while: every .NET process (the gateway,
                // the YARP anchor, the upstream, this client) keeps recompiling hot methods at tier 1 for a while after
                // the fixed warm-up, and that compiler work (and its locks) would land on the first measured streams.
                int[] pids = [.. new[] { _gateway!.Pid, _workerPid, _upstream!.Pid, _yarp?.Pid ?? 0, Environment.ProcessId }.Where(pid => pid > 0)];
                await SettleJitAsync("paced_jit_settle_s", pids, async () =>
                {
                    foreach (var path in paths)
                    {
                        foreach (var concurrency in new[] { 1, 8 })
                        {
                            await PacedSliceAsync(path.Client, path.Target, concurrency, TimeSpan.FromSeconds(0.5), int.MaxValue, new PathResult());
                        }
                    }
                });
            }

            await DrainAsync(TimeSpan.FromSeconds(30));
            var idle = new Dictionary<string, double>(StringComparer.Ordinal) { [PacedGatewayLabel] = gatewayIdleCpuPerSecond };
            foreach (var path in paths.Where(p => p.Name is PathNginx or PathYarp))
            {
                var before = path.CpuMs();
                await Task.Delay(_o.Quick ? 500 : 2000);
                idle[path.Name] = (path.CpuMs() - before) / (_o.Quick ? 0.5 : 2.0);
            }

            foreach (var setting in settings)
            {
                var scenario = new Scenario(setting.Tokens, 1, setting.DelayMs, setting.TtftMs, false);
                await SetScenarioAsync(scenario);
                foreach (var path in paths)
                {
                    path.Client.Expected = new ScenarioPayload(scenario);
                }

                if (setting.Burst)
                {
                    await PacedBurstAsync(setting, paths, samplers, idle);
                }
                else
                {
                    await PacedSettingAsync(setting, paths, samplers, idle);
                }
            }
        }
        finally
        {
            foreach (var sampler in samplers.Values)
            {
                sampler.Dispose();
            }

            foreach (var client in paths.Select(p => p.Client).Distinct())
            {
                client.Dispose();
            }

            if (withAnchors)
            {
                StopAnchors();
            }
        }

        PrintPacedTable(_pacedRows, Console.Out);
        PrintPacedTargets();
        var file = Path.Combine(_outDir, "paced.json");
        await File.WriteAllTextAsync(file, new JsonArray(_pacedRows.Select(r => (JsonNode)r.DeepClone()).ToArray()).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var loaded = _pacedRows.Any(r => (r["foreign_cores"]?.GetValue<double>() ?? 0) > 0.25);
        Console.WriteLine($"  (paced pass took {Fmt.N(clock.Elapsed.TotalSeconds, 0)} s; rows: {file}{(loaded ? "; other load on the machine: figures are indicative" : "")})");
    }

    private sealed class PacedMeasure
    {
        public PathResult Result { get; } = new();

        public double ProxyCpuMs { get; set; }

        public double UpstreamCpuMs { get; set; }

        public double ClientCpuMs { get; set; }

        public double Seconds { get; set; }
    }

    /// <summary>Closed-loop setting: rounds of one slice per path (direct first), the gateway's usage drain charged to it.</summary>
    private async Task PacedSettingAsync(PacedSetting setting, List<(string Name, LoadClient Client, Target Target, Func<double> CpuMs, int RssPid)> paths,
        Dictionary<string, RssSampler> samplers, Dictionary<string, double> idle)
    {
        Step($"paced setting {setting.Label}: C={setting.Concurrency}, {setting.Tokens} tokens, first token after {setting.TtftMs} ms, then one every {setting.DelayMs} ms");
        foreach (var path in paths)
        {
            // A short warm-up of this exact setting (connections opened at this concurrency).
            await PacedSliceAsync(path.Client, path.Target, setting.Concurrency, TimeSpan.FromSeconds(_o.Quick ? 0.3 : 1), 2 * setting.Concurrency, new PathResult());
        }

        await DrainAsync(TimeSpan.FromSeconds(15));
        var quiet = await WaitQuietAsync();
        foreach (var sampler in samplers.Values)
        {
            sampler.Reset();
        }

        var measures = paths.ToDictionary(p => p.Name, _ => new PacedMeasure());
        // --quick: a handful of streams per path (bounded by count and by 3 s), enough to prove each path works.
        var slice = TimeSpan.FromSeconds(_o.Quick ? 3 : _o.MeasureSeconds / _o.Rounds);
        var perSlice = _o.Quick ? 8 * setting.Concurrency : 1_000_000;
        var machine0 = MachineLoad.Read();
        var t0 = Stopwatch.GetTimestamp();
        double benchCpu = 0;
        for (var round = 0; round < (_o.Quick ? 1 : _o.Rounds); round++)
        {
            foreach (var path in paths)
            {
                var m = measures[path.Name];
                var proxy0 = path.CpuMs();
                var cpu0 = Cpu();
                var s0 = Stopwatch.GetTimestamp();
                await PacedSliceAsync(path.Client, path.Target, setting.Concurrency, slice, perSlice, m.Result);
                if (path.Target == Target.Gateway)
                {
                    await DrainAsync(TimeSpan.FromSeconds(_o.Quick ? 5 : 15));
                }

                var seconds = Distribution.TicksToMs(Stopwatch.GetTimestamp() - s0) / 1000;
                var d = Cpu() - cpu0;
                var proxy = path.CpuMs() - proxy0;
                m.ProxyCpuMs += proxy;
                m.UpstreamCpuMs += d.Upstream;
                m.ClientCpuMs += d.Client;
                m.Seconds += seconds;
                benchCpu += d.Upstream + d.Client + d.Azurite + (path.Target == Target.Gateway ? 0 : d.Gateway) + proxy;
            }
        }

        var wall = Distribution.TicksToMs(Stopwatch.GetTimestamp() - t0) / 1000;
        var foreign = Math.Max(0, MachineLoad.BusyCores(machine0, MachineLoad.Read()) - benchCpu / 1000 / wall);
        RecordPaced(setting, paths.Select(p => (p.Name, measures[p.Name], samplers.GetValueOrDefault(p.Name), idle.GetValueOrDefault(p.Name))).ToList(), foreign, quiet);
    }

    /// <summary>The burst setting: N streams at once (ramped over ~2 s) per path, one path after the other.</summary>
    private async Task PacedBurstAsync(PacedSetting setting, List<(string Name, LoadClient Client, Target Target, Func<double> CpuMs, int RssPid)> paths,
        Dictionary<string, RssSampler> samplers, Dictionary<string, double> idle)
    {
        var n = setting.Concurrency;
        Step($"paced setting {setting.Label}: {n} concurrent streams per path, {setting.Tokens} tokens, first after {setting.TtftMs} ms, then one every {setting.DelayMs} ms (~{Fmt.N((setting.TtftMs + setting.Tokens * setting.DelayMs) / 1000.0, 0)} s each)");
        if (_pacedWorkers.Length < n)
        {
            _pacedWorkers = [.. _pacedWorkers, .. Enumerable.Range(0, n - _pacedWorkers.Length).Select(_ => new LoadClient.Worker())];
        }

        await DrainAsync(TimeSpan.FromSeconds(15));
        var quiet = await WaitQuietAsync();
        var measures = new List<(string, PacedMeasure, RssSampler?, double)>();
        var machine0 = MachineLoad.Read();
        var t0 = Stopwatch.GetTimestamp();
        double benchCpu = 0;
        foreach (var path in paths)
        {
            var m = new PacedMeasure();
            var sampler = samplers.GetValueOrDefault(path.Name);
            sampler?.Reset();
            var proxy0 = path.CpuMs();
            var cpu0 = Cpu();
            var s0 = Stopwatch.GetTimestamp();
            var samples = new Sample[n];
            var streams = new Task[n];
            for (var i = 0; i < n; i++)
            {
                var index = i;
                var worker = _pacedWorkers[i];
                var client = path.Client;
                streams[i] = Task.Run(async () => samples[index] = await client.SendAsync(path.Target, worker, CancellationToken.None));
                if (i % 50 == 49)
                {
                    await Task.Delay(100);
                }
            }

            var all = Task.WhenAll(streams);
            var limit = TimeSpan.FromSeconds(60 + (setting.TtftMs + setting.Tokens * setting.DelayMs) / 1000.0);
            if (await Task.WhenAny(all, Task.Delay(limit)) != all)
            {
                Console.WriteLine($"  {path.Name}: streams did not finish within {limit.TotalSeconds:0} s; unfinished ones count as errors");
            }

            if (path.Target == Target.Gateway)
            {
                await DrainAsync(TimeSpan.FromSeconds(30));
            }

            for (var i = 0; i < n; i++)
            {
                m.Result.Samples.Add(streams[i].IsCompletedSuccessfully ? samples[i] : new Sample(0, 0, "unfinished"));
            }

            var d = Cpu() - cpu0;
            var proxy = path.CpuMs() - proxy0;
            m.ProxyCpuMs = proxy;
            m.UpstreamCpuMs = d.Upstream;
            m.ClientCpuMs = d.Client;
            m.Seconds = Distribution.TicksToMs(Stopwatch.GetTimestamp() - s0) / 1000;
            benchCpu += d.Upstream + d.Client + d.Azurite + (path.Target == Target.Gateway ? 0 : d.Gateway) + proxy;
            measures.Add((path.Name, m, sampler, idle.GetValueOrDefault(path.Name)));
            await Task.Delay(1000);
        }

        var wall = Distribution.TicksToMs(Stopwatch.GetTimestamp() - t0) / 1000;
        var foreign = Math.Max(0, MachineLoad.BusyCores(machine0, MachineLoad.Read()) - benchCpu / 1000 / wall);
        RecordPaced(setting, measures, foreign, quiet);
    }

    private async Task PacedSliceAsync(LoadClient client, Target target, int concurrency, TimeSpan duration, int maxRequests, PathResult into)
    {
        var start = Stopwatch.GetTimestamp();
        var deadline = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var issued = 0;
        var tasks = new Task[concurrency];
        for (var i = 0; i < concurrency; i++)
        {
            var worker = _pacedWorkers[i];
            tasks[i] = Task.Run(async () =>
            {
                while (Stopwatch.GetTimestamp() < deadline && Interlocked.Increment(ref issued) <= maxRequests)
                {
                    var sample = await client.SendAsync(target, worker, CancellationToken.None);
                    lock (into.Samples)
                    {
                        into.Samples.Add(sample);
                    }
                }
            });
        }

        await Task.WhenAll(tasks);
        into.WallSeconds += Distribution.TicksToMs(Stopwatch.GetTimestamp() - start) / 1000;
    }

    private void RecordPaced(PacedSetting setting, List<(string Name, PacedMeasure M, RssSampler? Sampler, double IdlePerSecond)> measures, double foreign, bool quiet)
    {
        var direct = measures.First(m => m.Name == PathDirect).M.Result;
        var directP50 = direct.Ttft.P(0.5);
        var directP99 = direct.Ttft.P(0.99);
        var sb = new StringBuilder();
        sb.AppendLine($"  ┌ {setting.Label} ({(setting.Burst ? $"{setting.Concurrency} streams at once" : $"C={setting.Concurrency}")}, {setting.Tokens} tokens, TTFT {setting.TtftMs} ms, {setting.DelayMs} ms/token): added = path − direct; CPU = proxy process(es) per streamed token, idle burn subtracted, the gateway's incl. its usage pipeline");
        sb.AppendLine($"  │ {"path",-16}{"streams",8}{"err",5}{"TTFT p50",10}{"p99",9}{"added p50",11}{"added p99",11}{"CPU µs/tok",12}{"RSS MB",8}{"upstr µs/tok",14}{"client µs/tok",15}");
        foreach (var (name, m, sampler, idlePerSecond) in measures)
        {
            var r = m.Result;
            var tokens = (double)r.Ok * setting.Tokens;
            var proxyCpu = name == PathDirect ? double.NaN : Math.Max(0, m.ProxyCpuMs - idlePerSecond * m.Seconds);
            var cpuPerToken = tokens > 0 ? proxyCpu * 1000 / tokens : double.NaN;
            var upstreamPerToken = tokens > 0 ? m.UpstreamCpuMs * 1000 / tokens : double.NaN;
            var clientPerToken = tokens > 0 ? m.ClientCpuMs * 1000 / tokens : double.NaN;
            var peak = sampler?.Read();
            var rss = peak?.PeakRssMb ?? double.NaN;
            var p50 = r.Ttft.P(0.5);
            var p99 = r.Ttft.P(0.99);
            var addedP50 = name == PathDirect ? 0 : p50 - directP50;
            var addedP99 = name == PathDirect ? 0 : p99 - directP99;
            sb.AppendLine($"  │ {name,-16}{r.Samples.Count,8}{r.Errors,5}{Fmt.N(p50),10}{Fmt.N(p99),9}{Fmt.Signed(addedP50),11}{Fmt.Signed(addedP99),11}{Fmt.N(cpuPerToken, 1),12}{Fmt.N(rss, 0),8}{Fmt.N(upstreamPerToken, 1),14}{Fmt.N(clientPerToken, 1),15}");
            foreach (var (error, count) in r.ErrorKinds.Take(3))
            {
                sb.AppendLine($"  │   {name} error ×{count}: {error}");
            }

            var row = new JsonObject
            {
                ["kind"] = "paced",
                ["path"] = name,
                ["setting"] = setting.Label,
                ["burst"] = setting.Burst,
                ["concurrency"] = setting.Concurrency,
                ["tokens"] = setting.Tokens,
                ["delay_ms"] = setting.DelayMs,
                ["upstream_ttft_ms"] = setting.TtftMs,
                ["streams"] = r.Samples.Count,
                ["errors"] = r.Errors,
                ["ttft_ms"] = r.Ttft.ToJson(),
                ["added_ttft_p50_ms"] = Distribution.Round(addedP50),
                ["added_ttft_p99_ms"] = Distribution.Round(addedP99),
                ["cpu_us_per_token"] = Distribution.Round(cpuPerToken, 1),
                ["upstream_cpu_us_per_token"] = Distribution.Round(upstreamPerToken, 1),
                ["client_cpu_us_per_token"] = Distribution.Round(clientPerToken, 1),
                ["peak_rss_mb"] = Distribution.Round(rss, 1),
                ["peak_threads"] = peak?.PeakThreads,
                ["foreign_cores"] = Distribution.Round(foreign, 2),
                ["quiet"] = quiet,
                ["quick"] = _o.Quick,
            };
            Emit(row);
            _pacedRows.RemoveAll(x => (string?)x["path"] == name && (string?)x["setting"] == setting.Label);
            _pacedRows.Add(row);

            // The gateway's own results count for --verify-usage (a billing and an energy row per stream).
            if (name == PacedGatewayLabel)
            {
                _settingRequests.Add(r);
            }
        }

        sb.Append($"  └ machine: outside the bench {Fmt.N(foreign, 2)} cores{(foreign > 0.25 ? "  ⚠ other load on the machine: figures are contended" : "")}{(quiet ? "" : " (no quiet window found)")}");
        Console.WriteLine(sb.ToString());
    }

    private static readonly string[] PacedPathOrder = [PathDirect, PathNginx, PathYarp, "self-host JIT", PathPublished, "self-host AOT", "Functions host"];

    /// <summary>The side-by-side table: per setting, one line per path (direct, nginx, YARP, self-host JIT/R2R/AOT, Functions host).</summary>
    public static void PrintPacedTable(IReadOnlyList<JsonObject> rows, TextWriter output)
    {
        if (rows.Count == 0)
        {
            return;
        }

        output.WriteLine("\nPaced streaming (one upstream write+flush per token; added TTFT = path − direct of the same run; CPU = µs per streamed token of the proxy process(es); printed, not asserted):");
        output.WriteLine($"  {"setting",-14}{"path",-16}{"streams",8}{"err",5}{"added p50",11}{"added p99",11}{"CPU µs/tok",12}{"RSS MB",8}{"other",7}");
        foreach (var setting in rows.Select(r => (string)r["setting"]!).Distinct())
        {
            var ofSetting = rows.Where(r => (string?)r["setting"] == setting)
                .OrderBy(r => Array.IndexOf(PacedPathOrder, (string?)r["path"]) is var i && i < 0 ? 99 : i).ToList();
            foreach (var r in ofSetting)
            {
                double D(string key) => r[key]?.GetValue<double>() ?? double.NaN;
                var direct = (string?)r["path"] == PathDirect;
                output.WriteLine($"  {setting,-14}{(string?)r["path"],-16}{r["streams"],8}{r["errors"],5}{(direct ? "—" : Fmt.Signed(D("added_ttft_p50_ms"))),11}{(direct ? "—" : Fmt.Signed(D("added_ttft_p99_ms"))),11}{(direct ? "—" : Fmt.N(D("cpu_us_per_token"), 1)),12}{(direct ? "—" : Fmt.N(D("peak_rss_mb"), 0)),8}{Fmt.N(D("foreign_cores"), 2),7}");
            }
        }
    }

    /// <summary><c>Melious.LoadBench paced-summary FILE...</c>: the paced rows of several runs (JIT, R2R, AOT, Functions) side by side.</summary>
    public static int PacedSummary(IEnumerable<string> files)
    {
        var rows = new List<JsonObject>();
        foreach (var file in files.Where(File.Exists))
        {
            if (JsonNode.Parse(File.ReadAllText(file)) is JsonArray array)
            {
                foreach (var row in array.OfType<JsonObject>())
                {
                    // The anchors and the direct baseline come from the first run that has them.
                    var path = (string?)row["path"];
                    var setting = (string?)row["setting"];
                    if (!rows.Any(r => (string?)r["path"] == path && (string?)r["setting"] == setting))
                    {
                        rows.Add((JsonObject)row.DeepClone());
                    }
                }
            }
        }

        PrintPacedTable(rows, Console.Out);
        return 0;
    }

    private void PrintPacedTargets()
    {
        double F(string path, string setting, string key) =>
            _pacedRows.FirstOrDefault(r => (string?)r["path"] == path && (string?)r["setting"] == setting)?[key]?.GetValue<double>() ?? double.NaN;
        var gw = PacedGatewayLabel;
        var burstErrors = _pacedRows.Where(r => (string?)r["setting"] == "paced-1000").Sum(r => r["errors"]?.GetValue<int>() ?? 0);
        var hasBurst = _pacedRows.Any(r => (string?)r["setting"] == "paced-1000");
        var targets = new (string Name, double Value, string Unit, double Limit)[]
        {
            ($"{gw}: CPU per streamed token, C=64, 10 ms", F(gw, "paced-c64", "cpu_us_per_token"), "µs", 40),
            ($"{gw}: added TTFT p50, C=1, paced", F(gw, "paced-c1", "added_ttft_p50_ms"), "ms", 0.5),
            ($"{gw}: peak RSS, C=64, paced", F(gw, "paced-c64", "peak_rss_mb"), "MB", 120),
            ("paced-1000: stream errors (all paths)", hasBurst ? burstErrors : double.NaN, "", 0),
        };
        var contended = _pacedRows.Any(r => (r["foreign_cores"]?.GetValue<double>() ?? 0) > 0.25);
        Console.WriteLine($"\nPaced targets ({gw}; {(contended ? "other load on the machine: indicative" : "quiet machine")}; printed, not asserted):");
        foreach (var (name, value, unit, limit) in targets)
        {
            var verdict = double.IsNaN(value) ? "n/a " : value <= limit ? "PASS" : "MISS";
            Console.WriteLine($"  {verdict}  {name,-52} {Fmt.N(value, 3),10} {unit,-6} (target ≤ {limit.ToString(CultureInfo.InvariantCulture)} {unit})");
        }

        var c64d0 = F(gw, "paced-c64-d0", "cpu_us_per_token");
        Console.WriteLine($"  (0 ms pacing, C=64: {Fmt.N(c64d0, 1)} µs per token; p99 added TTFT at C=1: {Fmt.Signed(F(gw, "paced-c1", "added_ttft_p99_ms"))} ms)");
    }

    private async Task StartAnchorsAsync()
    {
        var p = _o.Paced;
        if (p.Anchors.Contains("nginx"))
        {
            if (!File.Exists(p.Nginx))
            {
                Console.WriteLine($"SKIPPED: nginx anchor ({p.Nginx} not found; Debian: apt-get install nginx)");
            }
            else
            {
                var port = Net.FreePort();
                var dir = Path.Combine(_work, "nginx");
                Directory.CreateDirectory(Path.Combine(dir, "logs"));
                var upstreamPort = new Uri(_upstreamBase).Port;
                // One worker, no buffering either way, keep-alive to the upstream, nothing logged per request; every
                // path inside the temp dir (nginx -p), so no root-owned default paths are touched.
                var conf = $$"""
                    worker_processes 1;
                    worker_rlimit_nofile 16384;
                    daemon off;
                    master_process on;
                    pid {{dir}}/nginx.pid;
                    error_log {{dir}}/logs/error.log warn;
                    events { worker_connections 8192; multi_accept on; }
                    http {
                      access_log off;
                      client_body_temp_path {{dir}}/body;
                      proxy_temp_path {{dir}}/proxy;
                      fastcgi_temp_path {{dir}}/fastcgi;
                      uwsgi_temp_path {{dir}}/uwsgi;
                      scgi_temp_path {{dir}}/scgi;
                      client_max_body_size 64m;
                      client_body_buffer_size 1m;
                      keepalive_requests 1000000;
                      keepalive_timeout 300s;
                      upstream model { server 127.0.0.1:{{upstreamPort}}; keepalive 2048; keepalive_requests 1000000; }
                      server {
                        listen 127.0.0.1:{{port}};
                        location / {
                          proxy_pass http://model;
                          proxy_http_version 1.1;
                          proxy_set_header Connection "";
                          proxy_buffering off;
                          proxy_request_buffering off;
                          proxy_read_timeout 300s;
                        }
                      }
                    }
                    """;
                File.WriteAllText(Path.Combine(dir, "nginx.conf"), conf);
                _nginx = ChildProcess.Start("nginx", p.Nginx, ["-p", dir, "-c", Path.Combine(dir, "nginx.conf"), "-e", Path.Combine(dir, "logs", "error.log")]);
                _nginxBase = $"http://127.0.0.1:{port}";
                await Net.WaitOpenAsync(port, TimeSpan.FromSeconds(20), _nginx);
                Console.WriteLine($"  nginx anchor ({p.Nginx}, one worker, proxy_buffering off) pid {_nginx.Pid} on {_nginxBase}; config {dir}/nginx.conf");
            }
        }

        if (p.Anchors.Contains("yarp"))
        {
            var dll = p.YarpDll ?? Path.Combine(_repo, "bench", "Melious.YarpAnchor", "bin", "Release", "net10.0", "Melious.YarpAnchor.dll");
            if (!File.Exists(dll))
            {
                Console.WriteLine($"SKIPPED: YARP anchor ({dll} not found: dotnet build -c Release bench/Melious.YarpAnchor; scripts/bench.sh does)");
            }
            else
            {
                var port = Net.FreePort();
                _yarp = ChildProcess.Start("yarp", "dotnet",
                    [dll, "--port", port.ToString(CultureInfo.InvariantCulture), "--destination", _upstreamBase + "/", "--parent", Environment.ProcessId.ToString(CultureInfo.InvariantCulture)],
                    new Dictionary<string, string> { ["DOTNET_NOLOGO"] = "1" }, Path.GetDirectoryName(dll));
                _yarpBase = $"http://127.0.0.1:{port}";
                await Net.WaitOpenAsync(port, TimeSpan.FromSeconds(30), _yarp);
                Console.WriteLine($"  YARP anchor (Yarp.ReverseProxy 2.3.0, defaults) pid {_yarp.Pid} on {_yarpBase}");
            }
        }
    }

    private void StopAnchors()
    {
        _nginx?.Dispose();
        _nginx = null;
        _yarp?.Dispose();
        _yarp = null;
    }
}

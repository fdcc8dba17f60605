using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Melious.Bench;
using Melious.Gateway.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.LoadBench;

/// <summary>
/// <c>--pool</c>: the self-host in front of a pool of scripted upstreams (3 by default, each its own process) against
/// the same self-host in front of one endpoint, and against the upstream directly. The same Claude Code–shaped
/// streaming request goes to a catalog model with one base URL (<c>bench-sonnet</c>, the classic single-endpoint
/// path) and to a catalog model with N endpoint rows (<c>bench-pool</c>: rendezvous affinity, bounded load, a
/// circuit per endpoint). Printed per concurrency: TTFT p50/p99 and what the gateway adds over the direct path, gateway
/// CPU per request, and how the pool spread the requests. Never asserted.
/// </summary>
public sealed partial class Bench
{
    private const string PoolModel = "bench-pool";

    private readonly List<(ChildProcess Process, string BaseUrl)> _poolUpstreams = [];

    private async Task<int> PoolPassAsync(double idleCpuPerSecond)
    {
        Step($"pool: starting {_o.PoolEndpoints - 1} more scripted upstream(s) for a {_o.PoolEndpoints}-endpoint pool");
        for (var i = 1; i < _o.PoolEndpoints; i++)
        {
            var port = Net.FreePort();
            var (file, prefix) = RepoPaths.Self();
            var process = ChildProcess.Start($"upstream{i}", file,
                [.. prefix, "upstream", "--port", port.ToString(CultureInfo.InvariantCulture), "--parent", Environment.ProcessId.ToString(CultureInfo.InvariantCulture)],
                new Dictionary<string, string> { ["DOTNET_gcServer"] = "0", ["DOTNET_TieredPGO"] = "1" });
            var baseUrl = $"http://127.0.0.1:{port}";
            await Net.WaitOpenAsync(port, TimeSpan.FromSeconds(30), process);
            (await _control.GetAsync(baseUrl + "/health")).EnsureSuccessStatusCode();
            _poolUpstreams.Add((process, baseUrl));
        }

        var store = _services!.GetRequiredService<ModelCatalogStore>();
        await store.UpsertModelAsync(PoolModel, new Dictionary<string, object?>(), CancellationToken.None);
        foreach (var baseUrl in PoolBases())
        {
            await store.UpsertEndpointAsync(PoolModel, baseUrl + "/v1", null, null, CancellationToken.None);
        }

        var scenario = new Scenario(_o.Tokens, _o.TokensPerChunk, 0, 0, false);
        await SetScenarioAsync(scenario);
        var singleBody = BenchRequests.Messages(model: SecondaryModel);
        var poolBody = BenchRequests.Messages(model: PoolModel);
        var messages = new Uri(_gatewayBase + "/v1/messages?beta=true");

        // The gateway reads the catalog every second in this mode (Melious__Catalog__RefreshInterval): wait until the
        // pool model serves.
        var deadline = Stopwatch.GetTimestamp() + (30 * Stopwatch.Frequency);
        string? last = null;
        while (true)
        {
            var probe = await _client!.GatewayAsync(_workers[0], messages, poolBody, CancellationToken.None);
            if (probe.Error is null)
            {
                break;
            }

            last = probe.Error;
            if (Stopwatch.GetTimestamp() > deadline)
            {
                throw new InvalidOperationException($"the pool model {PoolModel} did not serve within 30 s (last: {last})");
            }

            await Task.Delay(200);
        }

        // The extra upstreams start cold while upstream 1 has served the whole warm-up: warm the pool at C=32 (bounded
        // load spreads it over every endpoint) long enough for their JIT too, else the pool's figures would measure
        // a cold upstream (a first run without this saw +10 ms TTFT at C=1 on the pool's cold third endpoint).
        Step("pool: warm-up of both gateway paths (the pool at C=32, so every endpoint warms up)");
        await PoolSliceAsync(singleBody, 8, TimeSpan.FromSeconds(60), _o.WarmupRequests / 2, new PathResult());
        await PoolSliceAsync(poolBody, 32, TimeSpan.FromSeconds(_o.Quick ? 3 : 20), _o.Quick ? 300 : 3000, new PathResult());

        await DrainAsync(TimeSpan.FromSeconds(30));

        var rows = new List<string>();
        foreach (var concurrency in _o.PoolConcurrency)
        {
            Step($"pool: C={concurrency}, {scenario.Label}, {_o.Rounds} round(s) of single endpoint / {_o.PoolEndpoints}-endpoint pool / direct");
            var quiet = await WaitQuietAsync();
            var single = new PathResult();
            var pool = new PathResult();
            var direct = new PathResult();
            var singleCpu = 0.0;
            var poolCpu = 0.0;
            var spread = new long[_o.PoolEndpoints];
            var slice = TimeSpan.FromSeconds(_o.MeasureSeconds / _o.Rounds);
            var machineStart = MachineLoad.Read();
            var t0 = Stopwatch.GetTimestamp();
            for (var round = 0; round < _o.Rounds; round++)
            {
                // Each gateway path is charged its own slice and the usage-queue drain after it, less idle burn.
                singleCpu += await ChargedSliceAsync(singleBody, concurrency, slice, single, idleCpuPerSecond);
                var before = await UpstreamCountsAsync();
                poolCpu += await ChargedSliceAsync(poolBody, concurrency, slice, pool, idleCpuPerSecond);
                var after = await UpstreamCountsAsync();
                for (var i = 0; i < spread.Length; i++)
                {
                    spread[i] += after[i] - before[i];
                }

                await PoolSliceAsync(null, concurrency, slice, 1_000_000, direct);
            }

            var machineCores = MachineLoad.BusyCores(machineStart, MachineLoad.Read());
            var wall = Distribution.TicksToMs(Stopwatch.GetTimestamp() - t0) / 1000;
            var singleCpuPerRequest = singleCpu / Math.Max(1, single.Samples.Count);
            var poolCpuPerRequest = poolCpu / Math.Max(1, pool.Samples.Count);

            Console.WriteLine($"  ┌ pool vs single endpoint: concurrency {concurrency}, {scenario.Label}");
            Console.WriteLine($"  │ {"",-26}{"requests",10}{"errors",8}{"TTFT p50",10}{"TTFT p99",10}{"added p50",11}{"added p99",11}{"total p50",11}{"CPU ms/req",12}");
            void Line(string name, PathResult r, double? cpu)
            {
                var added50 = ReferenceEquals(r, direct) ? "" : Fmt.Signed(r.Ttft.P(0.5) - direct.Ttft.P(0.5));
                var added99 = ReferenceEquals(r, direct) ? "" : Fmt.Signed(r.Ttft.P(0.99) - direct.Ttft.P(0.99));
                Console.WriteLine($"  │ {name,-26}{r.Samples.Count,10}{r.Errors,8}{Fmt.N(r.Ttft.P(0.5)),10}{Fmt.N(r.Ttft.P(0.99)),10}{added50,11}{added99,11}{Fmt.N(r.Total.P(0.5)),11}{(cpu is { } c ? Fmt.N(c, 3) : ""),12}");
            }

            Line("gateway → 1 endpoint", single, singleCpuPerRequest);
            Line($"gateway → {_o.PoolEndpoints}-endpoint pool", pool, poolCpuPerRequest);
            Line("direct (upstream 1)", direct, null);
            Console.WriteLine($"  │ pool spread (requests per endpoint): {string.Join(" / ", spread)}; one session (affinity: session, bounded load)");
            Console.WriteLine($"  │ machine: {Fmt.N(machineCores, 2)} cores busy over {Fmt.N(wall, 1)} s{(quiet ? "" : " (no quiet window found: figures are contended)")}");
            foreach (var (name, r) in new[] { ("single", single), ("pool", pool), ("direct", direct) })
            {
                foreach (var (error, count) in r.ErrorKinds.Take(2))
                {
                    Console.WriteLine($"  │ {name} error ×{count}: {error}");
                }
            }

            Console.WriteLine("  └");
            Emit(new JsonObject
            {
                ["kind"] = "pool",
                ["concurrency"] = concurrency,
                ["endpoints"] = _o.PoolEndpoints,
                ["tokens"] = scenario.Tokens,
                ["single"] = single.ToJson(),
                ["pool"] = pool.ToJson(),
                ["direct"] = direct.ToJson(),
                ["single_added_ttft_p50_ms"] = Distribution.Round(single.Ttft.P(0.5) - direct.Ttft.P(0.5)),
                ["single_added_ttft_p99_ms"] = Distribution.Round(single.Ttft.P(0.99) - direct.Ttft.P(0.99)),
                ["pool_added_ttft_p50_ms"] = Distribution.Round(pool.Ttft.P(0.5) - direct.Ttft.P(0.5)),
                ["pool_added_ttft_p99_ms"] = Distribution.Round(pool.Ttft.P(0.99) - direct.Ttft.P(0.99)),
                ["single_cpu_ms_per_request"] = Distribution.Round(singleCpuPerRequest),
                ["pool_cpu_ms_per_request"] = Distribution.Round(poolCpuPerRequest),
                ["pool_spread"] = new JsonArray(spread.Select(n => (JsonNode)n).ToArray()),
                ["machine_cores_busy"] = Distribution.Round(machineCores, 2),
            });
            rows.Add($"  {concurrency,4}{Fmt.N(single.Ttft.P(0.5) - direct.Ttft.P(0.5)),12}{Fmt.N(single.Ttft.P(0.99) - direct.Ttft.P(0.99)),12}{Fmt.N(pool.Ttft.P(0.5) - direct.Ttft.P(0.5)),12}{Fmt.N(pool.Ttft.P(0.99) - direct.Ttft.P(0.99)),12}{Fmt.N(singleCpuPerRequest, 3),10}{Fmt.N(poolCpuPerRequest, 3),10}{single.Errors + pool.Errors,6}  {string.Join('/', spread)}");
        }

        Console.WriteLine($"\nPool summary (added TTFT = gateway − direct, ms; CPU = gateway ms per request incl. usage drain; {_o.PoolEndpoints}-endpoint pool vs one endpoint):");
        Console.WriteLine($"  {"C",4}{"1ep +p50",12}{"1ep +p99",12}{"pool +p50",12}{"pool +p99",12}{"1ep CPU",10}{"pool CPU",10}{"err",6}  spread");
        foreach (var row in rows)
        {
            Console.WriteLine(row);
        }

        var json = Path.Combine(_outDir, "loadbench-pool.json");
        await File.WriteAllTextAsync(json, _results.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        Console.WriteLine($"\nAll figures as JSON: {json}");
        return 0;
    }

    private IEnumerable<string> PoolBases() => [_upstreamBase, .. _poolUpstreams.Select(p => p.BaseUrl)];

    private async Task<long[]> UpstreamCountsAsync()
    {
        var counts = new List<long>();
        foreach (var baseUrl in PoolBases())
        {
            var stats = JsonNode.Parse(await _control.GetStringAsync(baseUrl + "/control/stats"));
            counts.Add(stats?["requests"]?.GetValue<long>() ?? 0);
        }

        return [.. counts];
    }

    /// <summary>A gateway slice plus the usage drain after it; returns the gateway CPU ms it cost, less idle burn.</summary>
    private async Task<double> ChargedSliceAsync(byte[] body, int concurrency, TimeSpan duration, PathResult into, double idleCpuPerSecond)
    {
        var before = Cpu();
        var t0 = Stopwatch.GetTimestamp();
        await PoolSliceAsync(body, concurrency, duration, 1_000_000, into);
        await DrainAsync(TimeSpan.FromSeconds(_o.Quick ? 5 : 15));
        var seconds = Distribution.TicksToMs(Stopwatch.GetTimestamp() - t0) / 1000;
        return Math.Max(0, (Cpu() - before).Gateway - (idleCpuPerSecond * seconds));
    }

    /// <summary>Closed-loop workers sending <paramref name="body"/> to the gateway (null: the direct request to upstream 1).</summary>
    private Task PoolSliceAsync(byte[]? body, int concurrency, TimeSpan duration, int maxRequests, PathResult into)
    {
        var messages = new Uri(_gatewayBase + "/v1/messages?beta=true");
        return RunWorkersAsync(
            worker => body is null ? _client!.SendAsync(Target.Direct, worker, CancellationToken.None) : _client!.GatewayAsync(worker, messages, body, CancellationToken.None),
            concurrency, duration, maxRequests, into, TimeSpan.Zero);
    }
}

using System.Globalization;

namespace Melious.LoadBench;

/// <summary>Command-line options of the load bench. Every figure has a bounded count or duration.</summary>
public sealed class Options
{
    public bool Quick { get; private set; }

    public string? Repo { get; private set; }

    public string? GatewayDll { get; private set; }

    /// <summary>At the end, check that every measured gateway request left one billing and one energy row (exit 1 if not).</summary>
    public bool VerifyUsage { get; private set; }

    public string? AzuriteExe { get; private set; }

    /// <summary>
    /// The Functions host folder (holding <c>run.sh</c>, see ../shared/functions-host): after the self-host pass, the
    /// same settings run once more through src/Melious.Functions under that host, and the overhead is printed side by side.
    /// </summary>
    public string? FunctionsHost { get; private set; }

    /// <summary>The Functions app's build output (default: src/Melious.Functions/bin/Release/net10.0).</summary>
    public string? FunctionsApp { get; private set; }

    public string? OutDir { get; private set; }

    /// <summary>Measured seconds per path (gateway and direct each) per setting.</summary>
    public double MeasureSeconds { get; private set; } = 10;

    /// <summary>Rounds of (gateway slice, usage-queue drain, direct slice); the measured time is split evenly over them.</summary>
    public int Rounds { get; private set; } = 5;

    public int WarmupRequests { get; private set; } = 200;

    public int Tokens { get; private set; } = 200;

    public int TokensPerChunk { get; private set; } = 1;

    /// <summary>
    /// Pause after each request, on both paths (0 = closed loop). With a pause the upstream sees the same sparse
    /// arrivals from the gateway and from the direct client, as with a real agent that thinks between turns.
    /// </summary>
    public double ThinkMs { get; private set; }

    /// <summary>Setting filter: comma-separated labels like <c>c1-d0-text</c>, <c>c32-d5-tool</c>; empty = all.</summary>
    public HashSet<string> Only { get; } = new(StringComparer.OrdinalIgnoreCase);

    public int SlowStreams { get; private set; } = 1000;

    public int SlowTokens { get; private set; } = 20;

    public double CountTokensSeconds { get; private set; } = 5;

    public int CountTokensConcurrency { get; private set; } = 32;

    /// <summary>Gateway launches measured for start → first served request (the main one included).</summary>
    public int Launches { get; private set; } = 3;

    /// <summary>Extra environment for the gateway process (<c>--gateway-env Melious__Usage__RunConsumer=false</c>), for experiments.</summary>
    public Dictionary<string, string> GatewayEnv { get; } = new(StringComparer.Ordinal);

    /// <summary>Before each figure, wait up to this long for other processes on the machine to go quiet.</summary>
    public double WaitQuietSeconds { get; private set; } = 60;

    /// <summary>Print the gateway's console output (last 400 lines) at the end, e.g. with Debug logging for a start-up timeline.</summary>
    public bool DumpGatewayLog { get; private set; }

    /// <summary>Instead of the settings: the self-host in front of a pool of <see cref="PoolEndpoints"/> scripted upstreams against one endpoint.</summary>
    public bool Pool { get; private set; }

    public int PoolEndpoints { get; private set; } = 3;

    public List<int> PoolConcurrency { get; private set; } = [1, 32];

    public bool SkipSlow { get; private set; }

    public bool SkipCountTokens { get; private set; }

    /// <summary>Hard limit for the whole run; the watchdog kills every child and exits 2 after it.</summary>
    public TimeSpan Deadline { get; private set; } = TimeSpan.FromMinutes(45);

    /// <summary>The paced streaming pass with its nginx and YARP anchors (PacedOptions.cs, docs/benchmarks-paced.md).</summary>
    public PacedOptions Paced { get; } = new();

    public static Options Parse(string[] args)
    {
        var o = new Options();
        var deadlineSet = false;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            double Num() => double.Parse(Next(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--quick":
                    o.Quick = true;
                    o.MeasureSeconds = 1;
                    o.Rounds = 1;
                    o.WarmupRequests = 50;
                    o.SlowStreams = 200;
                    o.SlowTokens = 4;
                    o.CountTokensSeconds = 1;
                    o.Launches = 1;
                    o.Deadline = TimeSpan.FromMinutes(6);
                    o.WaitQuietSeconds = 0;
                    break;
                case "--repo": o.Repo = Next(); break;
                case "--gateway-dll": o.GatewayDll = Next(); break;
                case "--verify-usage": o.VerifyUsage = true; break;
                case "--azurite": o.AzuriteExe = Next(); break;
                case "--functions-host": o.FunctionsHost = Next(); break;
                case "--functions-app": o.FunctionsApp = Next(); break;
                case "--out": o.OutDir = Next(); break;
                case "--measure-seconds": o.MeasureSeconds = Num(); break;
                case "--rounds": o.Rounds = Math.Max(1, (int)Num()); break;
                case "--warmup": o.WarmupRequests = (int)Num(); break;
                case "--tokens": o.Tokens = (int)Num(); break;
                case "--tokens-per-chunk": o.TokensPerChunk = Math.Max(1, (int)Num()); break;
                case "--think-ms": o.ThinkMs = Math.Max(0, Num()); break;
                case "--only":
                    foreach (var label in Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    {
                        o.Only.Add(label);
                    }

                    break;
                case "--slow-streams": o.SlowStreams = (int)Num(); break;
                case "--slow-tokens": o.SlowTokens = Math.Max(2, (int)Num()); break;
                case "--count-tokens-seconds": o.CountTokensSeconds = Num(); break;
                case "--count-tokens-concurrency": o.CountTokensConcurrency = Math.Max(1, (int)Num()); break;
                case "--launches": o.Launches = Math.Max(1, (int)Num()); break;
                case "--gateway-env":
                    var pair = Next();
                    var eq = pair.IndexOf('=', StringComparison.Ordinal);
                    if (eq <= 0)
                    {
                        throw new ArgumentException("--gateway-env needs KEY=VALUE");
                    }

                    o.GatewayEnv[pair[..eq]] = pair[(eq + 1)..];
                    break;
                case "--wait-quiet": o.WaitQuietSeconds = Num(); break;
                case "--dump-gateway-log": o.DumpGatewayLog = true; break;
                case "--pool": o.Pool = true; break;
                case "--pool-endpoints": o.PoolEndpoints = Math.Max(2, (int)Num()); break;
                case "--pool-concurrency":
                    o.PoolConcurrency = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(c => Math.Max(1, int.Parse(c, CultureInfo.InvariantCulture)))];
                    break;
                case "--skip-slow": o.SkipSlow = true; break;
                case "--skip-count-tokens": o.SkipCountTokens = true; break;
                case "--deadline-minutes": o.Deadline = TimeSpan.FromMinutes(Num()); deadlineSet = true; break;
                case "-h" or "--help":
                    throw new ArgumentException(Usage + PacedOptions.Usage);
                default:
                    if (o.Paced.TryParse(args, ref i))
                    {
                        break;
                    }

                    throw new ArgumentException($"unknown option {args[i]}\n{Usage}{PacedOptions.Usage}");
            }
        }

        if (o.FunctionsHost is not null && !deadlineSet)
        {
            // The Functions pass runs the settings again, after the host's own start and warm-up.
            o.Deadline += TimeSpan.FromMinutes(o.Quick ? 6 : 20);
        }

        if (o.Only.Any(label => label.StartsWith("paced", StringComparison.OrdinalIgnoreCase)))
        {
            o.Paced.Enabled = true;
        }

        if (o.Paced.Enabled && !deadlineSet)
        {
            // The paced pass: four paths per setting, and the 1,000-stream run (~1 min per path).
            o.Deadline += TimeSpan.FromMinutes(o.Quick ? 2 : 15);
        }

        return o;
    }

    public const string Usage = """
        Melious.LoadBench [--quick] [--repo DIR] [--gateway-dll PATH] [--azurite PATH] [--out DIR]
                          [--measure-seconds S] [--rounds N] [--warmup N] [--tokens N] [--tokens-per-chunk N] [--think-ms MS]
                          [--only c1-d0-text,c32-d0-tool,...] [--slow-streams N] [--slow-tokens N]
                          [--count-tokens-seconds S] [--count-tokens-concurrency C] [--launches N]
                          [--skip-slow] [--skip-count-tokens] [--deadline-minutes M] [--gateway-env KEY=VALUE]... [--wait-quiet S] [--dump-gateway-log] [--verify-usage]
                          [--functions-host DIR [--functions-app DIR]]
                          [--pool [--pool-endpoints N] [--pool-concurrency 1,32]]
        Melious.LoadBench upstream --port P [--parent PID]     (the scripted upstream, started by the bench itself)
        --gateway-dll takes a self-host .dll (run with dotnet) or an executable: a Native AOT publish
        (scripts/publish-aot.sh) or the published JIT build (scripts/publish-selfhost.sh, labelled "self-host R2R").
        --functions-host DIR adds a pass through the Functions app under the real Functions host (DIR/run.sh) after the
        self-host pass: same upstream, same requests, same settings; added TTFT and CPU per stream printed side by side.
        --pool runs, instead of the settings, the self-host in front of an N-endpoint pool (default 3) of scripted upstreams
        (separate processes) against one endpoint and against the upstream directly: added TTFT p50/p99 and gateway CPU
        per request, per concurrency, and the pool's spread of requests over its endpoints.
        """;
}

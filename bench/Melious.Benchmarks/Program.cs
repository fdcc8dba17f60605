using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Loggers;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Melious.Benchmarks;

// Melious.Benchmarks [--quick] [--out-of-process] [--artifacts DIR] [BenchmarkDotNet args, e.g. --filter *Stream*]
// Default: in-process (no nested build), 3 warm-up + 10 measured iterations. --quick: 1 + 3 short iterations.
var quick = args.Contains("--quick");
var outOfProcess = args.Contains("--out-of-process");
var artifacts = Path.Combine(FindRoot(), "artifacts", "bench", "bdn");
var rest = new List<string>();
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--quick" or "--out-of-process":
            break;
        case "--artifacts" when i + 1 < args.Length:
            artifacts = args[++i];
            break;
        default:
            rest.Add(args[i]);
            break;
    }
}

if (!rest.Contains("--filter"))
{
    rest.AddRange(["--filter", "*"]);
}

var job = quick
    ? Job.Dry.WithWarmupCount(1).WithIterationCount(3).WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(100)).WithId("quick")
    : Job.Default.WithWarmupCount(3).WithIterationCount(10).WithId("default");
job = job.WithStrategy(BenchmarkDotNet.Engines.RunStrategy.Throughput);
if (!outOfProcess)
{
    job = job.WithToolchain(InProcessEmitToolchain.Instance);
}

var config = ManualConfig.CreateEmpty()
    .AddJob(job)
    .AddDiagnoser(MemoryDiagnoser.Default)
    .AddColumnProvider(DefaultColumnProviders.Instance)
    .AddLogger(ConsoleLogger.Default)
    .AddExporter(MarkdownExporter.GitHub)
    .WithArtifactsPath(artifacts)
    .WithOptions(ConfigOptions.DisableLogFile | ConfigOptions.JoinSummary);

var summaries = BenchmarkSwitcher.FromAssembly(typeof(StreamingBenchmarks).Assembly).Run([.. rest], config).ToList();

// One figure per line, machine-readable, like the load bench.
Console.WriteLine();
Console.WriteLine("Micro-benchmarks (mean time per operation, bytes allocated per operation):");
foreach (var summary in summaries)
{
    foreach (var report in summary.Reports.OrderBy(r => r.BenchmarkCase.Descriptor.Type.Name, StringComparer.Ordinal).ThenBy(r => r.BenchmarkCase.Descriptor.MethodIndex))
    {
        var name = report.BenchmarkCase.Descriptor.WorkloadMethodDisplayInfo.Trim('\'');
        var mean = report.ResultStatistics?.Mean ?? double.NaN;
        var allocated = report.GcStats.GetBytesAllocatedPerOperation(report.BenchmarkCase) ?? -1;
        Console.WriteLine($"  {name,-56} {Format(mean),12} {allocated,10} B");
        Console.WriteLine("BENCH_JSON " + System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["kind"] = "micro",
            ["benchmark"] = name,
            ["class"] = report.BenchmarkCase.Descriptor.Type.Name,
            ["mean_ns"] = double.IsNaN(mean) ? null : Math.Round(mean, 1),
            ["allocated_bytes"] = allocated,
            ["quick"] = quick,
        }));
    }
}

return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;

static string Format(double ns) => double.IsNaN(ns) ? "n/a" : ns >= 1_000_000 ? (ns / 1_000_000).ToString("F2", CultureInfo.InvariantCulture) + " ms"
    : ns >= 1_000 ? (ns / 1_000).ToString("F2", CultureInfo.InvariantCulture) + " µs" : ns.ToString("F1", CultureInfo.InvariantCulture) + " ns";

static string FindRoot()
{
    var directory = new DirectoryInfo(AppContext.BaseDirectory);
    while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Melious.Functions.sln")))
    {
        directory = directory.Parent;
    }

    return directory?.FullName ?? Environment.CurrentDirectory;
}

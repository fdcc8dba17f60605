using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;

namespace Melious.LoadBench;

/// <summary>Nearest-rank percentiles over millisecond values.</summary>
public sealed class Distribution
{
    private readonly double[] _sorted;

    public Distribution(IEnumerable<double> values)
    {
        _sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
    }

    public int Count => _sorted.Length;

    public double P(double q)
    {
        if (_sorted.Length == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(q * _sorted.Length);
        return _sorted[Math.Clamp(rank - 1, 0, _sorted.Length - 1)];
    }

    public double Max => _sorted.Length == 0 ? double.NaN : _sorted[^1];

    public double Mean => _sorted.Length == 0 ? double.NaN : _sorted.Average();

    public JsonObject ToJson() => new()
    {
        ["p50"] = Round(P(0.50)),
        ["p95"] = Round(P(0.95)),
        ["p99"] = Round(P(0.99)),
        ["max"] = Round(Max),
    };

    public static double TicksToMs(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    public static JsonNode? Round(double value, int digits = 3) => double.IsNaN(value) || double.IsInfinity(value) ? null : JsonValue.Create(Math.Round(value, digits));
}

/// <summary>CPU milliseconds of each process of the bench at one instant.</summary>
public readonly record struct CpuSnapshot(double Gateway, double GatewaySys, double Upstream, double Azurite, double Client)
{
    public static CpuSnapshot operator -(CpuSnapshot a, CpuSnapshot b) =>
        new(a.Gateway - b.Gateway, a.GatewaySys - b.GatewaySys, a.Upstream - b.Upstream, a.Azurite - b.Azurite, a.Client - b.Client);

    public static CpuSnapshot operator +(CpuSnapshot a, CpuSnapshot b) =>
        new(a.Gateway + b.Gateway, a.GatewaySys + b.GatewaySys, a.Upstream + b.Upstream, a.Azurite + b.Azurite, a.Client + b.Client);
}

/// <summary>Everything measured for one path (gateway or direct) of one setting.</summary>
public sealed class PathResult
{
    public List<Sample> Samples { get; } = [];

    public double WallSeconds { get; set; }

    public CpuSnapshot Cpu { get; set; }

    public int Ok => Samples.Count(s => s.Error is null);

    public int Errors => Samples.Count(s => s.Error is not null);

    public double Rps => WallSeconds > 0 ? Ok / WallSeconds : double.NaN;

    public Distribution Ttft => new(Samples.Where(s => s.Error is null).Select(s => Distribution.TicksToMs(s.TtftTicks)));

    public Distribution Total => new(Samples.Where(s => s.Error is null).Select(s => Distribution.TicksToMs(s.TotalTicks)));

    public IEnumerable<(string Error, int Count)> ErrorKinds =>
        Samples.Where(s => s.Error is not null).GroupBy(s => s.Error!.Length > 160 ? s.Error[..160] : s.Error).Select(g => (g.Key!, g.Count())).OrderByDescending(x => x.Item2);

    public JsonObject ToJson() => new()
    {
        ["requests"] = Samples.Count,
        ["errors"] = Errors,
        ["rps"] = Distribution.Round(Rps, 1),
        ["ttft_ms"] = Ttft.ToJson(),
        ["total_ms"] = Total.ToJson(),
        ["wall_s"] = Distribution.Round(WallSeconds, 3),
    };
}

public static class Fmt
{
    public static string N(double value, int digits = 2) =>
        double.IsNaN(value) ? "n/a" : value.ToString("F" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    public static string Signed(double value, int digits = 2) =>
        double.IsNaN(value) ? "n/a" : (value >= 0 ? "+" : "") + N(value, digits);
}

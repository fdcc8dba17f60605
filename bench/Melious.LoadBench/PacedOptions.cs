using System.Globalization;

namespace Melious.LoadBench;

/// <summary>
/// Options of the paced streaming pass (docs/benchmarks-paced.md): the upstream writes one chunk per token with a
/// delay (each chunk its own write and flush) after a first-token delay, and the same streams run directly, through
/// nginx, through YARP and through the gateway.
/// </summary>
public sealed class PacedOptions
{
    /// <summary>Run the paced pass (<c>--paced</c>, or any <c>paced…</c> label in <c>--only</c>).</summary>
    public bool Enabled { get; set; }

    /// <summary>Tokens per paced stream (one chunk each).</summary>
    public int Tokens { get; set; } = 200;

    /// <summary>Upstream delay before the first token, ms.</summary>
    public int TtftMs { get; set; } = 20;

    /// <summary>Streams of the burst setting (paced-1000), all at once (ramped over ~2 s).</summary>
    public int BurstStreams { get; set; } = 1000;

    /// <summary>Pacing of the burst setting, ms per token.</summary>
    public int BurstDelayMs { get; set; } = 50;

    /// <summary>Anchors to run next to the gateway: nginx, yarp (comma-separated), or none.</summary>
    public HashSet<string> Anchors { get; } = new(["nginx", "yarp"], StringComparer.OrdinalIgnoreCase);

    /// <summary>nginx executable (Debian's by default).</summary>
    public string Nginx { get; set; } = "/usr/sbin/nginx";

    /// <summary>The YARP anchor's dll (default: bench/Melious.YarpAnchor/bin/Release/net10.0/Melious.YarpAnchor.dll).</summary>
    public string? YarpDll { get; set; }

    /// <summary>Handles one <c>--paced…</c> argument at <paramref name="i"/>; false when it is not one of them.</summary>
    public bool TryParse(string[] args, ref int i)
    {
        var at = i;
        string Next() => at + 1 < args.Length ? args[++at] : throw new ArgumentException($"{args[at]} needs a value");
        int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
        switch (args[i])
        {
            case "--paced": Enabled = true; break;
            case "--paced-tokens": Tokens = Math.Max(2, Int()); break;
            case "--paced-ttft-ms": TtftMs = Math.Max(0, Int()); break;
            case "--paced-streams": BurstStreams = Math.Max(1, Int()); break;
            case "--paced-stream-delay-ms": BurstDelayMs = Math.Max(0, Int()); break;
            case "--paced-anchors":
                Anchors.Clear();
                foreach (var anchor in Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    if (!anchor.Equals("none", StringComparison.OrdinalIgnoreCase))
                    {
                        Anchors.Add(anchor);
                    }
                }

                break;
            case "--paced-nginx": Nginx = Next(); break;
            case "--paced-yarp-dll": YarpDll = Next(); break;
            default: return false;
        }

        i = at;
        return true;
    }

    public const string Usage = """
        Paced pass: [--paced] [--paced-tokens N] [--paced-ttft-ms MS] [--paced-streams N] [--paced-stream-delay-ms MS]
                    [--paced-anchors nginx,yarp|none] [--paced-nginx PATH] [--paced-yarp-dll PATH]
                    settings (with --only): paced-c1 (5 ms/token), paced-c64 (10 ms), paced-c64-d0 (0 ms), paced-1000
                    (1,000 concurrent streams at 50 ms/token); "--only paced" = every paced setting and no other.
        Melious.LoadBench paced-summary FILE...   (side-by-side table of the paced.json files of several runs)
        """;
}

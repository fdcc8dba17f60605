using System.Globalization;

namespace Melious.LoadBench;

/// <summary>Reads CPU time, RSS and thread counts of a process from /proc (Linux).</summary>
public static class ProcStats
{
    /// <summary>Clock ticks per second (<c>getconf CLK_TCK</c>); 100 on every Linux this runs on.</summary>
    public static readonly int ClockTicks = ReadClockTicks();

    public static bool IsAlive(int pid) => File.Exists($"/proc/{pid}/stat") && !IsZombie(pid);

    /// <summary>utime + stime of the process, in milliseconds (threads included; reaped children excluded).</summary>
    public static double CpuMs(int pid)
    {
        var (user, sys) = CpuSplitMs(pid);
        return user + sys;
    }

    /// <summary>The direct children of a process (pid and command line, NUL separators as spaces), from /proc/*/stat.</summary>
    public static List<(int Pid, string CommandLine)> Children(int parent)
    {
        var children = new List<(int, string)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (int.Parse(fields[1], CultureInfo.InvariantCulture) == parent)
                {
                    children.Add((pid, File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ')));
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
            }
        }

        return children;
    }

    /// <summary>utime and stime of the process, in milliseconds.</summary>
    public static (double User, double Sys) CpuSplitMs(int pid)
    {
        try
        {
            var (utime, stime) = Ticks(File.ReadAllText($"/proc/{pid}/stat"));
            return (utime * 1000.0 / ClockTicks, stime * 1000.0 / ClockTicks);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return (double.NaN, double.NaN);
        }
    }

    /// <summary>
    /// CPU time, in milliseconds by thread id, of the runtime's tier-1 compiler threads (".NET Tiered Compilation
    /// Worker", shown as ".NET Tiered Com" in /proc). Empty for a Native AOT process, which never compiles.
    /// </summary>
    public static Dictionary<int, double> TieringCpuMs(int pid)
    {
        var result = new Dictionary<int, double>();
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    if (!File.ReadAllText(Path.Combine(task, "comm")).StartsWith(".NET Tiered", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    var (utime, stime) = Ticks(File.ReadAllText(Path.Combine(task, "stat")));
                    result[int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture)] = (utime + stime) * 1000.0 / ClockTicks;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
                {
                    // The thread ended while it was read: it compiles nothing more.
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return result;
    }

    /// <summary>utime and stime, in clock ticks, from a process's or thread's <c>stat</c> line.</summary>
    private static (long User, long Sys) Ticks(string stat)
    {
        // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture), long.Parse(fields[12], CultureInfo.InvariantCulture));
    }

    public readonly record struct Status(double RssMb, double HwmMb, int Threads);

    public static Status ReadStatus(int pid)
    {
        double rss = double.NaN, hwm = double.NaN;
        var threads = 0;
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = Kb(line) / 1024.0;
                }
                else if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    hwm = Kb(line) / 1024.0;
                }
                else if (line.StartsWith("Threads:", StringComparison.Ordinal))
                {
                    threads = int.Parse(line.AsSpan(8).Trim(), CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        return new Status(rss, hwm, threads);
    }

    /// <summary>Resets VmHWM to the current RSS (writes 5 to clear_refs; needs the same user or root). False if refused.</summary>
    public static bool ResetPeak(int pid)
    {
        try
        {
            File.WriteAllText($"/proc/{pid}/clear_refs", "5");
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static double Kb(string line)
    {
        var span = line.AsSpan(line.IndexOf(':') + 1).Trim();
        var space = span.IndexOf(' ');
        return double.Parse(space > 0 ? span[..space] : span, CultureInfo.InvariantCulture);
    }

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] is 'Z' or 'X';
        }
        catch (IOException)
        {
            return true;
        }
    }

    private static int ReadClockTicks()
    {
        try
        {
            var info = new System.Diagnostics.ProcessStartInfo("getconf", "CLK_TCK") { RedirectStandardOutput = true, UseShellExecute = false };
            using var p = System.Diagnostics.Process.Start(info)!;
            var text = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit(2000);
            return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var ticks) && ticks > 0 ? ticks : 100;
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return 100;
        }
    }
}

/// <summary>
/// Samples RSS and thread count of one process every ~50 ms on a dedicated thread (so a busy thread pool in this
/// process cannot delay it), keeping the peaks since the last <see cref="Reset"/>.
/// </summary>
public sealed class RssSampler : IDisposable
{
    private readonly int _pid;
    private readonly Thread _thread;
    private readonly object _lock = new();
    private volatile bool _stop;
    private double _peakRss;
    private int _peakThreads;
    private int _minThreads = int.MaxValue;

    public RssSampler(int pid, int intervalMs = 50)
    {
        _pid = pid;
        IntervalMs = intervalMs;
        _thread = new Thread(Loop) { IsBackground = true, Name = $"rss-sampler-{pid}" };
        _thread.Start();
    }

    public int IntervalMs { get; }

    public void Reset()
    {
        var now = ProcStats.ReadStatus(_pid);
        lock (_lock)
        {
            _peakRss = double.IsNaN(now.RssMb) ? 0 : now.RssMb;
            _peakThreads = now.Threads;
            _minThreads = now.Threads;
        }

        ProcStats.ResetPeak(_pid);
    }

    /// <summary>Peak RSS (MB) since the last reset: the larger of the sampled peak and the kernel's VmHWM.</summary>
    public (double PeakRssMb, double SampledPeakMb, double HwmMb, int PeakThreads, int MinThreads) Read()
    {
        var now = ProcStats.ReadStatus(_pid);
        lock (_lock)
        {
            var hwm = double.IsNaN(now.HwmMb) ? 0 : now.HwmMb;
            return (Math.Max(_peakRss, hwm), _peakRss, hwm, Math.Max(_peakThreads, now.Threads), Math.Min(_minThreads, now.Threads));
        }
    }

    private void Loop()
    {
        while (!_stop)
        {
            var status = ProcStats.ReadStatus(_pid);
            if (!double.IsNaN(status.RssMb))
            {
                lock (_lock)
                {
                    _peakRss = Math.Max(_peakRss, status.RssMb);
                    _peakThreads = Math.Max(_peakThreads, status.Threads);
                    _minThreads = Math.Min(_minThreads, status.Threads);
                }
            }

            Thread.Sleep(IntervalMs);
        }
    }

    public void Dispose()
    {
        _stop = true;
        _thread.Join(1000);
    }
}

/// <summary>
/// Whole-machine CPU from /proc/stat, to tell how much of the machine something outside the bench used
/// (builds and tests of other developers share this machine): busy cores minus the bench's own processes.
/// </summary>
public static class MachineLoad
{
    /// <summary>Busy and total jiffies summed over all CPUs.</summary>
    public static (long Busy, long Total) Read()
    {
        try
        {
            var line = File.ReadLines("/proc/stat").First();
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            // user nice system idle iowait irq softirq steal (guest is already inside user)
            var busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f.Length > 7 ? f[7] : 0);
            return (busy, busy + f[3] + f[4]);
        }
        catch (Exception ex) when (ex is IOException or FormatException or IndexOutOfRangeException)
        {
            return (0, 0);
        }
    }

    /// <summary>Cores busy between two readings.</summary>
    public static double BusyCores((long Busy, long Total) a, (long Busy, long Total) b) =>
        b.Total > a.Total ? (b.Busy - a.Busy) / (double)(b.Total - a.Total) * Environment.ProcessorCount : double.NaN;
}

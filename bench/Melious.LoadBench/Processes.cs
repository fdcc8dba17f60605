using System.Collections.Concurrent;
using System.Diagnostics;

namespace Melious.LoadBench;

/// <summary>A child process of the bench: output kept in a bounded ring, killed (with its tree) on dispose.</summary>
public sealed class ChildProcess : IDisposable
{
    private static readonly ConcurrentDictionary<int, ChildProcess> Live = new();
    private readonly Queue<string> _lines = new();
    private readonly List<string> _problems = [];
    private readonly Process _process;

    private bool _disposed;

    private ChildProcess(string name, Process process, long startTimestamp)
    {
        Name = name;
        _process = process;
        Pid = process.Id;
        StartTimestamp = startTimestamp;
        Live[process.Id] = this;
    }

    public string Name { get; }

    public int Pid { get; }

    /// <summary><see cref="Stopwatch.GetTimestamp"/> just before <see cref="Process.Start()"/>.</summary>
    public long StartTimestamp { get; }

    public bool HasExited => _disposed || _process.HasExited;

    public int WarningLines { get; private set; }

    /// <summary>The console logger's header lines of warnings, errors and critical entries (level and category), first 200.</summary>
    public IReadOnlyList<string> ProblemHeaders
    {
        get
        {
            lock (_lines)
            {
                return [.. _problems];
            }
        }
    }

    public static ChildProcess Start(string name, string fileName, IEnumerable<string> args, IDictionary<string, string>? env = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in env ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        var started = Stopwatch.GetTimestamp();
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {fileName}");
        var child = new ChildProcess(name, process, started);
        process.OutputDataReceived += (_, e) => child.Append(e.Data);
        process.ErrorDataReceived += (_, e) => child.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    public string Output
    {
        get
        {
            lock (_lines)
            {
                return string.Join('\n', _lines);
            }
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lines)
        {
            if (line.Contains("warn", StringComparison.OrdinalIgnoreCase) || line.Contains("fail", StringComparison.OrdinalIgnoreCase))
            {
                WarningLines++;
            }

            if (_problems.Count < 200 && (line.StartsWith("warn: ", StringComparison.Ordinal) || line.StartsWith("fail: ", StringComparison.Ordinal) || line.StartsWith("crit: ", StringComparison.Ordinal)))
            {
                _problems.Add(line);
            }

            _lines.Enqueue(line);
            while (_lines.Count > 400)
            {
                _lines.Dequeue();
            }
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
        }

        Live.TryRemove(Pid, out _);
        _process.Dispose();
    }

    /// <summary>Kills every child still alive (exit paths, Ctrl+C, the watchdog).</summary>
    public static void KillAll()
    {
        foreach (var child in Live.Values.ToArray())
        {
            try
            {
                child.Dispose();
            }
            catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
            {
            }
        }
    }
}

public static partial class Net
{
    /// <summary>Waits until the port accepts connections; stops early once <paramref name="owner"/> exited.</summary>
    public static Task WaitOpenAsync(int port, TimeSpan timeout, ChildProcess? owner) =>
        WaitOpenAsync(port, timeout, owner is null ? null : () => owner.HasExited);
}

public static class RepoPaths
{
    public static string FindRoot(string? hint)
    {
        foreach (var start in new[] { hint, Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            var directory = start is null ? null : new DirectoryInfo(start);
            while (directory is not null)
            {
                if (File.Exists(Path.Combine(directory.FullName, "Melious.Functions.sln")))
                {
                    return directory.FullName;
                }

                directory = directory.Parent;
            }
        }

        throw new InvalidOperationException("Melious.Functions.sln not found; pass --repo");
    }

    /// <summary>How to run this very program again as a child (<c>dotnet Melious.LoadBench.dll</c> or the apphost).</summary>
    public static (string FileName, string[] Prefix) Self()
    {
        var process = Environment.ProcessPath ?? "dotnet";
        var dll = typeof(RepoPaths).Assembly.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? (process, [dll]) : (process, []);
    }
}

/// <summary>Azurite (Table + Queue + Blob, in memory) on free loopback ports.</summary>
public sealed class Azurite : IDisposable
{
    private const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private Azurite(ChildProcess process, int blob, int queue, int table)
    {
        Process = process;
        ConnectionString =
            $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AccountKey};" +
            $"BlobEndpoint=http://127.0.0.1:{blob}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{queue}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{table}/devstoreaccount1;";
    }

    public ChildProcess Process { get; }

    public string ConnectionString { get; }

    public static async Task<Azurite> StartAsync(string executable, string workDir)
    {
        int blob = Net.FreePort(), queue = Net.FreePort(), table = Net.FreePort();
        Directory.CreateDirectory(workDir);
        var process = ChildProcess.Start("azurite", executable,
        [
            "--silent", "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl", "--inMemoryPersistence",
            "--blobHost", "127.0.0.1", "--blobPort", blob.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--queueHost", "127.0.0.1", "--queuePort", queue.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--tableHost", "127.0.0.1", "--tablePort", table.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ], workingDirectory: workDir);
        try
        {
            await Net.WaitOpenAsync(queue, TimeSpan.FromSeconds(30), process);
            await Net.WaitOpenAsync(table, TimeSpan.FromSeconds(30), process);
        }
        catch (Exception ex)
        {
            var output = process.Output;
            process.Dispose();
            throw new InvalidOperationException("Azurite did not start: " + output, ex);
        }

        return new Azurite(process, blob, queue, table);
    }

    public void Dispose() => Process.Dispose();
}

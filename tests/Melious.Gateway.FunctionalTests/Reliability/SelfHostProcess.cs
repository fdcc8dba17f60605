using System.Diagnostics;
using System.Globalization;
using System.Text;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>
/// The self-host as a separate OS process (<c>dotnet Melious.SelfHost.dll</c> from the test output folder), configured
/// through environment variables, on 127.0.0.1. Used where the gateway must be measured (memory, threads) or killed
/// (SIGKILL) in isolation from the test host. Output is captured (bounded).
/// </summary>
internal sealed class SelfHostProcess : IAsyncDisposable
{
    private const int MaxOutputChars = 4_000_000;

    private readonly StringBuilder _output = new();
    private Process? _process;

    private SelfHostProcess(int port, IReadOnlyDictionary<string, string> environment)
    {
        Port = port;
        Environment = environment;
        DiagnosticsPort = Ports.Free();
    }

    public int Port { get; }

    /// <summary>Port of the <see cref="StartupHook"/> loaded into the process: live heap and thread figures on demand.</summary>
    public int DiagnosticsPort { get; }

    public string BaseUrl => $"http://127.0.0.1:{Port}";

    public IReadOnlyDictionary<string, string> Environment { get; }

    public int Pid => _process?.Id ?? throw new InvalidOperationException("not running");

    public bool IsRunning => _process is { HasExited: false };

    public int? ExitCode => _process is { HasExited: true } p ? p.ExitCode : null;

    public static string DllPath => Path.Combine(AppContext.BaseDirectory, "Melious.SelfHost.dll");

    /// <summary>Environment for a self-host sharing the given storage prefix (the same names TestGateway uses).</summary>
    public static Dictionary<string, string> EnvironmentFor(string connectionString, string prefix, string upstreamBaseUrl, string spoolDirectory) => new()
    {
        ["Melious__Storage__ConnectionString"] = connectionString,
        ["Melious__Storage__TablePrefix"] = prefix,
        ["Melious__Usage__QueueName"] = prefix + "-usage",
        ["Melious__Usage__PoisonQueueName"] = prefix + "-usage-poison",
        ["Melious__Usage__SpoolDirectory"] = spoolDirectory,
        ["Melious__Usage__ConsumerPollInterval"] = "00:00:00.100",
        ["Melious__Upstream__BaseUrl"] = upstreamBaseUrl,
        ["Melious__Models__Main"] = "main-model",
        ["Melious__Models__Secondary"] = "secondary-model",
        ["Melious__Models__Lightweight"] = "light-model",
        ["Melious__Streaming__MaxRetryDelay"] = "00:00:01",
        ["Logging__LogLevel__Default"] = "Warning",
        ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information",
    };

    public static async Task<SelfHostProcess> StartAsync(IReadOnlyDictionary<string, string> environment, int? port = null)
    {
        Assert.True(File.Exists(DllPath), $"{DllPath} is missing: the test project references Melious.SelfHost, so it should be in the output folder");
        var host = new SelfHostProcess(port ?? Ports.Free(), environment);
        await host.RestartAsync();
        return host;
    }

    /// <summary>Starts the process (again, on the same port and environment) and waits until it answers GET /.</summary>
    public async Task RestartAsync()
    {
        if (IsRunning)
        {
            throw new InvalidOperationException("already running");
        }

        _process?.Dispose();
        var dotnet = System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } hostPath && File.Exists(hostPath) ? hostPath : "dotnet";
        var info = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        info.ArgumentList.Add(DllPath);
        foreach (var (name, value) in Environment)
        {
            info.Environment[name] = value;
        }

        info.Environment["ASPNETCORE_URLS"] = BaseUrl;
        info.Environment["DOTNET_STARTUP_HOOKS"] = typeof(StartupHook).Assembly.Location;
        info.Environment[StartupHook.PortVariable] = DiagnosticsPort.ToString(CultureInfo.InvariantCulture);
        info.Environment["DOTNET_gcServer"] = "0";

        // A small gen0 budget (4 MB) keeps RSS close to the live heap, so memory figures mean something.
        info.Environment["DOTNET_GCgen0size"] = "0x400000";
        info.Environment["DOTNET_NOLOGO"] = "1";
        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"self-host exited with {_process.ExitCode}: {Output}");
            }

            try
            {
                using var response = await http.GetAsync(BaseUrl + "/");
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException("self-host did not start: " + Output);
            }

            await Task.Delay(100);
        }
    }

    /// <summary>SIGKILL (Process.Kill): no shutdown hooks run, in-memory state is lost.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>
    /// Live managed heap after a forced full compacting GC, and thread counts, measured inside the process by the
    /// startup hook. Far steadier than RSS, which moves with the GC's budgets and with memory given back to the OS.
    /// </summary>
    public async Task<ProcessFigures> MeasureAsync()
    {
        using var client = new System.Net.Sockets.TcpClient();
        await client.ConnectAsync(System.Net.IPAddress.Loopback, DiagnosticsPort);
        using var reader = new StreamReader(client.GetStream());
        var line = await reader.ReadLineAsync() ?? throw new InvalidOperationException("no answer from the diagnostics hook");
        var values = line.Split(' ').Select(p => p.Split('=')).ToDictionary(p => p[0], p => long.Parse(p[1], CultureInfo.InvariantCulture));
        return new ProcessFigures(values["heap"], values["loh"], (int)values["threads"], (int)values["pool"], values["rss"]);
    }

    /// <summary>Resident set size (VmRSS) in bytes, from /proc/&lt;pid&gt;/status.</summary>
    public long RssBytes => ProcStats.StatusValue(Pid, "VmRSS") * 1024;

    public int Threads => (int)ProcStats.StatusValue(Pid, "Threads");

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
        _process = null;
        if (Environment.TryGetValue("Melious__Usage__SpoolDirectory", out var spool) && Directory.Exists(spool))
        {
            try
            {
                Directory.Delete(spool, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            if (_output.Length < MaxOutputChars)
            {
                _output.AppendLine(line);
            }
        }
    }
}

/// <summary>What <see cref="SelfHostProcess.MeasureAsync"/> reports.</summary>
internal sealed record ProcessFigures(long HeapBytes, long LargeObjectHeapBytes, int Threads, int PoolThreads, long RssBytes)
{
    /// <summary>Live small objects: where per-request state would leak (large buffers live in the large-object heap).</summary>
    public long SmallObjectHeapBytes => HeapBytes - LargeObjectHeapBytes;
}

/// <summary>Reads process and socket figures from /proc (Linux).</summary>
internal static class ProcStats
{
    /// <summary>A numeric field of /proc/&lt;pid&gt;/status (kB for memory fields).</summary>
    public static long StatusValue(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                var value = line[(field.Length + 1)..].Trim();
                var space = value.IndexOf(' ', StringComparison.Ordinal);
                return long.Parse(space < 0 ? value : value[..space], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"{field} not found in /proc/{pid}/status");
    }

    /// <summary>
    /// TCP connections in state ESTABLISHED whose remote port is <paramref name="remotePort"/> (IPv4 and IPv6 tables):
    /// the client side of every connection to a local server on that port.
    /// </summary>
    public static int EstablishedTo(int remotePort)
    {
        var count = 0;
        foreach (var file in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(file))
            {
                continue;
            }

            foreach (var line in File.ReadLines(file).Skip(1))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length < 4 || parts[3] != "01")
                {
                    continue;
                }

                var remote = parts[2];
                var port = int.Parse(remote[(remote.LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (port == remotePort)
                {
                    count++;
                }
            }
        }

        return count;
    }
}

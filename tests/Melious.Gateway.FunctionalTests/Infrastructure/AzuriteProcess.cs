using System.Diagnostics;
using System.Text;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>
/// A real Azurite (Table + Queue + Blob) on free loopback ports, started with <c>--skipApiVersionCheck --loose</c>.
/// In-memory by default; with a directory it persists to disk and can be stopped and restarted on the same ports
/// (storage outage tests).
/// </summary>
public sealed class AzuriteProcess : IAsyncDisposable
{
    private const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly string? _location;
    private readonly StringBuilder _output = new();
    private Process? _process;
    private bool _started;

    public AzuriteProcess(string? location = null)
    {
        _location = location;
        BlobPort = Ports.Free();
        QueuePort = Ports.Free();
        TablePort = Ports.Free();
    }

    public int BlobPort { get; private set; }

    public int QueuePort { get; private set; }

    public int TablePort { get; private set; }

    public bool IsRunning => _process is { HasExited: false };

    public string ConnectionString => ConnectionStringFor(BlobPort, QueuePort, TablePort);

    public static string ConnectionStringFor(int blobPort, int queuePort, int tablePort) =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AccountKey};" +
        $"BlobEndpoint=http://127.0.0.1:{blobPort}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{queuePort}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{tablePort}/devstoreaccount1;";

    /// <summary>
    /// Starts Azurite and waits (120 s unless told otherwise) for its queue and table ports. On its first start, a port
    /// that another process took between the pick and Azurite's bind (it exits with <c>EADDRINUSE</c>; ports are picked
    /// free, but any process may bind one a moment later) is replaced: new ports, at most three starts. A restart keeps
    /// its ports, as the storage outage tests need.
    /// </summary>
    public async Task StartAsync(TimeSpan? timeout = null)
    {
        for (var start = 1; ; start++)
        {
            try
            {
                await StartOnceAsync(timeout ?? TimeSpan.FromSeconds(120));
                _started = true;
                return;
            }
            catch (InvalidOperationException) when (!_started && start < 3 && Output.Contains("EADDRINUSE", StringComparison.Ordinal))
            {
                await StopAsync();
                Append($"-- start {start} lost a port to another process; starting again on new ports");
                BlobPort = Ports.Free();
                QueuePort = Ports.Free();
                TablePort = Ports.Free();
            }
        }
    }

    private async Task StartOnceAsync(TimeSpan wait)
    {
        var azurite = RepoPaths.Tool("azurite", "MELIOUS_AZURITE");
        var info = new ProcessStartInfo(azurite)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            "--silent", "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl",
            "--blobHost", "127.0.0.1", "--blobPort", BlobPort.ToString(),
            "--queueHost", "127.0.0.1", "--queuePort", QueuePort.ToString(),
            "--tableHost", "127.0.0.1", "--tablePort", TablePort.ToString(),
        })
        {
            info.ArgumentList.Add(arg);
        }

        if (_location is null)
        {
            info.ArgumentList.Add("--inMemoryPersistence");
        }
        else
        {
            Directory.CreateDirectory(_location);
            info.ArgumentList.Add("--location");
            info.ArgumentList.Add(_location);
        }

        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        try
        {
            // A readiness wait, not a speed check: on two loaded cores (stress-ng on both, other builds) Azurite's
            // Node start-up took 35.6 s to open its table port; the default wait is therefore 120 s.
            var process = _process;
            await Ports.WaitOpenAsync(QueuePort, wait, () => process.HasExited);
            await Ports.WaitOpenAsync(TablePort, wait, () => process.HasExited);
        }
        catch (Exception ex)
        {
            if (_process.HasExited)
            {
                // Its last lines (the reason it exited) arrive after the exit: wait for the end of its output.
                await _process.WaitForExitAsync();
            }

            throw new InvalidOperationException($"Azurite did not open its ports within {wait.TotalSeconds} s: " + Output, ex);
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

    public async Task StopAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            if (_output.Length < 100_000)
            {
                _output.AppendLine(line);
            }
        }
    }
}

/// <summary>One shared in-memory Azurite for the whole test assembly; tests isolate themselves with table prefixes.</summary>
public sealed class AzuriteFixture : IAsyncLifetime, IGatewayTarget
{
    public AzuriteProcess Azurite { get; } = new();

    public string ConnectionString => Azurite.ConnectionString;

    public async ValueTask InitializeAsync() => await Azurite.StartAsync();

    public async ValueTask DisposeAsync() => await Azurite.DisposeAsync();

    /// <summary>A fresh table prefix (letters and digits only, as table names require).</summary>
    public static string NewPrefix() => "t" + Guid.NewGuid().ToString("N")[..10];
}

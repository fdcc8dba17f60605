using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

/// <summary>
/// A .NET startup hook (<c>DOTNET_STARTUP_HOOKS</c>) that the reliability tests load into a self-host they run as a
/// separate process. It opens a loopback port (<c>MELIOUS_TEST_DIAG_PORT</c>) that answers each connection with the
/// process's live managed heap after a forced full, compacting GC, and its thread counts. It touches nothing of the
/// gateway; without the variable it does nothing. (The runtime requires this exact type name, outside any namespace.)
/// </summary>
#pragma warning disable CA1050 // the runtime looks the hook up by this exact name, in the global namespace
public static class StartupHook
#pragma warning restore CA1050
{
    public const string PortVariable = "MELIOUS_TEST_DIAG_PORT";

    public static void Initialize()
    {
        if (!int.TryParse(Environment.GetEnvironmentVariable(PortVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var port))
        {
            return;
        }

        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        var thread = new Thread(() => Serve(listener)) { IsBackground = true, Name = "melious-test-diagnostics" };
        thread.Start();
    }

    private static void Serve(TcpListener listener)
    {
        while (true)
        {
            try
            {
                using var client = listener.AcceptTcpClient();
                GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                GC.WaitForPendingFinalizers();
                GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
                using var process = Process.GetCurrentProcess();
                var info = GC.GetGCMemoryInfo(GCKind.FullBlocking);
                // Live bytes of the large-object (index 3) and pinned-object (index 4) heaps: size minus free space.
                long Live(int index) => info.GenerationInfo.Length > index ? info.GenerationInfo[index].SizeAfterBytes - info.GenerationInfo[index].FragmentationAfterBytes : 0;
                var loh = Live(3) + Live(4);
                var text = string.Create(CultureInfo.InvariantCulture,
                    $"heap={GC.GetTotalMemory(false)} loh={loh} threads={process.Threads.Count} pool={ThreadPool.ThreadCount} handles={process.HandleCount} rss={Environment.WorkingSet}\n");
                client.GetStream().Write(Encoding.ASCII.GetBytes(text));
            }
            catch (Exception ex) when (ex is SocketException or IOException or InvalidOperationException)
            {
            }
        }
    }
}

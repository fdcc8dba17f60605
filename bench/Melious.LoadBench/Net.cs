using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Melious.LoadBench;

/// <summary>
/// Loopback ports for child processes: the load bench's, and (linked) the writer bench's and the functional tests'.
/// </summary>
public static partial class Net
{
    private static readonly HashSet<int> HandedOut = [];

    /// <summary>
    /// A loopback TCP port that is free now and that no earlier call returned. The kernel may offer a port again as
    /// soon as its probe listener closed, so two calls (Azurite's three ports) could otherwise get the same one:
    /// Azurite then listens on the first and exits on the second, after its port check passed (seen once, 2026-12-06).
    /// </summary>
    public static int FreePort()
    {
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            lock (HandedOut)
            {
                if (HandedOut.Add(port))
                {
                    return port;
                }
            }
        }

        throw new InvalidOperationException("no loopback port left that this process has not handed out already");
    }

    /// <summary>
    /// Waits until the port accepts connections (a self-connect does not count); gives up at the timeout or once
    /// <paramref name="ownerExited"/> says the process that should listen is gone.
    /// </summary>
    public static async Task WaitOpenAsync(int port, TimeSpan timeout, Func<bool>? ownerExited = null)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                if (((IPEndPoint)client.Client.LocalEndPoint!).Port != port)
                {
                    return;
                }

                // A TCP self-connect (the kernel picked the port itself as the source): nobody listens yet.
                throw new SocketException((int)SocketError.ConnectionRefused);
            }
            catch (SocketException) when (Stopwatch.GetTimestamp() < deadline && ownerExited?.Invoke() != true)
            {
                await Task.Delay(20);
            }
        }
    }
}

using System.Net;
using System.Net.Sockets;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

public static class Ports
{
    private static readonly HashSet<int> HandedOut = [];

    /// <summary>
    /// A loopback TCP port that is free now and that no earlier call in this process returned. The kernel may offer a
    /// port again as soon as its probe listener closed, so without the check two calls (Azurite's three ports, tests
    /// running in parallel) could get the same one before its owner binds it: Azurite then listens on the first and
    /// exits on the second, after its port check passed.
    /// </summary>
    public static int Free()
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

    public static async Task WaitOpenAsync(int port, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
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
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }
}

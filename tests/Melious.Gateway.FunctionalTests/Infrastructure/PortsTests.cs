using System.Net;
using System.Net.Sockets;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>
/// The harness's own ports. Azurite takes three of them and exits when two are the same (it listens on the first, then
/// fails to bind the second, after its port check passed); tests running in parallel take hundreds.
/// </summary>
public sealed class PortsTests
{
    [Fact]
    public void Free_NeverHandsOutTheSamePortTwice()
    {
        // The kernel picks bind(0) ports at random, so 500 plain picks repeat a port with high probability (birthday
        // bound over ~14,000 even ports); the harness must not.
        var ports = Enumerable.Range(0, 500).Select(_ => Ports.Free()).ToList();

        Assert.Equal(ports.Count, ports.Distinct().Count());
        Assert.All(ports, port => Assert.InRange(port, 1, 65535));
    }

    [Fact]
    public async Task WaitOpenAsync_ReturnsOnceAListenerIsUp_AndTimesOutWithoutOne()
    {
        var port = Ports.Free();
        await Assert.ThrowsAsync<SocketException>(() => Ports.WaitOpenAsync(port, TimeSpan.FromMilliseconds(300)));

        using var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        await Ports.WaitOpenAsync(port, TimeSpan.FromSeconds(5));
    }

    /// <summary>
    /// A picked port that another process binds before Azurite does (seen once in a full run: Azurite exited with
    /// EADDRINUSE and the test waited out its 120 s): the first start moves to new ports instead of failing.
    /// </summary>
    [Fact]
    public async Task Azurite_WhosePortWasTakenMeanwhile_StartsOnNewPorts()
    {
        await using var azurite = new AzuriteProcess();
        var taken = azurite.QueuePort;
        using var squatter = new TcpListener(IPAddress.Loopback, taken);
        squatter.Start();

        await azurite.StartAsync(TimeSpan.FromSeconds(60));

        Assert.NotEqual(taken, azurite.QueuePort);
        Assert.Contains("EADDRINUSE", azurite.Output, StringComparison.Ordinal);
        await Ports.WaitOpenAsync(azurite.TablePort, TimeSpan.FromSeconds(5));
        await Ports.WaitOpenAsync(azurite.QueuePort, TimeSpan.FromSeconds(5));
    }
}

using Melious.LoadBench;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>
/// Loopback ports for the harness's processes, picked as the benches pick theirs (bench/Melious.LoadBench/Net.cs,
/// linked): never the same port twice in one process, and a self-connect never passes for an open port.
/// </summary>
public static class Ports
{
    /// <summary>A loopback TCP port that is free now and that no earlier call in this process returned.</summary>
    public static int Free() => Net.FreePort();

    /// <summary>
    /// Waits until the port accepts connections; at the timeout, or as soon as <paramref name="ownerExited"/> says the
    /// process that should open it is gone, throws a <see cref="System.Net.Sockets.SocketException"/>.
    /// </summary>
    public static Task WaitOpenAsync(int port, TimeSpan timeout, Func<bool>? ownerExited = null) => Net.WaitOpenAsync(port, timeout, ownerExited);
}

using System.Runtime.CompilerServices;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>Process-wide settings for the many hosts this test process starts and stops.</summary>
internal static class ProcessSettings
{
    /// <summary>
    /// Every in-process host (gateways, scripted upstreams) would otherwise watch its content root for appsettings
    /// changes: one inotify instance each, from a per-user budget of 128 on Linux that every process of the user
    /// shares. A disposed host gives its instance back, but a suite of several hundred hosts, a few alive at once and
    /// some left to the finalizer by a failing test, next to other test processes, can exhaust the budget; a host
    /// then fails to start ("The configured user limit (128) on the number of inotify instances has been reached").
    /// No test changes a settings file while a host runs, so no host needs to watch.
    /// </summary>
    [ModuleInitializer]
    internal static void Initialize() =>
        Environment.SetEnvironmentVariable("DOTNET_hostBuilder__reloadConfigOnChange", "false");
}

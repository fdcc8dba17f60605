using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Hosting;

/// <summary>
/// Hands the C heap's free pages back to the operating system now and then (glibc's <c>malloc_trim</c>), on Linux.
/// glibc keeps what a thread's arena freed unless it lies at the arena's top: after start-up and tier-1 compilation
/// (the runtime's compiler allocates and frees its working memory with <c>malloc</c>, the likely source) the gateway
/// held 10–12 MB of freed native memory for good, out of ~125 MB at 64 paced streams (docs/benchmarks-paced.md, "Freed
/// native memory"). A trim walks the free lists and releases whole free pages; the memory is still the C heap's,
/// faulted back in if it is used again.
/// Elsewhere (Windows, macOS, musl, which has no <c>malloc_trim</c>) it does nothing.
/// <c>Melious:NativeHeapTrimInterval</c> sets the period; zero turns it off.
/// </summary>
internal sealed partial class NativeHeapTrimmer(IOptions<GatewayOptions> options, TimeProvider time, ILogger<NativeHeapTrimmer> logger) : BackgroundService
{
    private int _trims;

    /// <summary>Trims done so far.</summary>
    internal int Trims => Volatile.Read(ref _trims);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var period = options.Value.NativeHeapTrimInterval;
        if (period <= TimeSpan.Zero || !OperatingSystem.IsLinux())
        {
            return;
        }

        using var timer = new PeriodicTimer(period, time);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            if (!TryTrim(out var reason))
            {
                Log.Unavailable(logger, reason);
                return;
            }

            Interlocked.Increment(ref _trims);
        }
    }

    /// <summary>One trim of every malloc arena. False (with the reason) when the C library has no <c>malloc_trim</c>.</summary>
    internal static bool TryTrim(out string reason)
    {
        reason = "";
        try
        {
            MallocTrim(0);
            return true;
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            reason = ex.Message;
            return false;
        }
    }

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int MallocTrim(nuint pad);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "No malloc_trim in this C library ({Reason}); native heap trimming is off")]
        public static partial void Unavailable(ILogger logger, string reason);
    }
}

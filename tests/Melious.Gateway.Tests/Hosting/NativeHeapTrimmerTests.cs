using System.Runtime.InteropServices;
using Melious.Gateway.Hosting;
using Melious.Gateway.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Tests.Hosting;

/// <summary>Alone in its collection: it reads the process's resident memory, which other tests' allocations would move.</summary>
[CollectionDefinition(nameof(NativeHeapTrimmerTests), DisableParallelization = true)]
public sealed class NativeHeapTrimmerCollection;

[Collection(nameof(NativeHeapTrimmerTests))]
public sealed class NativeHeapTrimmerTests
{
    private const int ChunkBytes = 4096;
    private const int Chunks = 16_384; // 64 MB

    [Fact]
    public void TryTrim_HandsMemoryFreedInsideAnArenaBackToTheSystem()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/proc/self/status"))
        {
            Assert.Skip("glibc's malloc_trim and /proc exist on Linux only");
        }

        // What the gateway's C heap held after start-up: many small blocks malloc'ed and freed on a thread of its own,
        // below one block still in use (so glibc cannot give the space back by shrinking the arena from its top).
        nint kept = 0;
        var thread = new Thread(() =>
        {
            var pattern = new byte[ChunkBytes];
            Array.Fill(pattern, (byte)0x5A);
            var blocks = new nint[Chunks];
            for (var i = 0; i < Chunks; i++)
            {
                blocks[i] = Marshal.AllocHGlobal(ChunkBytes); // malloc, on Unix
                Marshal.Copy(pattern, 0, blocks[i], ChunkBytes);
            }

            kept = blocks[^1];
            for (var i = 0; i < Chunks - 1; i++)
            {
                Marshal.FreeHGlobal(blocks[i]);
            }
        });
        thread.Start();
        thread.Join();
        try
        {
            var before = RssAnonKb();
            Assert.True(NativeHeapTrimmer.TryTrim(out var reason), reason);
            var after = RssAnonKb();

            // 64 MB were freed; glibc keeps a little (chunk headers, the pages at the ends of the free run).
            Assert.True(before - after >= 32 * 1024, $"resident anonymous memory went from {before} kB to {after} kB");
        }
        finally
        {
            Marshal.FreeHGlobal(kept);
        }
    }

    [Fact]
    public async Task Service_RunsOnItsPeriod_AndAZeroIntervalTurnsItOff()
    {
        if (!OperatingSystem.IsLinux())
        {
            Assert.Skip("the trimmer only runs on Linux");
        }

        var time = new ManualTimeProvider();
        using var on = Trimmer(TimeSpan.FromSeconds(30), time);
        await on.StartAsync(TestContext.Current.CancellationToken);

        // ExecuteAsync starts on the thread pool: move the clock until its timer exists and has fired three times.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (on.Trims < 3 && DateTime.UtcNow < deadline)
        {
            time.Advance(TimeSpan.FromSeconds(30));
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }

        Assert.True(on.Trims >= 3, $"{on.Trims} trims");
        Assert.False(on.ExecuteTask!.IsCompleted, "the trimmer stopped on its own");
        await on.StopAsync(TestContext.Current.CancellationToken);
        Assert.True(on.ExecuteTask.IsCompleted);

        using var off = Trimmer(TimeSpan.Zero, time);
        await off.StartAsync(TestContext.Current.CancellationToken);
        await off.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(0, off.Trims);
    }

    [Fact]
    public void AddMeliousGateway_RegistersTheTrimmer_Every30sByDefault()
    {
        var services = new ServiceCollection();
        services.AddMeliousGateway(new Microsoft.Extensions.Configuration.ConfigurationBuilder().Build());
        Assert.Contains(services, d => d.ServiceType == typeof(IHostedService) && d.ImplementationType == typeof(NativeHeapTrimmer));
        Assert.Equal(TimeSpan.FromSeconds(30), new GatewayOptions().NativeHeapTrimInterval);
    }

    private static NativeHeapTrimmer Trimmer(TimeSpan interval, TimeProvider time) =>
        new(Options.Create(new GatewayOptions { NativeHeapTrimInterval = interval }), time, NullLogger<NativeHeapTrimmer>.Instance);

    private static long RssAnonKb()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan(8).Trim().TrimEnd("kB").Trim(), System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException("no RssAnon in /proc/self/status");
    }
}

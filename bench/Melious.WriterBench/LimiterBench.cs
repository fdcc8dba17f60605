using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Melious.Gateway;
using Melious.Gateway.Auth;
using Melious.Gateway.Limits;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Melious.WriterBench;

/// <summary>
/// The cost per request of the cross-instance limiter (docs/limits.md): three limiter instances sharing one Azurite
/// (as three gateway instances would), requests dealt round-robin, each acquired and completed. Printed, never
/// asserted. Compared: a key without limits, generous limits (slices big enough that storage is rarely touched),
/// a limit the run exactly uses up (slices shrink to 1 near the end), and a naive limiter that goes to storage for
/// every request (a one-unit lease per request), which is what slicing avoids.
/// </summary>
internal static class LimiterBench
{
    public static async Task RunAsync(string connectionString, int requests, int concurrency)
    {
        var prefix = "lb" + Guid.NewGuid().ToString("N")[..8];
        var options = new GatewayOptions();
        options.Storage.ConnectionString = connectionString;
        options.Storage.TablePrefix = prefix;
        options.RateLimits.Window = TimeSpan.FromHours(1);
        var storage = new StorageClients(options.Storage);
        await storage.Table(TableNames.RateLimits).CreateIfNotExistsAsync();
        var stores = Enumerable.Range(0, 3).Select(_ => new QuotaStore(storage)).ToArray();
        var limiters = stores.Select(s => new KeyRateLimiter(s, Options.Create(options), TimeProvider.System, NullLogger<KeyRateLimiter>.Instance)).ToArray();
        foreach (var limiter in limiters)
        {
            await limiter.TickAsync(CancellationToken.None);
        }

        foreach (var limiter in limiters)
        {
            await limiter.TickAsync(CancellationToken.None);
        }

        Console.WriteLine();
        Console.WriteLine($"Cross-instance limiter cost per request: 3 limiter instances on one Azurite (in memory, loopback), {requests} requests round-robin, {concurrency} at a time");
        Console.WriteLine($"{"run",-58} {"accepted",8} {"µs/req",8} {"p50 µs",8} {"p99 µs",8} {"storage req/req",16} {"CPU µs/req",11}");
        var usage = new TokenUsage(300, 0, 0, 100, 0);
        await RunOneAsync("no limits", Key("none"), usage, limiters, stores, requests, concurrency);
        await RunOneAsync("rpm + tpm + concurrency, generous (never refused)", Key("generous", rpm: 1_000_000, tpm: 1_000_000_000, concurrency: 10_000), usage, limiters, stores, requests, concurrency);
        await RunOneAsync($"rpm {requests} (used up exactly by the run)", Key("exact", rpm: requests), usage, limiters, stores, requests, concurrency);
        await RunOneAsync($"rpm {requests / 2} (half the run refused)", Key("half", rpm: requests / 2), usage, limiters, stores, requests, concurrency);

        // The naive alternative: one ETag-guarded lease of one unit per request.
        var naive = await MeasureAsync(requests, concurrency, async i =>
        {
            var (took, _) = await stores[i % 3].LeaseAsync("naive", "rpm-0", requests * 10L, 1, int.MaxValue, 0, CancellationToken.None);
            return took == 1;
        });
        Print("naive: a storage lease for every request (for comparison)", naive, requests, 2.0);
    }

    private static ApiKeyRecord Key(string id, int rpm = 0, long tpm = 0, int concurrency = 0) => new()
    {
        Hash = id,
        KeyId = id + Guid.NewGuid().ToString("N")[..6],
        Account = "bench",
        Name = id,
        RequestsPerMinute = rpm,
        TokensPerMinute = tpm,
        MaxConcurrentStreams = concurrency,
    };

    private static async Task RunOneAsync(string name, ApiKeyRecord key, TokenUsage usage, KeyRateLimiter[] limiters, QuotaStore[] stores, int requests, int concurrency)
    {
        var tripsBefore = stores.Sum(s => s.RoundTrips);
        var result = await MeasureAsync(requests, concurrency, async i =>
        {
            var decision = await limiters[i % 3].AcquireAsync(key, 300, CancellationToken.None);
            decision.Ticket?.Complete(usage);
            return decision.Error is null;
        });
        Print(name, result, requests, (stores.Sum(s => s.RoundTrips) - tripsBefore) / (double)requests);
    }

    private static void Print(string name, (int Accepted, double[] Micros, double CpuMicros) result, int requests, double tripsPerRequest)
    {
        var sorted = result.Micros.Order().ToArray();
        var mean = sorted.Average();
        var p99 = sorted[(int)Math.Min(sorted.Length - 1, Math.Ceiling(sorted.Length * 0.99) - 1)];
        var p50 = sorted[sorted.Length / 2];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name,-58} {result.Accepted,8} {mean,8:0.0} {p50,8:0.0} {p99,8:0.0} {tripsPerRequest,16:0.000} {result.CpuMicros / requests,11:0.0}"));
        Console.WriteLine("BENCH_JSON " + JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["bench"] = "limiter",
            ["run"] = name,
            ["requests"] = requests,
            ["accepted"] = result.Accepted,
            ["mean_us"] = Math.Round(mean, 2),
            ["p50_us"] = Math.Round(p50, 2),
            ["p99_us"] = Math.Round(p99, 2),
            ["storage_requests_per_request"] = Math.Round(tripsPerRequest, 4),
            ["cpu_us_per_request"] = Math.Round(result.CpuMicros / requests, 2),
        }));
    }

    private static async Task<(int Accepted, double[] Micros, double CpuMicros)> MeasureAsync(int requests, int concurrency, Func<int, Task<bool>> one)
    {
        var micros = new double[requests];
        var accepted = 0;
        var next = -1;
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < requests)
            {
                var start = Stopwatch.GetTimestamp();
                if (await one(i))
                {
                    Interlocked.Increment(ref accepted);
                }

                micros[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }
        })));
        var cpuMicros = (Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalMicroseconds;
        return (accepted, micros, cpuMicros);
    }
}

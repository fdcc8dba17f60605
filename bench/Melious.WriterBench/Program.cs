using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Melious.Gateway;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Melious.LoadBench;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

// Usage writer throughput (the usage-accounting issue's benchmark): how many usage events per second the one writer
// implementation puts into Table Storage (Azurite, in memory, on this machine), first called directly with several
// concurrent writers, then end to end through the usage-events queue and the self-host's queue consumer.
// Printed, never asserted. Usage: Melious.WriterBench [--quick] [--events N] [--concurrency C] [--repo DIR]
// With --limiter [--requests N]: the cross-instance limiter's cost per request instead (bench/Melious.WriterBench/LimiterBench.cs).
var quick = args.Contains("--quick");
var events = IntArg("--events", quick ? 600 : 4_000);
var concurrency = IntArg("--concurrency", 4);
var repo = StringArg("--repo") ?? FindRepo();

var azurite = Path.Combine(repo, "tools", "node_modules", ".bin", "azurite");
if (!File.Exists(azurite))
{
    Console.Error.WriteLine("azurite is not installed: run scripts/bench.sh (or npm install in tools/)");
    return 1;
}

int[] ports = [Net.FreePort(), Net.FreePort(), Net.FreePort()];
using var process = Process.Start(new ProcessStartInfo(azurite,
[
    "--silent", "--skipApiVersionCheck", "--loose", "--inMemoryPersistence",
    "--blobHost", "127.0.0.1", "--blobPort", ports[0].ToString(CultureInfo.InvariantCulture),
    "--queueHost", "127.0.0.1", "--queuePort", ports[1].ToString(CultureInfo.InvariantCulture),
    "--tableHost", "127.0.0.1", "--tablePort", ports[2].ToString(CultureInfo.InvariantCulture),
]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
try
{
    await Net.WaitOpenAsync(ports[1], TimeSpan.FromSeconds(30), () => process.HasExited);
    await Net.WaitOpenAsync(ports[2], TimeSpan.FromSeconds(30), () => process.HasExited);
    if (args.Contains("--limiter"))
    {
        // The cross-instance limiter's cost per request instead of the writer runs (docs/limits.md).
        await Melious.WriterBench.LimiterBench.RunAsync(connectionString(), IntArg("--requests", quick ? 3_000 : 20_000), IntArg("--concurrency", 8));
        return 0;
    }


    Console.WriteLine($"Usage writer throughput into Azurite (in memory, loopback), {events} events per run");
    Console.WriteLine($"{"run",-44} {"events",7} {"seconds",8} {"events/s",9} {"azurite CPU ms/event",21}");
    var results = new List<(string Name, int Events, double Seconds)>
    {
        await DirectAsync("direct, 1 event per message, 1 writer", events / 4, 1, 1),
        await DirectAsync($"direct, 32 events per message, {concurrency} writers", events, 32, concurrency),
        await DirectAsync("direct, 32 events per write, 1 account, 1 writer", events, 32, 1, accounts: 1),
        await DirectAsync("direct, 512 events per write, 1 account, 1 writer", events, 512, 1, accounts: 1),
        await QueuedAsync($"queue + consumer, 32 events per message", events, 32),
    };
    foreach (var (name, count, seconds) in results)
    {
        Console.WriteLine(JsonSerializer.Serialize(new { bench = "usage-writer", run = name, events = count, seconds, events_per_second = count / seconds })
            .Insert(0, "BENCH_JSON "));
    }

    return 0;
}
finally
{
    process.Kill(entireProcessTree: true);
    await process.WaitForExitAsync();
}

async Task<(string, int, double)> DirectAsync(string name, int count, int perMessage, int writers, int accounts = 8)
{
    var (storage, options) = await StorageAsync();
    var writer = new UsageWriter(storage, NullLogger<UsageWriter>.Instance);
    var messages = Events(count, accounts).Chunk(perMessage).ToList();
    var next = -1;
    var cpu = AzuriteCpuMs();
    var clock = Stopwatch.StartNew();
    await Task.WhenAll(Enumerable.Range(0, writers).Select(async _ =>
    {
        int index;
        while ((index = Interlocked.Increment(ref next)) < messages.Count)
        {
            await writer.WriteAsync(messages[index], CancellationToken.None);
        }
    }));
    var seconds = clock.Elapsed.TotalSeconds;
    cpu = AzuriteCpuMs() - cpu;
    await VerifyAsync(storage, count);
    Report(name, count, seconds, cpu);
    return (name, count, seconds);
}

async Task<(string, int, double)> QueuedAsync(string name, int count, int perMessage)
{
    var (storage, options) = await StorageAsync();
    var queue = storage.Queue(options.Value.Usage.QueueName);
    foreach (var chunk in Events(count).Chunk(perMessage))
    {
        await queue.SendMessageAsync(BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(new UsageMessage([.. chunk]), UsageJsonContext.Default.UsageMessage)));
    }

    var consumer = new UsageQueueConsumer(storage, new UsageWriter(storage, NullLogger<UsageWriter>.Instance), options, NullLogger<UsageQueueConsumer>.Instance);
    var cpu = AzuriteCpuMs();
    var clock = Stopwatch.StartNew();
    await consumer.StartAsync(CancellationToken.None);
    var expected = (count + perMessage - 1) / perMessage;
    var deadline = DateTime.UtcNow.AddMinutes(5);
    while (consumer.MessagesWritten < expected && DateTime.UtcNow < deadline)
    {
        await Task.Delay(20);
    }

    var seconds = clock.Elapsed.TotalSeconds;
    cpu = AzuriteCpuMs() - cpu;
    await consumer.StopAsync(CancellationToken.None);
    await VerifyAsync(storage, count);
    Report(name, count, seconds, cpu);
    return (name, count, seconds);
}

async Task<(StorageClients, IOptions<GatewayOptions>)> StorageAsync()
{
    var prefix = "wb" + Guid.NewGuid().ToString("N")[..8];
    var gateway = new GatewayOptions();
    gateway.Storage.ConnectionString = connectionString();
    gateway.Storage.TablePrefix = prefix;
    gateway.Usage.QueueName = prefix + "-usage";
    gateway.Usage.ConsumerPollInterval = TimeSpan.FromMilliseconds(20);
    gateway.Usage.ConsumerBatchSize = 32;
    var storage = new StorageClients(gateway.Storage);
    foreach (var table in TableNames.All)
    {
        await storage.Table(table).CreateIfNotExistsAsync();
    }

    await storage.Queue(gateway.Usage.QueueName).CreateIfNotExistsAsync();
    return (storage, Options.Create(gateway));
}

string connectionString() => "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    + $"QueueEndpoint=http://127.0.0.1:{ports[1]}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{ports[2]}/devstoreaccount1;";

static async Task VerifyAsync(StorageClients storage, int count)
{
    var rows = 0;
    await foreach (var _ in storage.Table(TableNames.Billing).QueryAsync<Azure.Data.Tables.TableEntity>(select: ["RowKey"]))
    {
        rows++;
    }

    if (rows != count)
    {
        throw new InvalidOperationException($"expected {count} billing rows, found {rows}");
    }
}

static void Report(string name, int count, double seconds, double azuriteCpuMs) =>
    Console.WriteLine($"{name,-44} {count,7} {seconds,8:0.00} {count / seconds,9:0} {azuriteCpuMs / count,21:0.000}");

// Azurite's CPU time (utime + stime, ms): on one machine its work competes with the gateway's.
double AzuriteCpuMs() => ProcStats.CpuMs(process.Id);

static IEnumerable<UsageEvent> Events(int count, int accounts = 8)
{
    var start = DateTimeOffset.UtcNow;
    for (var i = 0; i < count; i++)
    {
        yield return new UsageEvent
        {
            RequestId = Ids.NewRequestId(),
            Account = "account" + (i % accounts),
            KeyId = "0123456789abcde" + (i % Math.Min(4, accounts)),
            SessionId = "session-" + (i % Math.Min(50, accounts)),
            RequestedModel = "claude-sonnet-4-5",
            UpstreamModel = i % 3 == 0 ? "qwen3-coder-480b" : "qwen3-coder-30b",
            Upstream = "http://gpu/v1",
            Stream = true,
            InputTokens = 800 + i % 100,
            CacheReadTokens = 15_000,
            OutputTokens = 200,
            StartedAt = start,
            DurationMs = 2_000,
            Status = 200,
            Currency = "USD",
            CostNanos = 1_234_567,
            Region = "westeurope",
            EnergyWh = 0.05,
            EnergyWhMin = 0.03,
            EnergyWhMax = 0.09,
            Gco2e = 0.015,
            Gco2eMin = 0.007,
            Gco2eMax = 0.03,
            WaterMl = 0.2,
            GridGco2ePerKwh = 255,
            Pue = 1.18,
            EnergyMethod = EnergyModel.Method,
        };
    }
}

int IntArg(string name, int fallback) =>
    StringArg(name) is { } value && int.TryParse(value, CultureInfo.InvariantCulture, out var parsed) ? parsed : fallback;

string? StringArg(string name)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
}

static string FindRepo()
{
    var directory = new DirectoryInfo(AppContext.BaseDirectory);
    while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Melious.Functions.sln")))
    {
        directory = directory.Parent;
    }

    return directory?.FullName ?? Directory.GetCurrentDirectory();
}

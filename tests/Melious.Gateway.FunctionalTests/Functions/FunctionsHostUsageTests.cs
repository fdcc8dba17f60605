using System.Net;
using System.Text.Json;
using Azure.Data.Tables;
using Melious.Functions;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// The usage queue trigger as the real host drives it (host.json's queue settings, Base64 messages, poison queue):
/// billing and energy rows for requests served through the host, redeliveries counted once, a malformed message
/// poisoned after maxDequeueCount deliveries, and a worker that refuses to start when the publisher's queue is not the trigger's.
/// </summary>
[Collection(FunctionsHostCollection.Name)]
[Trait("Host", "FunctionsHost only: the queue trigger runs only under the Functions host")]
public sealed class FunctionsHostUsageTests(FunctionsHostFixture host)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RequestsThroughTheHost_GetExactlyOneBillingAndOneEnergyRowEach_AlsoWhenMessagesAreDeliveredAgain()
    {
        await using var s = await Scenario.StartAsync(host, Sse.TextAnswer(["a", "b", "c"], prompt: 300));
        var ids = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            using var response = await s.PostAsync(Scenario.Body(stream: i % 2 == 0));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsStringAsync(Ct);
            ids.Add(response.Headers.GetValues("request-id").Single());
        }

        var storage = host.Services.GetRequiredService<StorageClients>();
        var billing = await RowsAsync(storage, TableNames.Billing, ids, ids.Count);
        var energy = await RowsAsync(storage, TableNames.Energy, ids, ids.Count);
        Assert.Equal(ids.Order(), billing.Select(r => r.RowKey).Order());
        Assert.Equal(ids.Order(), energy.Select(r => r.RowKey).Order());
        Assert.All(billing, r => Assert.Equal(3, UsageLong(r, "OutputTokens")));

        // The same usage message delivered again, three times at once (a host that lost the completion, or two
        // instances racing): still one row per request.
        var redelivered = "fnredeliver-" + Guid.NewGuid().ToString("N")[..12];
        var message = JsonSerializer.Serialize(new UsageMessage([Event(redelivered)]), UsageJsonContext.Default.UsageMessage);
        var queue = storage.Queue(UsageQueue.Name);
        await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => queue.SendMessageAsync(message, Ct)));
        await RowsAsync(storage, TableNames.Billing, [redelivered], 1);
        await WaitAsync(async () => (await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount == 0, TimeSpan.FromSeconds(60), "the usage queue did not drain");
        await Task.Delay(TimeSpan.FromSeconds(1), Ct);
        Assert.Single(await RowsAsync(storage, TableNames.Billing, [redelivered], 0));
        Assert.Single(await RowsAsync(storage, TableNames.Energy, [redelivered], 1));
    }

    [Fact]
    public async Task MalformedMessage_ReachesThePoisonQueueAfterMaxDequeueCount_WithErrorLogsNamingTheRequestId()
    {
        host.EnsureRunning();
        var requestId = "fnpoison-" + Guid.NewGuid().ToString("N")[..12];
        var malformed = $$"""{"events":[{"requestId":"{{requestId}}","account":""}]}""";
        var storage = host.Services.GetRequiredService<StorageClients>();
        var poison = storage.Queue(UsageQueue.Name + "-poison");
        await poison.CreateIfNotExistsAsync(cancellationToken: Ct);
        var mark = host.Output.Count;
        await storage.Queue(UsageQueue.Name).SendMessageAsync(malformed, Ct);

        string? poisoned = null;
        await WaitAsync(
            async () =>
            {
                foreach (var m in (await poison.PeekMessagesAsync(32, Ct)).Value)
                {
                    if (m.Body.ToString().Contains(requestId, StringComparison.Ordinal))
                    {
                        poisoned = m.Body.ToString();
                    }
                }

                return poisoned is not null;
            },
            TimeSpan.FromSeconds(120),
            "the malformed message did not reach usage-events-poison");
        Assert.Equal(malformed, poisoned);

        // One error line per delivery, each naming the request id; as many deliveries as host.json's maxDequeueCount.
        using var hostJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(FunctionsApp.Directory, "host.json")));
        var maxDequeueCount = hostJson.RootElement.GetProperty("extensions").GetProperty("queues").GetProperty("maxDequeueCount").GetInt32();
        var errors = host.OutputSince(mark).Where(l => l.Contains($"Usage message for request {requestId}", StringComparison.Ordinal) && l.Contains("can never be written", StringComparison.Ordinal)).ToList();
        Assert.Equal(maxDequeueCount, errors.Count);
        Assert.Contains(errors, l => l.Contains($"delivery {maxDequeueCount};", StringComparison.Ordinal));
        Assert.Empty(await RowsAsync(storage, TableNames.Billing, [requestId], 0));
    }

    [Fact]
    public async Task QueueNameOtherThanTheTriggers_TheWorkerFailsToStart_WithAClearLogLine()
    {
        host.EnsureRunning();
        var settings = host.Settings.ToDictionary(s => "Melious__" + s.Key["Melious:".Length..].Replace(":", "__", StringComparison.Ordinal), s => s.Value);
        settings["Melious__Usage__QueueName"] = "some-other-queue";
        settings["AzureFunctionsWebHost__hostid"] = "melious-queue-mismatch";
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var process = await FunctionsHostFixture.StartHostAsync(settings, Ports.Free(), output);
        try
        {
            const string expected = "Melious:Usage:QueueName must be 'usage-events' in the Functions app";
            await WaitAsync(() => Task.FromResult(output.Any(l => l.Contains(expected, StringComparison.Ordinal))), TimeSpan.FromMinutes(2), "no log line saying the queue names disagree");
            Assert.Contains(output, l => l.Contains("OptionsValidationException", StringComparison.Ordinal) || l.Contains(expected, StringComparison.Ordinal));
        }
        finally
        {
            await FunctionsHostFixture.StopHostAsync(process);
        }
    }

    private static UsageEvent Event(string requestId) => new()
    {
        RequestId = requestId,
        Account = "acme",
        KeyId = "0123456789abcdef",
        RequestedModel = "claude-opus-4-8",
        UpstreamModel = "main-model",
        Upstream = "http://127.0.0.1:9/v1",
        StartedAt = DateTimeOffset.UtcNow,
        InputTokens = 10,
        OutputTokens = 5,
        Status = 200,
        Currency = "USD",
        Region = "westeurope",
        EnergyMethod = "unknown",
    };

    private static long UsageLong(TableEntity e, string name) => e.GetInt64(name) ?? e.GetInt32(name) ?? 0;

    /// <summary>The rows of <paramref name="table"/> for these request ids, once at least <paramref name="atLeast"/> exist (bounded).</summary>
    private static async Task<List<TableEntity>> RowsAsync(StorageClients storage, string table, IReadOnlyCollection<string> requestIds, int atLeast)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var rows = new List<TableEntity>();
            await foreach (var row in storage.Table(table).QueryAsync<TableEntity>(cancellationToken: Ct))
            {
                if (requestIds.Contains(row.RowKey))
                {
                    rows.Add(row);
                }
            }

            if (rows.Count >= atLeast || DateTime.UtcNow > deadline)
            {
                return rows;
            }

            await Task.Delay(200, Ct);
        }
    }

    private static async Task WaitAsync(Func<Task<bool>> condition, TimeSpan timeout, string failure)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, failure + $" within {timeout.TotalSeconds} s");
            await Task.Delay(250, Ct);
        }
    }
}

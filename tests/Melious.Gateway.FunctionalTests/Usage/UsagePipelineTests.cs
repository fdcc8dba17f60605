using System.Net;
using System.Text.Json;
using Azure.Data.Tables;
using Azure.Storage.Queues;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.FunctionalTests.Usage;

/// <summary>Requests → usage events → queue → billing/energy rows and rollups, against real Azurite queues and tables.</summary>
public sealed class UsagePipelineTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly Dictionary<string, string?> Priced = new()
    {
        // Seeded prices per million tokens, and a model with known energy parameters for sonnet.
        ["Melious:Models:Secondary"] = "qwen3-coder-30b-a3b-instruct",
        ["Melious:Models:InputPrice"] = "3",
        ["Melious:Models:OutputPrice"] = "15",
        ["Melious:Models:CacheReadPrice"] = "0.3",
        ["Melious:Models:CacheWritePrice"] = "3.75",
        ["Melious:Models:Currency"] = "EUR",
    };

    [Fact]
    public async Task NRequests_GiveExactlyNBillingAndNEnergyRows_WithTheRightTokensAndCosts()
    {
        const int n = 20;
        await using var s = await Scenario.StartAsync(azurite, async (request, context) =>
        {
            var pieces = Enumerable.Range(0, 5).Select(i => $"w{i} ").ToArray();
            await Sse.WriteAsync(context, [Sse.Role(), .. pieces.Select(Sse.Content), Sse.Finish("stop"), Sse.Usage(2_000, 5, cached: 1_500)]);
        }, Priced);

        var wireCosts = new List<string>();
        for (var i = 0; i < n; i++)
        {
            var stream = i % 2 == 0;
            var response = await s.PostAsync(Scenario.Body(stream: stream));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            if (stream)
            {
                var events = await SseEvents.ReadAllAsync(response, Ct);
                wireCosts.Add(events.Single(e => e.Name == "message_delta").Data.GetProperty("billing_cost").GetProperty("amount").GetString()!);
            }
            else
            {
                wireCosts.Add((await s.JsonAsync(response)).GetProperty("billing_cost").GetProperty("amount").GetString()!);
            }
        }

        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        await s.Gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
        var billing = await UsageTables.WaitForAsync(storage, TableNames.Billing, rows => rows.Count >= n, TimeSpan.FromSeconds(30));
        var energy = await UsageTables.WaitForAsync(storage, TableNames.Energy, rows => rows.Count >= n, TimeSpan.FromSeconds(30));
        await Task.Delay(500, Ct);
        billing = await UsageTables.AllAsync(storage, TableNames.Billing);

        Assert.Equal(n, billing.Count);
        Assert.Equal(n, energy.Count);
        // input = 2000 − 1500 cached = 500 at 3/MTok; cache read 1500 at 0.3/MTok; output 5 at 15/MTok → 0.0015 + 0.00045 + 0.000075.
        const long expectedNanos = 1_500_000 + 450_000 + 75_000;
        foreach (var row in billing)
        {
            Assert.Equal("acme|" + row.GetDateTime("StartedAt")!.Value.ToString("yyyy-MM-dd"), row.PartitionKey);
            Assert.Equal(row.RowKey, row.GetString("RequestId"));
            Assert.Equal(500, UsageTables.Long(row, "InputTokens"));
            Assert.Equal(1_500, UsageTables.Long(row, "CacheReadTokens"));
            Assert.Equal(5, UsageTables.Long(row, "OutputTokens"));
            Assert.Equal("EUR", row.GetString("Currency"));
            Assert.Equal(expectedNanos, UsageTables.Long(row, "CostNanos"));
            Assert.Equal("0.002025000", row.GetString("Cost"));
            Assert.Equal("claude-sonnet-4-5-20250929", row.GetString("RequestedModel"));
            Assert.Equal("qwen3-coder-30b-a3b-instruct", row.GetString("UpstreamModel"));
            Assert.Equal(200, row.GetInt32("Status"));
            Assert.False(row.GetBoolean("Cancelled"));
            Assert.Equal(16, row.GetString("KeyId")!.Length);
        }

        Assert.All(wireCosts, c => Assert.Equal("0.002025000", c));
        Assert.All(energy, row =>
        {
            Assert.Equal("melious-energy-1", row.GetString("Method"));
            Assert.True(row.GetDouble("EnergyWh") > 0);
            Assert.InRange(row.GetDouble("EnergyWh")!.Value, row.GetDouble("EnergyWhMin")!.Value, row.GetDouble("EnergyWhMax")!.Value);
            Assert.Equal("westeurope", row.GetString("Region"));
        });

        // The daily rollup equals the sum of the rows.
        var daily = await UsageTables.WaitForAsync(storage, TableNames.UsageDaily, rows => rows.Sum(r => UsageTables.Long(r, "Requests")) >= n, TimeSpan.FromSeconds(10));
        var rollup = Assert.Single(daily);
        Assert.Equal(n, UsageTables.Long(rollup, "Requests"));
        Assert.Equal(n * expectedNanos, UsageTables.Long(rollup, "CostNanos"));
        Assert.Equal(energy.Sum(e => UsageTables.Long(e, "EnergyMicroWh")), UsageTables.Long(rollup, "EnergyMicroWh"));
    }

    [Fact]
    public async Task ClientCancel_IsBilledForTheTokensStreamed()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s = await Scenario.StartAsync(azurite, async (_, context) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync($"data: {Sse.Role()}\n\n", context.RequestAborted);
            for (var i = 0; i < 1000; i++)
            {
                await context.Response.WriteAsync($"data: {Sse.Content($"t{i} ")}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                if (i == 9)
                {
                    started.TrySetResult();
                }

                await Task.Delay(20, context.RequestAborted);
            }
        }, Priced);

        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(s.Gateway.BaseUrl) };
        client.DefaultRequestHeaders.Add("x-api-key", s.Key);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(Scenario.Body(stream: true).ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        var body = await response.Content.ReadAsStreamAsync(Ct);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        await Task.Delay(100, Ct);
        body.Dispose();
        response.Dispose();
        await s.Upstream.Last.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(5), Ct);

        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        await s.Gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
        var rows = await UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Count >= 1, TimeSpan.FromSeconds(30));
        var row = Assert.Single(rows);
        Assert.True(row.GetBoolean("Cancelled"));
        Assert.True(row.GetBoolean("UsageEstimated"));
        Assert.InRange(UsageTables.Long(row, "OutputTokens"), 10, 999);
        Assert.True(UsageTables.Long(row, "InputTokens") > 0);
        Assert.True(UsageTables.Long(row, "CostNanos") > 0);
        Assert.Equal(200, row.GetInt32("Status"));
    }

    [Fact]
    public async Task RedeliveredThreeTimes_ShuffledAcrossTwoConsumers_CountsEachRequestOnce()
    {
        await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, "http://127.0.0.1:9/v1", new Dictionary<string, string?> { ["Melious:Usage:RunConsumer"] = "false" });
        var storage = gateway.Services.GetRequiredService<StorageClients>();
        var options = gateway.Services.GetRequiredService<IOptions<GatewayOptions>>();
        var queue = storage.Queue(gateway.QueueName);

        var events = SyntheticEvents(90).ToList();
        var messages = new List<byte[]>();
        foreach (var chunk in events.Chunk(4))
        {
            messages.Add(JsonSerializer.SerializeToUtf8Bytes(new UsageMessage([.. chunk]), UsageJsonContext.Default.UsageMessage));
        }

        var deliveries = messages.Concat(messages).Concat(messages).OrderBy(_ => Random.Shared.Next()).ToList();
        foreach (var message in deliveries)
        {
            await queue.SendMessageAsync(BinaryData.FromBytes(message), cancellationToken: Ct);
        }

        var writer = gateway.Services.GetRequiredService<UsageWriter>();
        var consumers = new[]
        {
            new UsageQueueConsumer(storage, writer, options, NullLogger<UsageQueueConsumer>.Instance),
            new UsageQueueConsumer(storage, writer, options, NullLogger<UsageQueueConsumer>.Instance),
        };
        foreach (var consumer in consumers)
        {
            await consumer.StartAsync(Ct);
        }

        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200, Ct);
        }

        while (consumers.Sum(c => c.MessagesWritten) < deliveries.Count && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, Ct);
        }

        foreach (var consumer in consumers)
        {
            await consumer.StopAsync(Ct);
        }

        Assert.Equal(deliveries.Count, consumers.Sum(c => c.MessagesWritten));
        Assert.True(consumers.All(c => c.MessagesWritten > 0), "both consumers took part");
        await AssertTotalsMatchAsync(storage, events);
    }

    [Fact]
    public async Task MalformedMessages_GoToPoison_AfterTheRetryCount_NamingTheRequest()
    {
        await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, "http://127.0.0.1:9/v1", new Dictionary<string, string?>
        {
            ["Melious:Usage:MaxDequeueCount"] = "3",
            ["Melious:Usage:ConsumerVisibilityTimeout"] = "00:00:02",
        });
        var storage = gateway.Services.GetRequiredService<StorageClients>();
        var queue = storage.Queue(gateway.QueueName);
        var poison = storage.Queue(gateway.Prefix + "-usage-poison");
        await queue.SendMessageAsync(BinaryData.FromString("this is not json"), cancellationToken: Ct);
        await queue.SendMessageAsync(BinaryData.FromString("""{"v":1,"events":[{"requestId":"0199bad0bad0bad0bad0bad0bad0bad0","account":"acme","upstreamModel":"m"}]}"""), cancellationToken: Ct);
        var good = SyntheticEvents(1).Single();
        await queue.SendMessageAsync(BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(new UsageMessage([good]), UsageJsonContext.Default.UsageMessage)), cancellationToken: Ct);

        // The consumer moves a message in three steps: send to the poison queue, delete from the usage queue, log. The
        // poison count reaches 2 one delete round trip before the second move is logged and its message deleted, so
        // wait for all three before asserting them.
        bool PoisonLogged() => gateway.Logs.Lines.Any(l => l.Contains("0199bad0bad0bad0bad0bad0bad0bad0", StringComparison.Ordinal) && l.Contains("poison", StringComparison.OrdinalIgnoreCase));
        var deadline = DateTime.UtcNow.AddSeconds(45);
        while (((await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount < 2 || !PoisonLogged() || (await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount > 0)
               && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250, Ct);
        }

        Assert.Equal(2, (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount);
        Assert.Contains(gateway.Logs.Lines, l => l.Contains("0199bad0bad0bad0bad0bad0bad0bad0", StringComparison.Ordinal) && l.Contains("poison", StringComparison.OrdinalIgnoreCase));
        var billing = await UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Count >= 1, TimeSpan.FromSeconds(10));
        Assert.Equal(good.RequestId, Assert.Single(billing).RowKey);
        Assert.Equal(0, (await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount);
    }

    [Fact]
    public async Task SessionTotals_CanBeReadBack()
    {
        await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, "http://127.0.0.1:9/v1", new Dictionary<string, string?> { ["Melious:Usage:RunConsumer"] = "false" });
        var writer = gateway.Services.GetRequiredService<UsageWriter>();
        var events = SyntheticEvents(30).ToList();
        await writer.WriteAsync(events, Ct);
        await writer.WriteAsync(events.Take(10).ToList(), Ct);

        var reader = gateway.Services.GetRequiredService<UsageReader>();
        var day = DateOnly.FromDateTime(events[0].StartedAt.UtcDateTime);
        var sessions = new List<SessionUsageRow>();
        await foreach (var row in reader.ReadSessionsAsync(day.AddDays(-3), day.AddDays(3), null, cancellationToken: Ct))
        {
            sessions.Add(row);
        }

        foreach (var group in events.Where(e => e.SessionId is not null).GroupBy(e => e.SessionId))
        {
            var rows = sessions.Where(r => r.SessionId == group.Key).ToList();
            Assert.Equal(group.Count(), rows.Sum(r => r.Totals.Requests));
            Assert.Equal(group.Sum(e => e.OutputTokens), rows.Sum(r => r.Totals.OutputTokens));
            Assert.Equal(group.Sum(e => e.CostNanos), rows.Sum(r => r.Totals.CostNanos));
        }
    }

    internal static async Task AssertTotalsMatchAsync(StorageClients storage, IReadOnlyList<UsageEvent> events)
    {
        var billing = await UsageTables.AllAsync(storage, TableNames.Billing);
        var energy = await UsageTables.AllAsync(storage, TableNames.Energy);
        var daily = await UsageTables.AllAsync(storage, TableNames.UsageDaily);
        Assert.Equal(events.Count, billing.Count);
        Assert.Equal(events.Count, energy.Count);
        Assert.Equal(events.Select(e => e.RequestId).Order(), billing.Select(b => b.RowKey).Order());

        foreach (var group in events.GroupBy(e => (e.Account, e.Day, e.UpstreamModel)))
        {
            var row = Assert.Single(daily, d => d.GetString("Account") == group.Key.Account && d.GetString("Day") == group.Key.Day && d.GetString("Model") == group.Key.UpstreamModel);
            Assert.Equal(group.Count(), UsageTables.Long(row, "Requests"));
            Assert.Equal(group.Sum(e => e.InputTokens), UsageTables.Long(row, "InputTokens"));
            Assert.Equal(group.Sum(e => e.CacheReadTokens), UsageTables.Long(row, "CacheReadTokens"));
            Assert.Equal(group.Sum(e => e.CacheWriteTokens), UsageTables.Long(row, "CacheWriteTokens"));
            Assert.Equal(group.Sum(e => e.OutputTokens), UsageTables.Long(row, "OutputTokens"));
            Assert.Equal(group.Sum(e => e.ReasoningTokens), UsageTables.Long(row, "ReasoningTokens"));
            Assert.Equal(group.Sum(e => e.CostNanos), UsageTables.Long(row, "CostNanos"));
            Assert.Equal(group.Sum(e => UsageCounters.Micro(e.EnergyWh)), UsageTables.Long(row, "EnergyMicroWh"));
            Assert.Equal(group.Sum(e => UsageCounters.Micro(e.Gco2e)), UsageTables.Long(row, "Gco2eMicrograms"));
            Assert.Equal(group.Count(e => e.IsError), UsageTables.Long(row, "ErrorRequests"));
        }

        Assert.Equal(events.GroupBy(e => (e.Account, e.Day, e.UpstreamModel)).Count(), daily.Count);
    }

    /// <summary>Events across two accounts, three models, two days and a few sessions; some with unknown energy, some failed.</summary>
    internal static IEnumerable<UsageEvent> SyntheticEvents(int count)
    {
        var models = new[] { "qwen3-coder-30b", "Qwen/Qwen3-235B-A22B", "llama-3.1-8b" };
        var start = new DateTimeOffset(2026, 11, 23, 23, 58, 0, TimeSpan.Zero);
        for (var i = 0; i < count; i++)
        {
            var known = i % 5 != 0;
            yield return new UsageEvent
            {
                RequestId = Ids.NewRequestId(),
                Account = i % 3 == 0 ? "globex" : "acme",
                KeyId = i % 2 == 0 ? "0123456789abcdef" : "fedcba9876543210",
                SessionId = i % 4 == 0 ? null : $"session-{i % 3}",
                RequestedModel = "claude-sonnet-4-5",
                UpstreamModel = models[i % models.Length],
                Upstream = "http://gpu/v1",
                Stream = true,
                InputTokens = 100 + i,
                CacheReadTokens = i * 10,
                CacheWriteTokens = i % 2,
                OutputTokens = 20 + i % 7,
                ReasoningTokens = i % 3,
                StartedAt = start.AddSeconds(i * 5),
                DurationMs = 1_000 + i,
                Status = i % 11 == 0 ? 529 : 200,
                ErrorType = i % 11 == 0 ? "overloaded_error" : null,
                Currency = "USD",
                CostNanos = 1_234_567 + i * 1_000,
                Region = "westeurope",
                EnergyWh = known ? 0.0123456 + i * 0.001 : null,
                EnergyWhMin = known ? 0.01 : null,
                EnergyWhMax = known ? 0.05 : null,
                Gco2e = known ? 0.0031 + i * 0.0001 : null,
                Gco2eMin = known ? 0.002 : null,
                Gco2eMax = known ? 0.01 : null,
                WaterMl = known ? 0.04 : null,
                GridGco2ePerKwh = 255,
                Pue = 1.18,
                EnergyMethod = known ? "melious-energy-1" : "unknown",
            };
        }
    }
}

using System.Net;
using System.Text.Json;
using Azure.Data.Tables;
using Azure.Storage.Queues;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Routing;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.FunctionalTests.Usage;

/// <summary>
/// Requests → usage events → queue → billing/energy rows and rollups, against real Azurite queues and tables, on both
/// hosts: the self-host's in-process consumer, and the Functions app's queue trigger under the real host. Each request
/// test gives its key an account of its own and prices a model of its own in the catalog (both hosts read it), so
/// it reads back only its own rows from the Functions host's shared tables.
/// </summary>
public abstract class UsagePipelineTests(IGatewayTarget target)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Rows appear after the publisher's flush and the consumer's (or trigger's) poll: a hang bound, not a speed target.</summary>
    private static readonly TimeSpan RowsWithin = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A catalog model of the test's own priced per million tokens at 3 input, 15 output, 0.3 cache read, 3.75 cache
    /// write (EUR), with qwen3-coder-30b-a3b's known energy parameters, reached through an alias of its own once the
    /// gateway serves it. Returns the alias (the requested model) and the model id (the upstream model).
    /// </summary>
    private static async Task<(string Requested, string Model)> PricedModelAsync(Scenario s)
    {
        var model = CatalogKit.Unique("qwen3-coder-30b-a3b-instruct");
        var alias = CatalogKit.Unique("claude-priced");
        var energy = KnownModels.Guess("qwen3-coder-30b-a3b-instruct")!;
        await s.Catalog().UpsertModelAsync(model, new Dictionary<string, object?>
        {
            ["InputPrice"] = 3m,
            ["OutputPrice"] = 15m,
            ["CacheReadPrice"] = 0.3m,
            ["CacheWritePrice"] = 3.75m,
            ["Currency"] = "EUR",
            ["ActiveParamsB"] = energy.ActiveParamsB,
            ["TotalParamsB"] = energy.TotalParamsB,
            ["QuantBits"] = energy.QuantBits,
            ["EnergySource"] = energy.Source,
        }, Ct);
        await s.Catalog().SetAliasAsync(alias, model, Ct);
        await s.AwaitCatalogAsync(alias, m => CatalogKit.ResolvesTo(m) == model);
        return (alias, model);
    }

    private static async Task RemoveAsync(Scenario s, string alias, string model)
    {
        await s.Catalog().DeleteAliasAsync(alias, CancellationToken.None);
        await s.Catalog().DeleteModelAsync(model, CancellationToken.None);
    }

    [Fact]
    public async Task NRequests_GiveExactlyNBillingAndNEnergyRows_WithTheRightTokensAndCosts()
    {
        const int n = 20;
        var account = CatalogKit.Unique("acme");
        await using var s = await Scenario.StartAsync(target, async (request, context) =>
        {
            var pieces = Enumerable.Range(0, 5).Select(i => $"w{i} ").ToArray();
            await Sse.WriteAsync(context, [Sse.Role(), .. pieces.Select(Sse.Content), Sse.Finish("stop"), Sse.Usage(2_000, 5, cached: 1_500)]);
        }, account: account);
        var (requested, model) = await PricedModelAsync(s);

        var wireCosts = new List<string>();
        for (var i = 0; i < n; i++)
        {
            var stream = i % 2 == 0;
            var response = await s.PostAsync(Scenario.Body(model: requested, stream: stream));
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

        await RemoveAsync(s, requested, model);
        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        await s.Gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
        var billing = await UsageTables.WaitForAsync(storage, TableNames.Billing, account, rows => rows.Count >= n, RowsWithin);
        var energy = await UsageTables.WaitForAsync(storage, TableNames.Energy, account, rows => rows.Count >= n, RowsWithin);
        await Task.Delay(500, Ct);
        billing = await UsageTables.AllAsync(storage, TableNames.Billing, account);

        Assert.Equal(n, billing.Count);
        Assert.Equal(n, energy.Count);
        // input = 2000 − 1500 cached = 500 at 3/MTok; cache read 1500 at 0.3/MTok; output 5 at 15/MTok → 0.0015 + 0.00045 + 0.000075.
        const long expectedNanos = 1_500_000 + 450_000 + 75_000;
        foreach (var row in billing)
        {
            Assert.Equal(UsageRows.RowPartition(account, row.GetDateTime("StartedAt")!.Value.ToString("yyyy-MM-dd")), row.PartitionKey);
            Assert.Equal(row.RowKey, row.GetString("RequestId"));
            Assert.Equal(500, UsageTables.Long(row, "InputTokens"));
            Assert.Equal(1_500, UsageTables.Long(row, "CacheReadTokens"));
            Assert.Equal(5, UsageTables.Long(row, "OutputTokens"));
            Assert.Equal("EUR", row.GetString("Currency"));
            Assert.Equal(expectedNanos, UsageTables.Long(row, "CostNanos"));
            Assert.Equal("0.002025000", row.GetString("Cost"));
            Assert.Equal(requested, row.GetString("RequestedModel"));
            Assert.Equal(model, row.GetString("UpstreamModel"));
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
        var daily = await UsageTables.WaitForAsync(storage, TableNames.UsageDaily, account, rows => rows.Sum(r => UsageTables.Long(r, "Requests")) >= n, TimeSpan.FromSeconds(10));
        var rollup = Assert.Single(daily);
        Assert.Equal(n, UsageTables.Long(rollup, "Requests"));
        Assert.Equal(n * expectedNanos, UsageTables.Long(rollup, "CostNanos"));
        Assert.Equal(energy.Sum(e => UsageTables.Long(e, "EnergyMicroWh")), UsageTables.Long(rollup, "EnergyMicroWh"));
    }

    [Fact]
    public async Task ClientCancel_IsBilledForTheTokensStreamed()
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var account = CatalogKit.Unique("acme");
        await using var s = await Scenario.StartAsync(target, async (_, context) =>
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
        }, account: account);
        var (requested, model) = await PricedModelAsync(s);

        using var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(s.Gateway.BaseUrl) };
        client.DefaultRequestHeaders.Add("x-api-key", s.Key);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(Scenario.Body(model: requested, stream: true).ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct);
        var body = await response.Content.ReadAsStreamAsync(Ct);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        await Task.Delay(100, Ct);
        body.Dispose();
        response.Dispose();
        await s.Upstream.Last.Aborted.Task.WaitAsync(TimeSpan.FromSeconds(5), Ct);
        await RemoveAsync(s, requested, model);

        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        await s.Gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
        await UsageTables.WaitForAsync(storage, TableNames.Billing, account, r => r.Count >= 1, RowsWithin);
        await Task.Delay(500, Ct);
        var row = Assert.Single(await UsageTables.AllAsync(storage, TableNames.Billing, account));
        Assert.True(row.GetBoolean("Cancelled"));
        Assert.True(row.GetBoolean("UsageEstimated"));
        Assert.InRange(UsageTables.Long(row, "OutputTokens"), 10, 999);
        Assert.True(UsageTables.Long(row, "InputTokens") > 0);
        Assert.True(UsageTables.Long(row, "CostNanos") > 0);
        Assert.Equal(200, row.GetInt32("Status"));
    }

    [Fact]
    public async Task RedeliveredThreeTimes_Shuffled_AcrossConcurrentConsumers_CountsEachRequestOnce()
    {
        // Accounts and sessions of this test's own: on the Functions host the usage tables are shared by the run.
        var events = SyntheticEvents(90, Guid.NewGuid().ToString("N")[..8]).ToList();
        var messages = new List<byte[]>();
        foreach (var chunk in events.Chunk(4))
        {
            messages.Add(JsonSerializer.SerializeToUtf8Bytes(new UsageMessage([.. chunk]), UsageJsonContext.Default.UsageMessage));
        }

        var deliveries = messages.Concat(messages).Concat(messages).OrderBy(_ => Random.Shared.Next()).ToList();

        if (target is FunctionsHostFixture host)
        {
            // The Functions app's queue trigger is the consumer: the host hands it host.json's batch of messages at
            // once, so several deliveries of one message are written concurrently, as by the two consumers below.
            host.EnsureRunning();
            var hostStorage = host.Services.GetRequiredService<StorageClients>();
            var usageQueue = hostStorage.Queue(Melious.Functions.UsageQueue.Name);

            // The usage of the collection's earlier tests may still be on its way here (the worker's publisher sends
            // in batches, the trigger polls every 5 s at most when idle): count from a moment the queue is empty and
            // the trigger has been idle for longer than that, so that only this test's deliveries are counted.
            int ExecutedSince(int from) => host.OutputSince(from).Count(l => l.Contains("Executed 'Functions.UsageQueue'", StringComparison.Ordinal));
            for (var quietUntil = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < quietUntil;)
            {
                var before = host.Output.Count;
                await Task.Delay(TimeSpan.FromSeconds(6), Ct);
                if (ExecutedSince(before) == 0 && (await usageQueue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount == 0)
                {
                    break;
                }
            }

            var mark = host.Output.Count;
            foreach (var message in deliveries)
            {
                await usageQueue.SendMessageAsync(BinaryData.FromBytes(message), cancellationToken: Ct);
            }

            int Executed() => host.OutputSince(mark).Count(l => l.Contains("Executed 'Functions.UsageQueue' (Succeeded", StringComparison.Ordinal));
            var until = DateTime.UtcNow.AddSeconds(180);
            while ((Executed() < deliveries.Count || (await usageQueue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount > 0) && DateTime.UtcNow < until)
            {
                await Task.Delay(250, Ct);
            }

            await Task.Delay(1000, Ct);
            Assert.Equal(deliveries.Count, Executed());
            await AssertTotalsMatchAsync(hostStorage, events);
            return;
        }

        await using var gateway = await TestGateway.StartAsync(target.ConnectionString, "http://127.0.0.1:9/v1", new Dictionary<string, string?> { ["Melious:Usage:RunConsumer"] = "false" });
        var storage = gateway.Services.GetRequiredService<StorageClients>();
        var options = gateway.Services.GetRequiredService<IOptions<GatewayOptions>>();
        var queue = storage.Queue(gateway.QueueName);
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

        // A hang bound: on a loaded machine 69 deliveries can take over a minute.
        var deadline = DateTime.UtcNow.AddSeconds(180);
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
        target.SelfHostOnly("sets the in-process consumer's own MaxDequeueCount and visibility timeout; under the Functions host the host moves a message to usage-events-poison after host.json's maxDequeueCount, which FunctionsHostUsageTests.MalformedMessage_ReachesThePoisonQueueAfterMaxDequeueCount_WithErrorLogsNamingTheRequestId checks");
        await using var gateway = await TestGateway.StartAsync(target.ConnectionString, "http://127.0.0.1:9/v1", new Dictionary<string, string?>
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
        target.SelfHostOnly("calls UsageWriter and UsageReader directly, storage-side; no request or message passes a host");
        await using var gateway = await TestGateway.StartAsync(target.ConnectionString, "http://127.0.0.1:9/v1", new Dictionary<string, string?> { ["Melious:Usage:RunConsumer"] = "false" });
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

    /// <summary>The billing, energy and daily rows of the events' accounts match the events exactly (other accounts' rows aside).</summary>
    internal static async Task AssertTotalsMatchAsync(StorageClients storage, IReadOnlyList<UsageEvent> events)
    {
        var accounts = events.Select(e => e.Account).ToHashSet(StringComparer.Ordinal);
        bool Ours(TableEntity row) => row.GetString("Account") is { } account && accounts.Contains(account);
        var billing = (await UsageTables.AllAsync(storage, TableNames.Billing)).Where(Ours).ToList();
        var energy = (await UsageTables.AllAsync(storage, TableNames.Energy)).Where(Ours).ToList();
        var daily = (await UsageTables.AllAsync(storage, TableNames.UsageDaily)).Where(Ours).ToList();
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

    /// <summary>
    /// Events across two accounts, three models, two days and a few sessions; some with unknown energy, some failed.
    /// A <paramref name="tag"/> suffixes the account and session names, for tables other tests share.
    /// </summary>
    internal static IEnumerable<UsageEvent> SyntheticEvents(int count, string? tag = null)
    {
        var suffix = tag is null ? "" : "-" + tag;
        var models = new[] { "qwen3-coder-30b", "Qwen/Qwen3-235B-A22B", "llama-3.1-8b" };
        var start = new DateTimeOffset(2026, 11, 23, 23, 58, 0, TimeSpan.Zero);
        for (var i = 0; i < count; i++)
        {
            var known = i % 5 != 0;
            yield return new UsageEvent
            {
                RequestId = Ids.NewRequestId(),
                Account = (i % 3 == 0 ? "globex" : "acme") + suffix,
                KeyId = i % 2 == 0 ? "0123456789abcdef" : "fedcba9876543210",
                SessionId = i % 4 == 0 ? null : $"session-{i % 3}{suffix}",
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

/// <summary>The tests of <see cref="UsagePipelineTests"/> against the self-host.</summary>
public sealed class UsagePipelineTestsOnSelfHost(AzuriteFixture azurite) : UsagePipelineTests(azurite);

/// <summary>The tests of <see cref="UsagePipelineTests"/> against the Functions app under the real Functions host.</summary>
[Collection(FunctionsHostCollection.Name)]
public sealed class UsagePipelineTestsOnFunctionsHost(FunctionsHostFixture host) : UsagePipelineTests(host);

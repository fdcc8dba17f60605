using System.Text.Json;
using Melious.Functions;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Melious.Gateway.FunctionalTests.Usage;

/// <summary>
/// A usage table that is missing when a message is written (storage was down when the host started, so
/// <c>StorageInitializer</c> created nothing, or the table was deleted): the writer creates it when
/// <c>Melious:Storage:CreateIfMissing</c> allows, and the message is written, never poisoned. Real Azurite.
/// </summary>
public sealed class MissingTableTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task BillingTableDeletedAfterStart_TheConsumerCreatesIt_AndWritesTheEvent_NothingPoisoned()
    {
        await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, "http://127.0.0.1:9/v1", new Dictionary<string, string?>
        {
            // Fast poisoning, so that the old behaviour (404 TableNotFound counted as a bad message) shows within seconds.
            ["Melious:Usage:MaxDequeueCount"] = "2",
            ["Melious:Usage:ConsumerVisibilityTimeout"] = "00:00:02",
        });
        var storage = gateway.Services.GetRequiredService<StorageClients>();
        var poison = storage.Queue(gateway.Prefix + "-usage-poison");
        await storage.Table(TableNames.Billing).DeleteAsync(Ct);

        var usage = UsagePipelineTests.SyntheticEvents(1, Guid.NewGuid().ToString("N")[..8]).Single();
        gateway.Publisher.Publish(usage);
        await gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);

        async Task<List<Azure.Data.Tables.TableEntity>> BillingRowsAsync()
        {
            try
            {
                return await UsageTables.AllAsync(storage, TableNames.Billing, usage.Account);
            }
            catch (Azure.RequestFailedException ex) when (ex.Status == 404)
            {
                return []; // not created again yet
            }
        }

        async Task<int> PoisonedAsync() => await poison.ExistsAsync(Ct) ? (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount : 0;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline
               && (await BillingRowsAsync()).Count == 0
               && await PoisonedAsync() == 0)
        {
            await Task.Delay(200, Ct);
        }

        Assert.Equal(0, await PoisonedAsync());
        var row = Assert.Single(await BillingRowsAsync());
        Assert.Equal(usage.RequestId, row.RowKey);
        var daily = await UsageTables.WaitForAsync(storage, TableNames.UsageDaily, usage.Account, r => r.Count > 0, TimeSpan.FromSeconds(10));
        Assert.Equal(1, UsageTables.Long(Assert.Single(daily), "Requests"));
        Assert.Contains(gateway.Logs.Lines, l => l.Contains("missing and have been created", StringComparison.Ordinal));
    }

    [Fact]
    public async Task FunctionsPath_NoUsageTablesAtAll_TheProcessorCreatesThem_AndWritesTheEvent()
    {
        // The Functions worker's StorageInitializer found storage down at start: no table under this prefix exists.
        var storage = new StorageClients(new StorageOptions { ConnectionString = azurite.ConnectionString, TablePrefix = AzuriteFixture.NewPrefix() });
        var usage = UsagePipelineTests.SyntheticEvents(1).Single();
        var processor = new UsageMessageProcessor(new UsageWriter(storage, NullLogger<UsageWriter>.Instance), new UsageQueueRetryPolicy { MaxAttempts = 1 }, storage, Microsoft.Extensions.Options.Options.Create(new GatewayOptions()), NullLogger<UsageMessageProcessor>.Instance);

        await processor.ProcessAsync(Message(usage), "m-1", 1, Ct);

        var row = Assert.Single(await UsageTables.AllAsync(storage, TableNames.Billing));
        Assert.Equal(usage.RequestId, row.RowKey);
        Assert.Single(await UsageTables.AllAsync(storage, TableNames.Energy));
        Assert.Equal(1, UsageTables.Long(Assert.Single(await UsageTables.AllAsync(storage, TableNames.UsageDaily)), "Requests"));
    }

    [Fact]
    public async Task CreationNotAllowed_AMissingTableIsStorageTrouble_RetriedNotPoisoned()
    {
        var storage = new StorageClients(new StorageOptions { ConnectionString = azurite.ConnectionString, TablePrefix = AzuriteFixture.NewPrefix(), CreateIfMissing = false });
        var usage = UsagePipelineTests.SyntheticEvents(1).Single();
        var writer = new UsageWriter(storage, NullLogger<UsageWriter>.Instance);

        var error = await Assert.ThrowsAnyAsync<Exception>(() => writer.WriteAsync([usage], Ct));

        Assert.True(UsageWriter.IsTableNotFound(error), error.ToString());
        Assert.True(UsageQueueConsumer.IsTransient(error), "a missing table must not count towards poisoning");
        var name = storage.Table(TableNames.Billing).Name;
        await foreach (var table in storage.Tables.QueryAsync(t => t.Name == name, cancellationToken: Ct))
        {
            Assert.Fail($"table {table.Name} was created although CreateIfMissing is false");
        }
    }

    private static string Message(UsageEvent usage) =>
        JsonSerializer.Serialize(new UsageMessage([usage]), UsageJsonContext.Default.UsageMessage);
}

using System.Text.Json;
using Azure.Storage.Queues;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.FunctionalTests.Usage;

/// <summary>
/// The self-host's usage consumer when deleting a written message fails: the consumer keeps running (a
/// <c>BackgroundService</c> that throws stops the host), the message comes back and is counted once, and a
/// written message is never moved to the poison queue. Real Azurite; the 503s come from a stub HTTP server in front
/// of Azurite's queue endpoint that passes everything else through unchanged.
/// </summary>
public sealed class ConsumerDeleteFailureTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task DeleteAnswers503_TheConsumerKeepsRunning_AndTheRedeliveredMessageIsCountedOnce()
    {
        // The Azure SDK tries a request 4 times (3 retries), so 4 refused DELETEs are one failed delete.
        var refuseDeletes = 4;
        var deletes = 0;
        var queuePort = new Uri(QueueEndpoint(azurite.ConnectionString)).Port;
        using var forward = new HttpClient();
        await using var proxy = await ScriptedUpstream.StartAsync(async (request, context) =>
        {
            if (request.Method == "DELETE" && request.Path.Contains("/messages/", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref deletes);
                if (Interlocked.Decrement(ref refuseDeletes) >= 0)
                {
                    context.Response.StatusCode = 503;
                    return;
                }
            }

            await ForwardAsync(forward, queuePort, request, context);
        });

        var prefix = AzuriteFixture.NewPrefix();
        var direct = new StorageClients(new StorageOptions { ConnectionString = azurite.ConnectionString, TablePrefix = prefix });
        var viaProxy = new StorageClients(new StorageOptions
        {
            ConnectionString = azurite.ConnectionString.Replace($":{queuePort}/", $":{proxy.Port}/", StringComparison.Ordinal),
            TablePrefix = prefix,
        });
        foreach (var table in TableNames.All)
        {
            await direct.Table(table).CreateIfNotExistsAsync(Ct);
        }

        var options = Options.Create(new GatewayOptions());
        options.Value.Usage.QueueName = prefix + "-usage";
        options.Value.Usage.PoisonQueueName = prefix + "-usage-poison";
        options.Value.Usage.ConsumerPollInterval = TimeSpan.FromMilliseconds(100);
        options.Value.Usage.ConsumerVisibilityTimeout = TimeSpan.FromSeconds(2);
        var queue = direct.Queue(options.Value.Usage.QueueName);
        var poison = direct.Queue(options.Value.Usage.PoisonQueueName);
        await queue.CreateIfNotExistsAsync(cancellationToken: Ct);
        await poison.CreateIfNotExistsAsync(cancellationToken: Ct);

        var usage = UsagePipelineTests.SyntheticEvents(1, Guid.NewGuid().ToString("N")[..8]).Single();
        await queue.SendMessageAsync(BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(new UsageMessage([usage]), UsageJsonContext.Default.UsageMessage)), cancellationToken: Ct);

        var logs = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(logs));
        var consumer = new UsageQueueConsumer(viaProxy, new UsageWriter(viaProxy, loggerFactory.CreateLogger<UsageWriter>()), options, loggerFactory.CreateLogger<UsageQueueConsumer>());
        await consumer.StartAsync(Ct);
        try
        {
            // A hang bound: the first delete fails (~1.5 s of SDK retries), the message returns after 2 s.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (consumer.MessagesWritten == 0 && consumer.ExecuteTask is { IsCompleted: false } && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100, Ct);
            }

            Assert.False(consumer.ExecuteTask!.IsCompleted, $"the consumer stopped: {consumer.ExecuteTask.Exception}");
            Assert.Equal(1, consumer.MessagesWritten);
            Assert.True(Volatile.Read(ref deletes) >= 5, $"the message was deleted after its redelivery ({deletes} DELETEs)");
            Assert.Contains(logs.Lines, l => l.Contains("could not be deleted", StringComparison.Ordinal) && l.Contains(usage.RequestId, StringComparison.Ordinal));
        }
        finally
        {
            await consumer.StopAsync(CancellationToken.None);
        }

        Assert.Equal(0, (await queue.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount);
        Assert.Equal(0, (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount);
        Assert.Equal(usage.RequestId, Assert.Single(await UsageTables.AllAsync(direct, TableNames.Billing, usage.Account)).RowKey);
        Assert.Equal(1, UsageTables.Long(Assert.Single(await UsageTables.AllAsync(direct, TableNames.UsageDaily, usage.Account)), "Requests"));
    }

    [Fact]
    public async Task WrittenMessage_WhoseDeleteIsRefused_IsNeverPoisoned_EvenOnItsLastDelivery()
    {
        var prefix = AzuriteFixture.NewPrefix();
        var storage = new StorageClients(new StorageOptions { ConnectionString = azurite.ConnectionString, TablePrefix = prefix });
        var options = Options.Create(new GatewayOptions());
        options.Value.Usage.QueueName = prefix + "-usage";
        options.Value.Usage.PoisonQueueName = prefix + "-usage-poison";
        options.Value.Usage.MaxDequeueCount = 1;
        foreach (var table in TableNames.All)
        {
            await storage.Table(table).CreateIfNotExistsAsync(Ct);
        }

        var queue = storage.Queue(options.Value.Usage.QueueName);
        var poison = storage.Queue(options.Value.Usage.PoisonQueueName);
        await queue.CreateIfNotExistsAsync(cancellationToken: Ct);
        await poison.CreateIfNotExistsAsync(cancellationToken: Ct);
        var usage = UsagePipelineTests.SyntheticEvents(1).Single();
        await queue.SendMessageAsync(BinaryData.FromBytes(JsonSerializer.SerializeToUtf8Bytes(new UsageMessage([usage]), UsageJsonContext.Default.UsageMessage)), cancellationToken: Ct);

        // This delivery's visibility runs out and the message is received again: the first pop receipt is stale, so
        // deleting with it gets 400 PopReceiptMismatch (a write slower than the visibility timeout).
        var stale = Assert.Single((await queue.ReceiveMessagesAsync(1, TimeSpan.FromSeconds(1), Ct)).Value);
        await Task.Delay(1500, Ct);
        Assert.Single((await queue.ReceiveMessagesAsync(1, TimeSpan.FromMinutes(1), Ct)).Value);

        var logs = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(logs));
        var consumer = new UsageQueueConsumer(storage, new UsageWriter(storage, loggerFactory.CreateLogger<UsageWriter>()), options, loggerFactory.CreateLogger<UsageQueueConsumer>());
        await consumer.ProcessAsync(stale, Ct);

        Assert.Equal(usage.RequestId, Assert.Single(await UsageTables.AllAsync(storage, TableNames.Billing)).RowKey);
        Assert.Equal(0, consumer.MessagesPoisoned);
        Assert.Equal(0, (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount);
        Assert.Contains(logs.Lines, l => l.Contains("could not be deleted", StringComparison.Ordinal));
    }

    private static string QueueEndpoint(string connectionString) =>
        connectionString.Split(';').Single(p => p.StartsWith("QueueEndpoint=", StringComparison.Ordinal))["QueueEndpoint=".Length..];

    /// <summary>Passes a request to Azurite's queue endpoint unchanged (SharedKey signs the path, not the host) and copies the answer back.</summary>
    private static async Task ForwardAsync(HttpClient client, int queuePort, UpstreamRequest request, HttpContext context)
    {
        using var message = new HttpRequestMessage(new HttpMethod(request.Method), $"http://127.0.0.1:{queuePort}{request.Path}");
        if (request.Body.Length > 0 || request.Headers.ContainsKey("content-length"))
        {
            message.Content = new ByteArrayContent(request.Body);
        }

        foreach (var (name, value) in request.Headers)
        {
            if (name is "host" or "content-length" or "connection" or "transfer-encoding")
            {
                continue;
            }

            if (!message.Headers.TryAddWithoutValidation(name, value))
            {
                message.Content?.Headers.TryAddWithoutValidation(name, value);
            }
        }

        using var response = await client.SendAsync(message, context.RequestAborted);
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            if (!name.Equals("transfer-encoding", StringComparison.OrdinalIgnoreCase) && !name.Equals("content-length", StringComparison.OrdinalIgnoreCase))
            {
                context.Response.Headers[name] = values.ToArray();
            }
        }

        await response.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
    }
}

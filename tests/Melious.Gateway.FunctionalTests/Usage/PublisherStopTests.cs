using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.FunctionalTests.Usage;

/// <summary>
/// A graceful stop sends what the publisher holds: the events still in its buffer, and the batches its senders have
/// already taken from it (the Functions app has no spool: an event not sent there is only in a log line).
/// </summary>
public sealed class PublisherStopTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task BatchesTheSendersHold_AreSentOnAGracefulStop()
    {
        var queueName = "q" + AzuriteFixture.NewPrefix();
        var storage = new StorageClients(new StorageOptions { ConnectionString = azurite.ConnectionString });
        var queue = storage.Queue(queueName);
        await queue.CreateIfNotExistsAsync(cancellationToken: Ct);
        using var logs = new CapturingLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs));

        // A long batch delay: each sender takes its events from the buffer, then waits for more to join.
        var options = Options.Create(new GatewayOptions { Usage = new UsageOptions { QueueName = queueName, BatchDelay = TimeSpan.FromSeconds(30), SenderConcurrency = 2 } });
        using var publisher = new QueueUsagePublisher(storage, options, loggers.CreateLogger<QueueUsagePublisher>());
        await publisher.StartAsync(Ct);
        var events = UsagePipelineTests.SyntheticEvents(5, "stop").ToList();
        foreach (var e in events)
        {
            publisher.Publish(e);
        }

        for (var deadline = DateTime.UtcNow.AddSeconds(10); publisher.Buffered > 0 && DateTime.UtcNow < deadline;)
        {
            await Task.Delay(10, Ct);
        }

        Assert.Equal(0, publisher.Buffered);
        await publisher.StopAsync(Ct);

        var sent = new List<string>();
        foreach (var message in (await queue.ReceiveMessagesAsync(maxMessages: 32, cancellationToken: Ct)).Value)
        {
            var body = JsonSerializer.Deserialize(message.Body.ToString(), UsageJsonContext.Default.UsageMessage)!;
            sent.AddRange(body.Events.Select(e => e.RequestId));
        }

        Assert.Equal(events.Select(e => e.RequestId).Order(StringComparer.Ordinal), sent.Order(StringComparer.Ordinal));
        Assert.DoesNotContain(logs.Lines, l => l.Contains("could not be delivered", StringComparison.Ordinal));
        Assert.Equal(5, publisher.Delivered);
    }
}

using System.Diagnostics;
using System.Text.Json;
using Melious.Functions;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// The queue function's failure handling: a message that can never be written fails at once (the runtime poisons
/// it after maxDequeueCount deliveries); storage trouble is retried in-process first, then rethrown, and on the last
/// delivery sent back to the queue as a new message instead of being poisoned.
/// </summary>
public sealed class UsageQueueFunctionTests : IDisposable
{
    private readonly CapturingLoggerProvider _logs = new();

    private readonly string _queue = "q" + AzuriteFixture.NewPrefix();

    private readonly AzuriteFixture _azurite;
    private readonly ILoggerFactory _loggerFactory;

    public UsageQueueFunctionTests(AzuriteFixture azurite)
    {
        _azurite = azurite;
        _loggerFactory = LoggerFactory.Create(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Trace));
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _loggerFactory.Dispose();

    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public async Task InvalidMessage_IsRethrownAtOnce_NamingItsRequestId(long dequeueCount)
    {
        var function = new UsageQueueFunction(Processor(DeadStorage(), new UsageQueueRetryPolicy { MaxAttempts = 4, BaseDelay = TimeSpan.FromSeconds(30) }));
        var stopwatch = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<UsageMessageException>(() =>
            function.RunAsync("""{"events":[{"requestId":"req-123","account":""}]}""", QueueTrigger.Context("m-1", dequeueCount), Ct));

        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10), "a bad message must not wait for retries");
        Assert.Equal("req-123", error.RequestId);
        var line = Assert.Single(_logs.Lines, l => l.Contains("req-123", StringComparison.Ordinal));
        Assert.Contains("m-1", line);
        Assert.DoesNotContain(_logs.Lines, l => l.Contains("retrying", StringComparison.Ordinal));
    }

    [Fact]
    public async Task StorageUnavailable_IsRetriedInProcess_ThenRethrownForTheQueue()
    {
        var function = new UsageQueueFunction(Processor(DeadStorage(), new UsageQueueRetryPolicy { MaxAttempts = 3, BaseDelay = TimeSpan.FromMilliseconds(10) }));

        var error = await Assert.ThrowsAnyAsync<Exception>(() =>
            function.RunAsync(ValidMessage("req-456"), QueueTrigger.Context("m-2", 1), TestContext.Current.CancellationToken));

        Assert.IsNotType<UsageMessageException>(error);
        Assert.True(UsageQueueConsumer.IsTransient(error), error.ToString());
        Assert.Equal(2, _logs.Lines.Count(l => l.Contains("retrying", StringComparison.Ordinal) && l.Contains("req-456", StringComparison.Ordinal)));
        Assert.Single(_logs.Lines, l => l.Contains("after 3 attempts", StringComparison.Ordinal) && l.Contains("req-456", StringComparison.Ordinal));
    }

    [Fact]
    public async Task StorageUnavailableOnTheLastDelivery_SendsTheMessageBack_InsteadOfFailingIntoThePoisonQueue()
    {
        var policy = new UsageQueueRetryPolicy { MaxAttempts = 2, BaseDelay = TimeSpan.FromMilliseconds(10), RequeueDelay = TimeSpan.Zero };
        var queue = await LiveQueueAsync();
        var function = new UsageQueueFunction(Processor(DeadStorage(), policy, LiveStorage()));
        var message = ValidMessage("req-789");

        await function.RunAsync(message, QueueTrigger.Context("m-3", policy.MaxDequeueCount), Ct);

        var back = Assert.Single((await queue.ReceiveMessagesAsync(maxMessages: 32, cancellationToken: Ct)).Value);
        Assert.Equal(message, back.Body.ToString());
        Assert.Equal(1, back.DequeueCount);
        Assert.Single(_logs.Lines, l => l.Contains("sent back to the queue", StringComparison.Ordinal) && l.Contains("req-789", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ShutdownOnTheLastDelivery_SendsTheMessageBack()
    {
        var policy = new UsageQueueRetryPolicy { RequeueDelay = TimeSpan.Zero };
        var queue = await LiveQueueAsync();
        var function = new UsageQueueFunction(Processor(DeadStorage(), policy, LiveStorage()));
        using var stopping = new CancellationTokenSource();
        await stopping.CancelAsync();

        await function.RunAsync(ValidMessage("req-790"), QueueTrigger.Context("m-4", policy.MaxDequeueCount), stopping.Token);

        Assert.Single((await queue.ReceiveMessagesAsync(maxMessages: 32, cancellationToken: Ct)).Value);
    }

    [Fact]
    public async Task StorageUnavailableBeforeTheLastDelivery_IsLeftToTheRuntime()
    {
        var policy = new UsageQueueRetryPolicy { MaxAttempts = 1, RequeueDelay = TimeSpan.Zero };
        var queue = await LiveQueueAsync();
        var function = new UsageQueueFunction(Processor(DeadStorage(), policy, LiveStorage()));

        await Assert.ThrowsAnyAsync<Exception>(() => function.RunAsync(ValidMessage("req-791"), QueueTrigger.Context("m-5", policy.MaxDequeueCount - 1), Ct));

        Assert.Empty((await queue.ReceiveMessagesAsync(maxMessages: 32, cancellationToken: Ct)).Value);
    }

    [Fact]
    public async Task WhenTheQueueIsDownToo_TheLastDeliveryFails()
    {
        var policy = new UsageQueueRetryPolicy { MaxAttempts = 1, RequeueDelay = TimeSpan.Zero };
        var function = new UsageQueueFunction(Processor(DeadStorage(), policy, DeadStorage()));

        await Assert.ThrowsAnyAsync<Exception>(() => function.RunAsync(ValidMessage("req-792"), QueueTrigger.Context("m-6", policy.MaxDequeueCount), Ct));
        Assert.Contains(_logs.Lines, l => l.Contains("could not be sent back", StringComparison.Ordinal) && l.Contains("req-792", StringComparison.Ordinal));
    }

    [Fact]
    public void MaxDequeueCount_IsHostJsonsOrItsOverride()
    {
        using var host = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "host.json")));
        var configured = host.RootElement.GetProperty("extensions").GetProperty("queues").GetProperty("maxDequeueCount").GetInt32();
        Assert.Equal(configured, new UsageQueueRetryPolicy().MaxDequeueCount);

        var settings = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { [UsageQueueRetryPolicy.MaxDequeueCountSetting] = "9" })
            .Build();
        Assert.Equal(9, UsageQueueRetryPolicy.From(settings).MaxDequeueCount);
    }

    private UsageMessageProcessor Processor(StorageClients storage, UsageQueueRetryPolicy policy, StorageClients? queueStorage = null) =>
        new(
            new UsageWriter(storage, NullLogger<UsageWriter>.Instance),
            policy,
            queueStorage ?? storage,
            Options.Create(new GatewayOptions { Usage = new UsageOptions { QueueName = _queue } }),
            _loggerFactory.CreateLogger<UsageMessageProcessor>());

    private StorageClients LiveStorage() => new(new StorageOptions { ConnectionString = _azurite.ConnectionString });

    private async Task<Azure.Storage.Queues.QueueClient> LiveQueueAsync()
    {
        var queue = LiveStorage().Queue(_queue);
        await queue.CreateIfNotExistsAsync(cancellationToken: Ct);
        return queue;
    }

    /// <summary>Storage clients pointing at a closed loopback port: every call fails with a connection error.</summary>
    private static StorageClients DeadStorage()
    {
        var port = Ports.Free();
        return new StorageClients(new StorageOptions { ConnectionString = AzuriteProcess.ConnectionStringFor(port, port, port) });
    }

    private static string ValidMessage(string requestId) =>
        JsonSerializer.Serialize(
            new UsageMessage(
            [
                new UsageEvent
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
                },
            ]),
            UsageJsonContext.Default.UsageMessage);
}

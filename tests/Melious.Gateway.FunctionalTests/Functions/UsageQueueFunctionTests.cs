using System.Diagnostics;
using System.Text.Json;
using Melious.Functions;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// The queue function's failure handling: a message that can never be written fails at once (the runtime poisons
/// it after maxDequeueCount deliveries); storage trouble is retried in-process first, then rethrown.
/// </summary>
public sealed class UsageQueueFunctionTests : IDisposable
{
    private readonly CapturingLoggerProvider _logs = new();
    private readonly ILoggerFactory _loggerFactory;

    public UsageQueueFunctionTests() => _loggerFactory = LoggerFactory.Create(b => b.AddProvider(_logs).SetMinimumLevel(LogLevel.Trace));

    public void Dispose() => _loggerFactory.Dispose();

    [Fact]
    public async Task InvalidMessage_IsRethrownAtOnce_NamingItsRequestId()
    {
        var function = new UsageQueueFunction(Processor(DeadStorage(), new UsageQueueRetryPolicy { MaxAttempts = 4, BaseDelay = TimeSpan.FromSeconds(30) }));
        var stopwatch = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<UsageMessageException>(() =>
            function.RunAsync("""{"events":[{"requestId":"req-123","account":""}]}""", QueueTrigger.Context("m-1", 3), TestContext.Current.CancellationToken));

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

    private UsageMessageProcessor Processor(StorageClients storage, UsageQueueRetryPolicy policy) =>
        new(new UsageWriter(storage, NullLogger<UsageWriter>.Instance), policy, _loggerFactory.CreateLogger<UsageMessageProcessor>());

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

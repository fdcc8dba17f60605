using Melious.Gateway;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Functions;

/// <summary>
/// Writes one usage queue message with <see cref="UsageWriter"/>. Storage trouble (timeouts, 5xx, throttling,
/// network errors, counters that stay contended) is retried in-process per <see cref="UsageQueueRetryPolicy"/>, so a
/// short outage does not burn the message's deliveries; what still fails is rethrown, and the runtime retries it
/// later. A message that can never be written (<see cref="UsageMessageException"/>) is rethrown at once, and the
/// runtime moves it to the poison queue after <c>maxDequeueCount</c> deliveries. Storage trouble (or a host shutting
/// down) on that last delivery must not poison a good message: it goes back to the queue as a new message, as the
/// self-host's consumer leaves such a message to come back however often it was delivered. Every log line names the
/// request id.
/// </summary>
public sealed partial class UsageMessageProcessor(UsageWriter writer, UsageQueueRetryPolicy policy, StorageClients storage, IOptions<GatewayOptions> options, ILogger<UsageMessageProcessor> logger)
{
    /// <summary>How long sending a message back may take when the invocation itself was cancelled (host shutting down).</summary>
    private static readonly TimeSpan RequeueTimeout = TimeSpan.FromSeconds(10);

    public async Task ProcessAsync(string message, string? messageId, long dequeueCount, CancellationToken cancellationToken)
    {
        var body = BinaryData.FromString(message);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await writer.WriteMessageAsync(body, cancellationToken);
                return;
            }
            catch (UsageMessageException ex)
            {
                Log.Invalid(logger, ex.RequestId ?? "unknown", messageId ?? "unknown", dequeueCount, ex.Message);
                throw;
            }
            catch (Exception ex) when (UsageQueueConsumer.IsTransient(ex) && attempt < policy.MaxAttempts && !cancellationToken.IsCancellationRequested)
            {
                var delay = policy.DelayAfter(attempt);
                Log.Retrying(logger, RequestId(body), messageId ?? "unknown", attempt, policy.MaxAttempts, delay.TotalMilliseconds, ex.GetType().Name, ex.Message);
                await Task.Delay(delay, cancellationToken);
            }
            catch (Exception ex) when (dequeueCount >= policy.MaxDequeueCount && (UsageQueueConsumer.IsTransient(ex) || cancellationToken.IsCancellationRequested))
            {
                await RequeueAsync(body, messageId, dequeueCount, attempt, ex, cancellationToken);
                return;
            }
            catch (Exception ex)
            {
                Log.Failed(logger, RequestId(body), messageId ?? "unknown", dequeueCount, attempt, ex.GetType().Name, ex.Message);
                throw;
            }
        }
    }

    /// <summary>
    /// Sends the message back as a new one (its delivery count starts again), then lets this delivery succeed. If that
    /// send fails too, this delivery fails as it would have, and the runtime decides.
    /// </summary>
    private async Task RequeueAsync(BinaryData body, string? messageId, long dequeueCount, int attempts, Exception error, CancellationToken cancellationToken)
    {
        using var timeout = cancellationToken.IsCancellationRequested ? new CancellationTokenSource(RequeueTimeout) : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            await storage.Queue(options.Value.Usage.QueueName).SendMessageAsync(body, visibilityTimeout: policy.RequeueDelay, cancellationToken: timeout.Token);
        }
        catch (Exception sendError)
        {
            Log.Failed(logger, RequestId(body), messageId ?? "unknown", dequeueCount, attempts, error.GetType().Name, error.Message);
            Log.RequeueFailed(logger, RequestId(body), messageId ?? "unknown", sendError.GetType().Name, sendError.Message);
            throw;
        }

        Log.Requeued(logger, RequestId(body), messageId ?? "unknown", dequeueCount, policy.RequeueDelay.TotalSeconds, error.GetType().Name, error.Message);
    }

    private static string RequestId(BinaryData body) => UsageWriter.SniffRequestId(body) ?? "unknown";

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Usage message for request {RequestId} ({MessageId}) can never be written (delivery {DequeueCount}; after maxDequeueCount deliveries the runtime moves it to the poison queue): {Message}")]
        public static partial void Invalid(ILogger logger, string requestId, string messageId, long dequeueCount, string message);

        [LoggerMessage(2, LogLevel.Warning, "Usage message for request {RequestId} ({MessageId}): storage unavailable on attempt {Attempt} of {MaxAttempts}, retrying in {DelayMs} ms: {Error}: {Message}")]
        public static partial void Retrying(ILogger logger, string requestId, string messageId, int attempt, int maxAttempts, double delayMs, string error, string message);

        [LoggerMessage(3, LogLevel.Error, "Usage message for request {RequestId} ({MessageId}) failed on delivery {DequeueCount} after {Attempts} attempts; the queue retries it: {Error}: {Message}")]
        public static partial void Failed(ILogger logger, string requestId, string messageId, long dequeueCount, int attempts, string error, string message);

        [LoggerMessage(4, LogLevel.Warning, "Usage message for request {RequestId} ({MessageId}) could not be written on its last delivery ({DequeueCount}) because storage is unavailable; sent back to the queue as a new message, visible in {DelaySeconds} s, instead of the poison queue: {Error}: {Message}")]
        public static partial void Requeued(ILogger logger, string requestId, string messageId, long dequeueCount, double delaySeconds, string error, string message);

        [LoggerMessage(5, LogLevel.Error, "Usage message for request {RequestId} ({MessageId}) could not be sent back to the queue either: {Error}: {Message}")]
        public static partial void RequeueFailed(ILogger logger, string requestId, string messageId, string error, string message);
    }
}

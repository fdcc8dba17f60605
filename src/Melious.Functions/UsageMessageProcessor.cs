using Melious.Gateway.Usage;
using Microsoft.Extensions.Logging;

namespace Melious.Functions;

/// <summary>
/// Writes one usage queue message with <see cref="UsageWriter"/>. Storage trouble (timeouts, 5xx, throttling,
/// network errors) is retried in-process per <see cref="UsageQueueRetryPolicy"/>, so a short outage does not burn
/// the message's deliveries; what still fails is rethrown, and the runtime retries it later and moves it to the
/// poison queue after <c>maxDequeueCount</c> deliveries. A message that can never be written
/// (<see cref="UsageMessageException"/>) is rethrown at once. Every log line names the request id.
/// </summary>
public sealed partial class UsageMessageProcessor(UsageWriter writer, UsageQueueRetryPolicy policy, ILogger<UsageMessageProcessor> logger)
{
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
            catch (Exception ex)
            {
                Log.Failed(logger, RequestId(body), messageId ?? "unknown", dequeueCount, attempt, ex.GetType().Name, ex.Message);
                throw;
            }
        }
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
    }
}

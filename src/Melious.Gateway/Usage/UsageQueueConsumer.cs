using System.Net.Sockets;
using Azure;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using Melious.Gateway.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Usage;

/// <summary>
/// The self-host's reader of the <c>usage-events</c> queue: the same <see cref="UsageWriter"/> the Functions queue
/// trigger calls, with the trigger's semantics. A message is deleted only after it was written; a failed message
/// becomes visible again and is retried; after <see cref="UsageOptions.MaxDequeueCount"/> failed deliveries it moves
/// to <c>usage-events-poison</c> with an error naming its request id. Storage outages do not count towards poisoning:
/// the consumer waits and retries. No storage failure ends the consumer (nor, through it, the host): a message whose
/// delete fails after it was written is left to come back, and its redelivery is written again without effect (the
/// writer is idempotent) and deleted. Turn it off with <c>Melious__Usage__RunConsumer=false</c>.
/// </summary>
public sealed partial class UsageQueueConsumer(StorageClients storage, UsageWriter writer, IOptions<GatewayOptions> options, ILogger<UsageQueueConsumer> logger) : BackgroundService
{
    private readonly UsageOptions _options = options.Value.Usage;
    private long _written;
    private long _poisoned;

    public long MessagesWritten => Interlocked.Read(ref _written);

    public long MessagesPoisoned => Interlocked.Read(ref _poisoned);

    private QueueClient Queue => storage.Queue(_options.QueueName);

    private QueueClient Poison => storage.Queue(_options.PoisonQueueName);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var idle = _options.ConsumerPollInterval;
        var backoff = TimeSpan.FromMilliseconds(200);
        while (!stoppingToken.IsCancellationRequested)
        {
            QueueMessage[] messages;
            try
            {
                messages = (await Queue.ReceiveMessagesAsync(Math.Clamp(_options.ConsumerBatchSize, 1, 32), _options.ConsumerVisibilityTimeout, stoppingToken)).Value;
                backoff = TimeSpan.FromMilliseconds(200);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (RequestFailedException ex) when (ex.Status == 404)
            {
                if (!await TryCreateQueueAsync(stoppingToken))
                {
                    await DelayAsync(backoff, stoppingToken);
                    backoff = Longer(backoff);
                }

                continue;
            }
            catch (Exception ex)
            {
                Log.ReceiveFailed(logger, ex.GetType().Name, ex.Message);
                await DelayAsync(backoff, stoppingToken);
                backoff = Longer(backoff);
                continue;
            }

            if (messages.Length == 0)
            {
                await DelayAsync(idle, stoppingToken);
                continue;
            }

            try
            {
                // Not cancelled by shutdown mid-write: a message either completes or stays in the queue.
                await ProcessBatchAsync(messages, CancellationToken.None);
            }
            catch (Exception ex)
            {
                // Nothing is lost: what was not deleted becomes visible again after the visibility timeout.
                Log.BatchFailed(logger, messages.Length, ex.GetType().Name, ex.Message);
                await DelayAsync(backoff, stoppingToken);
                backoff = Longer(backoff);
            }
        }
    }

    private static TimeSpan Longer(TimeSpan backoff) => TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));

    private async Task<bool> TryCreateQueueAsync(CancellationToken stoppingToken)
    {
        try
        {
            await Queue.CreateIfNotExistsAsync(cancellationToken: stoppingToken);
            return true;
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            Log.CreateQueueFailed(logger, _options.QueueName, ex.GetType().Name, ex.Message);
            return false;
        }
    }

    /// <summary>
    /// Writes the events of every readable message of a receive in one <see cref="UsageWriter.WriteAsync"/> call (one
    /// set of ledger transactions instead of one per message, so concurrent messages do not contend for the same
    /// counters), then deletes them. Unreadable messages take the retry-then-poison path on their own; if the batch
    /// fails for a reason other than storage trouble, its messages are retried one by one to isolate the culprit.
    /// </summary>
    internal async Task ProcessBatchAsync(IReadOnlyList<QueueMessage> messages, CancellationToken cancellationToken)
    {
        var readable = new List<(QueueMessage Message, IReadOnlyList<UsageEvent> Events)>(messages.Count);
        foreach (var message in messages)
        {
            try
            {
                readable.Add((message, UsageWriter.Parse(message.Body)));
            }
            catch (UsageMessageException ex)
            {
                await FailedAsync(message, ex, cancellationToken);
            }
        }

        if (readable.Count == 0)
        {
            return;
        }

        try
        {
            await writer.WriteAsync(readable.SelectMany(r => r.Events).ToList(), cancellationToken);
        }
        catch (Exception ex) when (IsTransient(ex))
        {
            // Storage trouble, not a bad message: they reappear after the visibility timeout and are retried.
            Log.WriteDeferred(logger, readable.Count, ex.GetType().Name, ex.Message);
            return;
        }
        catch (Exception)
        {
            foreach (var (message, _) in readable)
            {
                await ProcessAsync(message, cancellationToken);
            }

            return;
        }

        await Task.WhenAll(readable.Select(r => DeleteAsync(r.Message, cancellationToken)));
    }

    internal async Task ProcessAsync(QueueMessage message, CancellationToken cancellationToken)
    {
        try
        {
            await writer.WriteMessageAsync(message.Body, cancellationToken);
        }
        catch (Exception ex) when (IsTransient(ex))
        {
            Log.WriteDeferred(logger, 1, ex.GetType().Name, ex.Message);
            return;
        }
        catch (Exception ex)
        {
            await FailedAsync(message, ex, cancellationToken);
            return;
        }

        // Written and counted: whatever happens to the delete, this message is never a failure (nor poison).
        await DeleteAsync(message, cancellationToken);
    }

    /// <summary>Deletes a written message. Never throws: a message that stays is redelivered, and rewriting it changes nothing.</summary>
    private async Task DeleteAsync(QueueMessage message, CancellationToken cancellationToken)
    {
        try
        {
            await Queue.DeleteMessageAsync(message.MessageId, message.PopReceipt, cancellationToken);
            Interlocked.Increment(ref _written);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            // Its visibility timed out and another consumer took it: that delivery is idempotent too.
            Interlocked.Increment(ref _written);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // 400 PopReceiptMismatch (another consumer holds it now), 5xx, a timeout: it comes back and is deleted then.
            Log.DeleteFailed(logger, UsageWriter.SniffRequestId(message.Body) ?? "unknown", message.MessageId, ex.GetType().Name, ex.Message);
        }
    }

    /// <summary>A message that could not be written: retried soon, and moved to the poison queue after the retry count.</summary>
    private async Task FailedAsync(QueueMessage message, Exception ex, CancellationToken cancellationToken)
    {
        var requestId = (ex as UsageMessageException)?.RequestId ?? UsageWriter.SniffRequestId(message.Body) ?? "unknown";
        if (message.DequeueCount >= _options.MaxDequeueCount)
        {
            await MoveToPoisonAsync(message, requestId, ex, cancellationToken);
            return;
        }

        Log.WriteFailed(logger, requestId, message.MessageId, message.DequeueCount, _options.MaxDequeueCount, ex.GetType().Name, ex.Message);
        try
        {
            // Retry soon rather than after the full visibility timeout.
            var delay = TimeSpan.FromSeconds(Math.Min(30, Math.Pow(2, message.DequeueCount - 1)));
            await Queue.UpdateMessageAsync(message.MessageId, message.PopReceipt, visibilityTimeout: delay, cancellationToken: cancellationToken);
        }
        catch (Exception updateError) when (!cancellationToken.IsCancellationRequested)
        {
            Log.UpdateFailed(logger, message.MessageId, updateError.GetType().Name);
        }
    }

    private async Task MoveToPoisonAsync(QueueMessage message, string requestId, Exception error, CancellationToken cancellationToken)
    {
        try
        {
            await Poison.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
            await Poison.SendMessageAsync(message.Body, cancellationToken: cancellationToken);
            await Queue.DeleteMessageAsync(message.MessageId, message.PopReceipt, cancellationToken);
            Interlocked.Increment(ref _poisoned);
            Log.Poisoned(logger, requestId, message.MessageId, message.DequeueCount, _options.PoisonQueueName, error.GetType().Name, error.Message);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Log.PoisonFailed(logger, requestId, message.MessageId, ex.GetType().Name);
        }
    }

    /// <summary>Storage or network trouble, as opposed to a message that can never be written.</summary>
    internal static bool IsTransient(Exception ex) => ex switch
    {
        UsageMessageException => false,

        // Other writers kept winning the ledger's ETag race: redeliver, never poison (the rows are in, the counts not yet).
        UsageContentionException => true,

        // A missing table is storage not being ready (UsageWriter creates it when allowed), never a bad message.
        RequestFailedException { Status: 404 } rfe when UsageWriter.IsTableNotFound(rfe) => true,
        RequestFailedException rfe => rfe.Status is 0 or 408 or 429 or >= 500,
        AggregateException agg => agg.InnerExceptions.All(IsTransient),
        HttpRequestException or SocketException or TimeoutException or IOException => true,
        OperationCanceledException => true,
        _ => ex.InnerException is { } inner && IsTransient(inner),
    };

    private static async Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Could not read the usage queue: {Error}: {Message}")]
        public static partial void ReceiveFailed(ILogger logger, string error, string message);

        [LoggerMessage(2, LogLevel.Warning, "{Count} usage messages deferred, storage unavailable: {Error}: {Message}")]
        public static partial void WriteDeferred(ILogger logger, int count, string error, string message);

        [LoggerMessage(3, LogLevel.Error, "Usage message for request {RequestId} ({MessageId}) failed, delivery {DequeueCount} of {Max}: {Error}: {Message}")]
        public static partial void WriteFailed(ILogger logger, string requestId, string messageId, long dequeueCount, int max, string error, string message);

        [LoggerMessage(4, LogLevel.Error, "Usage message for request {RequestId} ({MessageId}) moved to {PoisonQueue} after {DequeueCount} deliveries: {Error}: {Message}")]
        public static partial void Poisoned(ILogger logger, string requestId, string messageId, long dequeueCount, string poisonQueue, string error, string message);

        [LoggerMessage(5, LogLevel.Error, "Could not move usage message for request {RequestId} ({MessageId}) to the poison queue: {Error}")]
        public static partial void PoisonFailed(ILogger logger, string requestId, string messageId, string error);

        [LoggerMessage(6, LogLevel.Warning, "Could not shorten the visibility of usage message {MessageId}: {Error}")]
        public static partial void UpdateFailed(ILogger logger, string messageId, string error);

        [LoggerMessage(7, LogLevel.Warning, "Usage message for request {RequestId} ({MessageId}) was written but could not be deleted; it will be redelivered and rewritten without effect: {Error}: {Message}")]
        public static partial void DeleteFailed(ILogger logger, string requestId, string messageId, string error, string message);

        [LoggerMessage(8, LogLevel.Warning, "Could not create the usage queue {Queue}: {Error}: {Message}")]
        public static partial void CreateQueueFailed(ILogger logger, string queue, string error, string message);

        [LoggerMessage(9, LogLevel.Error, "Processing {Count} usage messages failed; they will be redelivered: {Error}: {Message}")]
        public static partial void BatchFailed(ILogger logger, int count, string error, string message);
    }
}

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
/// the consumer waits and retries. Turn it off with <c>Melious__Usage__RunConsumer=false</c>.
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
                await Queue.CreateIfNotExistsAsync(cancellationToken: stoppingToken);
                continue;
            }
            catch (Exception ex)
            {
                Log.ReceiveFailed(logger, ex.GetType().Name, ex.Message);
                await DelayAsync(backoff, stoppingToken);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
                continue;
            }

            if (messages.Length == 0)
            {
                await DelayAsync(idle, stoppingToken);
                continue;
            }

            // Not cancelled by shutdown mid-write: a message either completes or stays in the queue.
            await ProcessBatchAsync(messages, CancellationToken.None);
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
            await DeleteAsync(message, cancellationToken);
        }
        catch (Exception ex) when (IsTransient(ex))
        {
            Log.WriteDeferred(logger, 1, ex.GetType().Name, ex.Message);
        }
        catch (Exception ex)
        {
            await FailedAsync(message, ex, cancellationToken);
        }
    }

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
        catch (Exception updateError) when (updateError is not OperationCanceledException)
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
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.PoisonFailed(logger, requestId, message.MessageId, ex.GetType().Name);
        }
    }

    /// <summary>Storage or network trouble, as opposed to a message that can never be written.</summary>
    internal static bool IsTransient(Exception ex) => ex switch
    {
        UsageMessageException => false,

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
    }
}

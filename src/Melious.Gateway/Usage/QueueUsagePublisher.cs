using System.Text.Json;
using System.Threading.Channels;
using Azure;
using Azure.Storage.Queues;
using Melious.Gateway.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Usage;

/// <summary>Receives one usage event per served request. Never blocks and never throws.</summary>
public interface IUsageSink
{
    void Publish(UsageEvent usageEvent);
}

/// <summary>
/// Delivers usage events to the <c>usage-events</c> queue (Base64 JSON, several events per message when busy),
/// off the request path. What survives which failure:
/// <list type="bullet">
/// <item><b>Queue slow or down</b>: events wait in a bounded in-memory buffer and are retried with exponential
/// backoff until the queue answers; nothing is dropped.</item>
/// <item><b>Buffer full</b> (a long outage at high traffic): overflowing events are written to the spool directory
/// (self-host) and resent when the queue is healthy again; without a spool directory each one is logged at Error
/// level with its full JSON, so it can be replayed from logs.</item>
/// <item><b>Graceful shutdown</b>: the buffer is drained to the queue; whatever cannot be sent in time is spooled
/// (or logged), and spooled events are resent on the next start.</item>
/// <item><b>Process crash</b>: events still in memory (typically the last few milliseconds of traffic, or the
/// outage backlog) are lost. Spooled events survive.</item>
/// </list>
/// </summary>
public sealed partial class QueueUsagePublisher : BackgroundService, IUsageSink
{
    private const int MaxMessageBytes = 46 * 1024;

    private readonly StorageClients _storage;
    private readonly UsageOptions _options;
    private readonly ILogger<QueueUsagePublisher> _logger;
    private readonly Channel<UsageEvent> _channel;
    private readonly UsageSpool? _spool;

    /// <summary>
    /// Cancels queue writes: only when a stop's drain deadline has passed. A stop cancels the waits (for events, for
    /// a batch to fill, between retries) at once, but a batch already taken from the buffer is still sent.
    /// </summary>
    private readonly CancellationTokenSource _sends = new();
    private int _inFlight;
    private long _published;
    private long _delivered;
    private long _spooled;

    public QueueUsagePublisher(StorageClients storage, IOptions<GatewayOptions> options, ILogger<QueueUsagePublisher> logger)
    {
        _storage = storage;
        _options = options.Value.Usage;
        _logger = logger;
        _channel = Channel.CreateBounded<UsageEvent>(new BoundedChannelOptions(Math.Max(1, _options.BufferCapacity))
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = false,
            SingleWriter = false,
        });
        _spool = string.IsNullOrWhiteSpace(_options.SpoolDirectory) ? null : new UsageSpool(_options.SpoolDirectory);
    }

    private QueueClient Queue => _storage.Queue(_options.QueueName);

    /// <summary>Events published since start.</summary>
    public long Published => Interlocked.Read(ref _published);

    /// <summary>Events acknowledged by the queue since start (spool resends included).</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Events waiting in memory.</summary>
    public int Buffered => _channel.Reader.Count;

    public long SpooledEvents => Interlocked.Read(ref _spooled);

    public void Publish(UsageEvent usageEvent)
    {
        if (!_options.Publish)
        {
            return;
        }

        Interlocked.Increment(ref _published);
        if (_channel.Writer.TryWrite(usageEvent))
        {
            return;
        }

        Overflow([usageEvent], "buffer full");
    }

    /// <summary>Waits until every published event has been handed to the queue (or spooled). For tests and shutdown.</summary>
    public async Task FlushAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var deadline = DateTime.UtcNow + timeout;
        while ((_channel.Reader.Count > 0 || Volatile.Read(ref _inFlight) > 0) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10, cancellationToken);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var senders = Enumerable.Range(0, Math.Max(1, _options.SenderConcurrency)).Select(_ => SendLoopAsync(stoppingToken)).ToList();
        if (_spool is not null)
        {
            senders.Add(SpoolLoopAsync(stoppingToken));
        }

        await Task.WhenAll(senders);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // Batches the senders hold, and what is left in the buffer, get a short deadline; then the rest is spooled
        // (or logged).
        _sends.CancelAfter(StopDeadline);
        using var stopping = cancellationToken.Register(static s => ((CancellationTokenSource)s!).Cancel(), _sends);
        await base.StopAsync(cancellationToken);

        _channel.Writer.TryComplete();
        var batch = new List<UsageEvent>();
        while (_channel.Reader.TryRead(out var e))
        {
            batch.Add(e);
            if (batch.Count >= _options.MaxEventsPerMessage)
            {
                await SendOrOverflowAsync(batch, _sends.Token);
                batch = [];
            }
        }

        if (batch.Count > 0)
        {
            await SendOrOverflowAsync(batch, _sends.Token);
        }
    }

    /// <summary>How long a stop waits for the queue to take what is still in memory.</summary>
    internal static TimeSpan StopDeadline { get; } = TimeSpan.FromSeconds(5);

    public override void Dispose()
    {
        _sends.Dispose();
        base.Dispose();
    }

    private async Task SendOrOverflowAsync(List<UsageEvent> batch, CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(batch, cancellationToken);
        }
        catch (Exception ex)
        {
            Overflow(batch, $"shutdown: {ex.GetType().Name}");
        }
    }

    private async Task SendLoopAsync(CancellationToken stoppingToken)
    {
        var reader = _channel.Reader;
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken))
            {
                var batch = new List<UsageEvent>(_options.MaxEventsPerMessage);
                Interlocked.Increment(ref _inFlight);
                try
                {
                    Take(reader, batch);
                    if (batch.Count > 0 && batch.Count < _options.MaxEventsPerMessage && _options.BatchDelay > TimeSpan.Zero)
                    {
                        // Let a few more events join the message: one queue write per batch, not per request.
                        try
                        {
                            await Task.Delay(_options.BatchDelay, stoppingToken);
                        }
                        catch (OperationCanceledException)
                        {
                        }

                        Take(reader, batch);
                    }

                    if (batch.Count > 0)
                    {
                        await SendWithRetryAsync(batch, stoppingToken);
                    }
                }
                finally
                {
                    Interlocked.Decrement(ref _inFlight);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private void Take(ChannelReader<UsageEvent> reader, List<UsageEvent> batch)
    {
        while (batch.Count < _options.MaxEventsPerMessage && reader.TryRead(out var e))
        {
            batch.Add(e);
        }
    }

    private async Task SendWithRetryAsync(List<UsageEvent> batch, CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await SendAsync(batch, _sends.Token);
                if (attempt > 1)
                {
                    Log.Recovered(_logger, batch.Count, attempt);
                }

                return;
            }
            catch (OperationCanceledException) when (_sends.IsCancellationRequested)
            {
                Overflow(batch, "stopping while the queue was unreachable");
                return;
            }
            catch (Exception ex)
            {
                if (attempt == 1 || attempt % 20 == 0)
                {
                    Log.SendFailed(_logger, batch.Count, attempt, ex.GetType().Name, ex.Message);
                }

                try
                {
                    await Task.Delay(delay, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    Overflow(batch, "stopping while the queue was unreachable");
                    return;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxSendBackoff.Ticks));
            }
        }
    }

    private async Task SendAsync(IReadOnlyList<UsageEvent> batch, CancellationToken cancellationToken)
    {
        foreach (var (events, payload) in Pack(batch))
        {
            try
            {
                await SendPayloadAsync(payload, cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status == 413)
            {
                // One event larger than a queue message (Pack splits anything else): no retry can deliver it.
                Overflow(events, "larger than a queue message");
                continue;
            }

            Interlocked.Add(ref _delivered, events.Count);
        }
    }

    /// <summary>
    /// The queue messages for <paramref name="batch"/>, in order: halved until each JSON payload is at most
    /// <see cref="MaxMessageBytes"/> (Base64 then stays under the queue's 64 KiB), or is a single event.
    /// </summary>
    internal static List<(IReadOnlyList<UsageEvent> Events, byte[] Payload)> Pack(IReadOnlyList<UsageEvent> batch)
    {
        var parts = new List<(IReadOnlyList<UsageEvent> Events, byte[] Payload)>();
        Add(batch);
        return parts;

        void Add(IReadOnlyList<UsageEvent> events)
        {
            var payload = JsonSerializer.SerializeToUtf8Bytes(new UsageMessage([.. events]), UsageJsonContext.Default.UsageMessage);
            if (payload.Length > MaxMessageBytes && events.Count > 1)
            {
                var half = events.Count / 2;
                Add(events.Take(half).ToList());
                Add(events.Skip(half).ToList());
                return;
            }

            parts.Add((events, payload));
        }
    }

    private async Task SendPayloadAsync(byte[] payload, CancellationToken cancellationToken)
    {
        try
        {
            await Queue.SendMessageAsync(BinaryData.FromBytes(payload), cancellationToken: cancellationToken);
        }
        catch (RequestFailedException ex) when (ex.Status == 404)
        {
            await Queue.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
            await Queue.SendMessageAsync(BinaryData.FromBytes(payload), cancellationToken: cancellationToken);
        }
    }

    private void Overflow(IReadOnlyList<UsageEvent> batch, string reason)
    {
        if (_spool is not null)
        {
            try
            {
                _spool.Write(batch);
                Interlocked.Add(ref _spooled, batch.Count);
                Log.Spooled(_logger, batch.Count, reason);
                return;
            }
            catch (Exception ex)
            {
                Log.SpoolFailed(_logger, ex.GetType().Name, ex.Message);
            }
        }

        foreach (var e in batch)
        {
            Log.Undeliverable(_logger, e.RequestId, reason, JsonSerializer.Serialize(e, UsageJsonContext.Default.UsageEvent));
        }
    }

    private async Task SpoolLoopAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                foreach (var file in _spool!.Files())
                {
                    try
                    {
                        var payload = await File.ReadAllBytesAsync(file, stoppingToken);
                        var count = await ResendAsync(file, UsageWriter.Parse(BinaryData.FromBytes(payload)), stoppingToken);
                        File.Delete(file);
                        Log.Resent(_logger, count, Path.GetFileName(file));
                    }
                    catch (UsageMessageException ex)
                    {
                        Log.BadSpoolFile(_logger, Path.GetFileName(file), ex.Message);
                        _spool.Quarantine(file);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        // Queue still unavailable: try again on the next round.
                        break;
                    }
                }

                await Task.Delay(TimeSpan.FromSeconds(5), stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Sends a spool file's events in queue messages of the normal size (a file holds up to a whole batch, which can be
    /// larger than one message). After each message the file is rewritten with the events still to send, so a queue
    /// that fails half-way costs no duplicate. Returns the events delivered.
    /// </summary>
    private async Task<int> ResendAsync(string file, IReadOnlyList<UsageEvent> events, CancellationToken cancellationToken)
    {
        var parts = Pack(events);
        var delivered = 0;
        for (var i = 0; i < parts.Count; i++)
        {
            try
            {
                await SendPayloadAsync(parts[i].Payload, cancellationToken);
                delivered += parts[i].Events.Count;
                Interlocked.Add(ref _delivered, parts[i].Events.Count);
            }
            catch (RequestFailedException ex) when (ex.Status == 413)
            {
                // A single event larger than a queue message: set it aside (never "queue down", never blocking the rest).
                var aside = _spool!.WriteQuarantined(parts[i].Events);
                Log.TooLargeForQueue(_logger, parts[i].Events[0].RequestId, Path.GetFileName(aside));
            }

            if (i < parts.Count - 1)
            {
                _spool!.Rewrite(file, [.. parts.Skip(i + 1).SelectMany(p => p.Events)]);
            }
        }

        return delivered;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Usage queue unreachable, {Count} events waiting (attempt {Attempt}): {Error}: {Message}")]
        public static partial void SendFailed(ILogger logger, int count, int attempt, string error, string message);

        [LoggerMessage(2, LogLevel.Information, "Usage queue reachable again; delivered {Count} waiting events after {Attempt} attempts")]
        public static partial void Recovered(ILogger logger, int count, int attempt);

        [LoggerMessage(3, LogLevel.Warning, "Spooled {Count} usage events to disk ({Reason})")]
        public static partial void Spooled(ILogger logger, int count, string reason);

        [LoggerMessage(4, LogLevel.Error, "Could not spool usage events: {Error}: {Message}")]
        public static partial void SpoolFailed(ILogger logger, string error, string message);

        [LoggerMessage(5, LogLevel.Error, "Usage event {RequestId} could not be delivered ({Reason}); replay it from this log line: {Event}")]
        public static partial void Undeliverable(ILogger logger, string requestId, string reason, string @event);

        [LoggerMessage(6, LogLevel.Information, "Resent {Count} spooled usage events from {File}")]
        public static partial void Resent(ILogger logger, int count, string file);

        [LoggerMessage(7, LogLevel.Error, "Spool file {File} is unreadable and was moved aside: {Message}")]
        public static partial void BadSpoolFile(ILogger logger, string file, string message);

        [LoggerMessage(8, LogLevel.Error, "Usage event {RequestId} is larger than a queue message can hold; it was set aside in spool file {File}")]
        public static partial void TooLargeForQueue(ILogger logger, string requestId, string file);
    }
}

/// <summary>Undeliverable usage events on local disk, one JSON message per file, written atomically.</summary>
internal sealed class UsageSpool
{
    private readonly string _directory;

    public UsageSpool(string directory)
    {
        _directory = Path.GetFullPath(directory);
        Directory.CreateDirectory(_directory);
    }

    public void Write(IReadOnlyList<UsageEvent> batch) => WriteAs(batch, ".json");

    /// <summary>Writes events that no retry can deliver under a name the resend loop skips (as <see cref="Quarantine"/>).</summary>
    public string WriteQuarantined(IReadOnlyList<UsageEvent> batch) => WriteAs(batch, ".json.bad");

    /// <summary>Replaces a spool file's contents atomically (the rest of a file that was partly resent).</summary>
    public void Rewrite(string file, IReadOnlyList<UsageEvent> batch)
    {
        var temp = WriteTemp(Path.GetFileNameWithoutExtension(file), batch);
        File.Move(temp, file, overwrite: true);
    }

    private string WriteAs(IReadOnlyList<UsageEvent> batch, string extension)
    {
        var name = $"{DateTime.UtcNow:yyyyMMddTHHmmssfff}-{Guid.NewGuid():N}";
        var path = Path.Combine(_directory, name + extension);
        File.Move(WriteTemp(name, batch), path);
        return path;
    }

    private string WriteTemp(string name, IReadOnlyList<UsageEvent> batch)
    {
        var temp = Path.Combine(_directory, name + ".tmp");
        var bytes = JsonSerializer.SerializeToUtf8Bytes(new UsageMessage([.. batch]), UsageJsonContext.Default.UsageMessage);
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.WriteThrough))
        {
            stream.Write(bytes);
            stream.Flush(flushToDisk: true);
        }

        return temp;
    }

    public IEnumerable<string> Files() => Directory.EnumerateFiles(_directory, "*.json").Order(StringComparer.Ordinal).ToList();

    public void Quarantine(string file) => File.Move(file, file + ".bad", overwrite: true);
}

using System.Buffers;
using System.Runtime.CompilerServices;

namespace Melious.Gateway.Streaming;

/// <summary>Told around every read of the upstream body.</summary>
internal interface IReadObserver
{
    /// <summary>A read is starting: everything parsed so far has been translated (the read buffer is drained).</summary>
    void ReadStarting();

    /// <summary>
    /// The read will wait for the upstream (or several reads in a row did not): hand what was written to the client.
    /// </summary>
    ValueTask BeforeWaitAsync();

    /// <summary>The read that <see cref="BeforeWaitAsync"/> announced returned (or failed).</summary>
    ValueTask AfterWaitAsync();
}

/// <summary>
/// A read-only wrapper over the upstream response body that lets the gateway act exactly when the SSE parser has
/// consumed everything it had. Buffered client output is flushed only when the next read would wait for the
/// upstream (or after <see cref="MaxReadsPerFlush"/> reads that did not): whatever the upstream already sent is
/// translated and goes out in the same flush, so a response's first events (message_start, the first block and its
/// delta) leave in one write, and a fast upstream costs one flush per burst, not one per read. Disposed after the
/// gateway gave the response up (its reads' token cancelled: the client left, or the upstream went silent), it ends
/// the upstream response at once instead of letting the handler drain it (see <see cref="EndAsync"/>).
/// </summary>
internal sealed class ObservedReadStream(Stream inner, IReadObserver observer) : AsyncReadStream(inner)
{
    /// <summary>Bounds what is held back while the upstream keeps data ready (each read is at most a few KB).</summary>
    internal const int MaxReadsPerFlush = 8;

    /// <summary>Bounds what <see cref="EndAsync"/> reads of what the upstream already sent.</summary>
    private const int MaxEndReadBytes = 256 * 1024;

    private int _readsSinceFlush;
    private CancellationToken _token;
    private bool _readLeftPending;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        observer.ReadStarting();
        _token = cancellationToken;
        var pending = Inner.ReadAsync(buffer, cancellationToken);
        if (pending.IsCompleted && ++_readsSinceFlush < MaxReadsPerFlush)
        {
            return pending.GetAwaiter().GetResult();
        }

        _readsSinceFlush = 0;
        var awaited = false;
        try
        {
            await observer.BeforeWaitAsync();
            awaited = true;
            return await pending;
        }
        finally
        {
            _readLeftPending |= !awaited;
            await observer.AfterWaitAsync();
        }
    }

    public override async ValueTask DisposeAsync()
    {
        try
        {
            if (_token.IsCancellationRequested && !_readLeftPending)
            {
                await EndAsync();
            }
        }
        finally
        {
            Dispose();
        }
    }

    /// <summary>
    /// Ends a response the gateway gave up on. Disposed as it is, SocketsHttpHandler would drain it, reading on for
    /// up to its <c>ResponseDrainTimeout</c> while the upstream goes on generating, whenever the gateway stopped with
    /// no read waiting (the client's loss seen in a write, say). A read that waits and is then cancelled makes the
    /// handler close the connection instead (over HTTP/2, reset the stream). What the upstream already sent is read
    /// first, a bounded amount, so a response that ends there still leaves its connection pooled.
    /// </summary>
    private async ValueTask EndAsync()
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            for (var total = 0; total < MaxEndReadBytes;)
            {
                using var cancel = new CancellationTokenSource();
                var pending = Inner.ReadAsync(buffer, cancel.Token);
                if (!pending.IsCompleted)
                {
                    cancel.Cancel();
                }

                var read = await pending;
                if (read == 0)
                {
                    return;
                }

                total += read;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException or ObjectDisposedException)
        {
            // The connection is closed: what was wanted.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

}

/// <summary>
/// Cancels the upstream once no read has started for the idle timeout. A read only stores a timestamp and one coarse
/// timer per response checks it: re-arming a <see cref="CancellationTokenSource"/> timer on every read takes the
/// shared timer queue's lock once per token, which showed in profiles under load. Taking over from the headers
/// timeout, it disarms that one.
/// </summary>
internal sealed class IdleDeadline : IReadObserver, IDisposable
{
    private readonly CancellationTokenSource _upstream;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;
    private readonly ITimer _timer;
    private long _lastRead;

    public IdleDeadline(CancellationTokenSource upstream, TimeSpan timeout, TimeProvider time)
    {
        _upstream = upstream;
        _timeout = timeout;
        _time = time;
        _lastRead = time.GetTimestamp();
        upstream.CancelAfter(Timeout.InfiniteTimeSpan);

        // A tenth of the timeout, between 10 ms and 1 s: a stall is caught at most 10% (or 1 s) late.
        var tick = TimeSpan.FromTicks(Math.Clamp(timeout.Ticks / 10, TimeSpan.TicksPerMillisecond * 10, TimeSpan.TicksPerSecond));
        _timer = time.CreateTimer(static state => ((IdleDeadline)state!).Check(), this, tick, tick);
    }

    /// <summary>A read is starting: the upstream has this long again.</summary>
    public void Touch() => Volatile.Write(ref _lastRead, _time.GetTimestamp());

    void IReadObserver.ReadStarting() => Touch();

    ValueTask IReadObserver.BeforeWaitAsync() => ValueTask.CompletedTask;

    ValueTask IReadObserver.AfterWaitAsync() => ValueTask.CompletedTask;

    private void Check()
    {
        if (_time.GetElapsedTime(Volatile.Read(ref _lastRead)) < _timeout)
        {
            return;
        }

        try
        {
            _upstream.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The response finished meanwhile.
        }
    }

    public void Dispose() => _timer.Dispose();
}

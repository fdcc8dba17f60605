using System.Runtime.CompilerServices;

namespace Melious.Gateway.Streaming;

/// <summary>Told around every read of the upstream body.</summary>
internal interface IReadObserver
{
    /// <summary>Runs before a read: everything parsed so far has been translated (the read buffer is drained).</summary>
    ValueTask BeforeReadAsync();

    /// <summary>Runs after a read returned (or failed).</summary>
    ValueTask AfterReadAsync(int bytesRead);
}

/// <summary>
/// A read-only wrapper over the upstream response body that lets the gateway act exactly when the SSE parser has
/// consumed everything it had: that is when buffered client output is flushed (one flush per drained read, not
/// per token and not at the end) and when the idle timeout is re-armed.
/// </summary>
internal sealed class ObservedReadStream(Stream inner, IReadObserver observer) : Stream
{
    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await observer.BeforeReadAsync();
        var read = 0;
        try
        {
            read = await inner.ReadAsync(buffer, cancellationToken);
            return read;
        }
        finally
        {
            await observer.AfterReadAsync(read);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Synchronous reads are not supported.");

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>Re-arms the idle timeout around reads; used where there is no client stream to flush (non-streaming).</summary>
internal sealed class IdleWatch(CancellationTokenSource upstream, TimeSpan idleTimeout) : IReadObserver
{
    public ValueTask BeforeReadAsync()
    {
        upstream.CancelAfter(idleTimeout);
        return ValueTask.CompletedTask;
    }

    public ValueTask AfterReadAsync(int bytesRead) => ValueTask.CompletedTask;
}

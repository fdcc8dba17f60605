using System.Buffers;
using Melious.Gateway.Upstream;

namespace Melious.Gateway.Streaming;

/// <summary>
/// The upstream body, read once to look at its first events before the client's response is committed, then read
/// again from its start (after <see cref="Rewind"/>) by the translation loop. The look keeps what it reads (at most
/// <c>maxKept</c> bytes: past that it sees the end of the body), and the loop gets those bytes first, then reads go
/// straight to the body. Each read of the look reads the body into a buffer of this stream, with
/// <c>upstreamToken</c>. The look's own token only stops the wait. A read the look gave up while it was waiting (a
/// streamed response is committed after a while, whatever the upstream has sent) goes on, and its bytes follow the
/// kept ones. A failure of that read, or of the body, reaches the loop as if there had been no look.
/// </summary>
internal sealed class RewindableReadStream(Stream inner, CancellationToken upstreamToken, int maxKept, IReadObserver? observer = null) : AsyncReadStream(inner)
{
    private const int ChunkSize = 16 * 1024;

    private PooledBuffer? _kept = new(4 * 1024);
    private byte[]? _chunk;
    private Task<int>? _pending;
    private int _served;
    private bool _rewound;
    private bool _passThrough;

    /// <summary>Bytes the look read (what the loop reads again first).</summary>
    public int Kept => _kept?.WrittenCount ?? 0;

    /// <summary>Ends the look: the next reads serve what it read, from the start, then read on.</summary>
    public void Rewind() => _rewound = true;

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_passThrough)
        {
            return Inner.ReadAsync(buffer, cancellationToken);
        }

        if (!_rewound)
        {
            return LookAsync(buffer, cancellationToken);
        }

        if (_kept is { } kept && _served < kept.WrittenCount)
        {
            var count = Math.Min(buffer.Length, kept.WrittenCount - _served);
            kept.WrittenSpan.Slice(_served, count).CopyTo(buffer.Span);
            _served += count;
            return ValueTask.FromResult(count);
        }

        if (_pending is not null)
        {
            return PendingAsync(buffer, cancellationToken);
        }

        // Everything the look read is served: from now on the body itself.
        ReleaseBuffers();
        _passThrough = true;
        return Inner.ReadAsync(buffer, cancellationToken);
    }

    private async ValueTask<int> LookAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        // Past the limit, or after a read the look gave up on: the look is over.
        if (_kept!.WrittenCount >= maxKept || _pending is not null)
        {
            return 0;
        }

        observer?.ReadStarting();
        _chunk ??= ArrayPool<byte>.Shared.Rent(ChunkSize);
        _pending = Inner.ReadAsync(_chunk.AsMemory(0, Math.Min(buffer.Length, _chunk.Length)), upstreamToken).AsTask();

        // On any exception the read stays in _pending: still running (the look was cut short), or failed (the loop
        // meets its failure), or just done (its bytes are the loop's).
        var read = await _pending.WaitAsync(cancellationToken);
        _pending = null;
        _chunk!.AsSpan(0, read).CopyTo(buffer.Span);
        _kept.Write(_chunk.AsSpan(0, read));
        return read;
    }

    private async ValueTask<int> PendingAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        var read = await _pending!.WaitAsync(cancellationToken);
        _pending = null;
        if (read == 0)
        {
            return 0;
        }

        _kept!.Write(_chunk!.AsSpan(0, read));
        return await ReadAsync(buffer, cancellationToken);
    }

    private void ReleaseBuffers()
    {
        _kept?.Dispose();
        _kept = null;

        // Never while a read may still be writing into it.
        if (_chunk is { } chunk && _pending is null or { IsCompleted: true })
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        _chunk = null;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            ReleaseBuffers();
        }

        base.Dispose(disposing);
    }
}

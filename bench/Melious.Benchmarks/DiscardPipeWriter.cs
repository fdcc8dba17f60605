using System.IO.Pipelines;

namespace Melious.Benchmarks;

/// <summary>A <see cref="PipeWriter"/> over one fixed buffer that wraps around: it keeps nothing, so a benchmark
/// measures the writer's own work and never the pipe's buffer management or I/O.</summary>
internal sealed class DiscardPipeWriter : PipeWriter
{
    private readonly byte[] _buffer = new byte[256 * 1024];
    private int _position;

    public long Written { get; private set; }

    public override void Advance(int bytes)
    {
        _position += bytes;
        Written += bytes;
    }

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_position);
    }

    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_position);
    }

    private void Ensure(int sizeHint)
    {
        if (_buffer.Length - _position < Math.Max(sizeHint, 4096))
        {
            _position = 0;
        }
    }

    public override void CancelPendingFlush()
    {
    }

    public override void Complete(Exception? exception = null)
    {
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        _position = 0;
        return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false));
    }
}

using System.Buffers;

namespace Melious.Gateway.Upstream;

/// <summary>An <see cref="IBufferWriter{T}"/> over rented arrays, so request bodies (often 80 KB+) stay off the large-object heap.</summary>
internal sealed class PooledBuffer(int initialCapacity = 16 * 1024) : IBufferWriter<byte>, IDisposable
{
    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(initialCapacity);
    private int _written;

    /// <summary>
    /// Reads <paramref name="stream"/> to its end into a new buffer, which the caller disposes; null when the stream
    /// holds more than <paramref name="maxBytes"/> (what was read is given back at once).
    /// </summary>
    public static async Task<PooledBuffer?> ReadToEndAsync(Stream stream, int maxBytes, CancellationToken cancellationToken)
    {
        var buffer = new PooledBuffer();
        try
        {
            while (buffer.WrittenCount <= maxBytes)
            {
                var read = await stream.ReadAsync(buffer.GetMemory(8 * 1024), cancellationToken);
                if (read == 0)
                {
                    return buffer;
                }

                buffer.Advance(read);
            }
        }
        catch
        {
            buffer.Dispose();
            throw;
        }

        buffer.Dispose();
        return null;
    }

    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _written);

    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(0, _written);

    public int WrittenCount => _written;

    public void Advance(int count) => _written += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_written);
    }

    private void Ensure(int sizeHint)
    {
        var needed = _written + Math.Max(sizeHint, 1);
        if (needed <= _buffer.Length)
        {
            return;
        }

        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, _buffer.Length * 2));
        _buffer.AsSpan(0, _written).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }

    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, []);
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

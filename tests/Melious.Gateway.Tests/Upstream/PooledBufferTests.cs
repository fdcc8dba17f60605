using Melious.Gateway.Upstream;

namespace Melious.Gateway.Tests.Upstream;

/// <summary>The bounded read of an upstream's JSON answer that both forwarders use (<see cref="PooledBuffer.ReadToEndAsync"/>).</summary>
public sealed class PooledBufferTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(0, 10)]
    [InlineData(10, 10)]
    [InlineData(100_000, 100_000)]
    public async Task A_stream_within_the_limit_is_read_whole(int length, int max)
    {
        var bytes = Enumerable.Range(0, length).Select(i => (byte)(i % 251)).ToArray();
        using var buffer = await PooledBuffer.ReadToEndAsync(new TrickleStream(bytes), max, Ct);
        Assert.NotNull(buffer);
        Assert.Equal(bytes, buffer.WrittenSpan.ToArray());
    }

    [Theory]
    [InlineData(11, 10)]
    [InlineData(100_001, 100_000)]
    public async Task A_stream_over_the_limit_is_null_and_is_not_read_to_its_end(int length, int max)
    {
        var stream = new TrickleStream(new byte[length + 1_000_000]);
        Assert.Null(await PooledBuffer.ReadToEndAsync(stream, max, Ct));
        Assert.InRange(stream.Position, max + 1, max + 8 * 1024);
    }

    /// <summary>A stream that hands out at most 3,000 bytes per read, as a socket would.</summary>
    private sealed class TrickleStream(byte[] data) : MemoryStream(data)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, 3_000)], cancellationToken);
    }
}

using Melious.Gateway.Streaming;

namespace Melious.Gateway.Tests.Streaming;

/// <summary>
/// Client output is flushed when the next upstream read would wait, not before every read: what the upstream has
/// already sent goes out in the same write, and a long burst still goes out every
/// <see cref="ObservedReadStream.MaxReadsPerFlush"/> reads.
/// </summary>
public sealed class ObservedReadStreamTests
{
    /// <summary>Counts the observer calls, in order.</summary>
    private sealed class Recorder : IReadObserver
    {
        public List<string> Calls { get; } = [];

        public void ReadStarting() => Calls.Add("read");

        public ValueTask BeforeWaitAsync()
        {
            Calls.Add("flush");
            return ValueTask.CompletedTask;
        }

        public ValueTask AfterWaitAsync()
        {
            Calls.Add("resume");
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>A read-only, asynchronous-only stream: the shape of an upstream response body.</summary>
    private abstract class ReadOnlyBody : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Has <c>ready</c> chunks available at once; every read after them waits for <c>gate</c>.</summary>
    private sealed class BurstStream(int ready, Task gate) : ReadOnlyBody
    {
        private int _reads;

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_reads++ < ready)
            {
                buffer.Span[0] = (byte)'x';
                return ValueTask.FromResult(1);
            }

            return new ValueTask<int>(gate.ContinueWith(_ => 0, TaskScheduler.Default));
        }
    }

    /// <summary>
    /// An upstream body as SocketsHttpHandler's: <c>buffered</c> bytes can be read at once, then the body ends
    /// (<c>ends</c>) or a read waits; cancelling a waiting read is what closes the connection.
    /// </summary>
    private sealed class UpstreamBody(int buffered, bool ends) : ReadOnlyBody
    {
        public int Reads { get; private set; }

        public bool WaitingReadCancelled { get; private set; }

        public bool Disposed { get; private set; }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Reads++;
            if (cancellationToken.IsCancellationRequested)
            {
                return ValueTask.FromCanceled<int>(cancellationToken);
            }

            if (buffered > 0)
            {
                var n = Math.Min(buffered, buffer.Length);
                buffered -= n;
                return ValueTask.FromResult(n);
            }

            if (ends)
            {
                return ValueTask.FromResult(0);
            }

            var waiting = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            cancellationToken.Register(() =>
            {
                WaitingReadCancelled = true;
                waiting.TrySetCanceled(cancellationToken);
            });
            return new ValueTask<int>(waiting.Task);
        }

        protected override void Dispose(bool disposing) => Disposed = true;
    }

    [Fact]
    public async Task Reads_that_do_not_wait_are_not_preceded_by_a_flush()
    {
        var recorder = new Recorder();
        var gate = new TaskCompletionSource();
        await using var stream = new ObservedReadStream(new BurstStream(3, gate.Task), recorder);

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(1, await stream.ReadAsync(new byte[8]));
        }

        Assert.Equal(["read", "read", "read"], recorder.Calls);

        var waiting = stream.ReadAsync(new byte[8]).AsTask();
        Assert.Equal(["read", "read", "read", "read", "flush"], recorder.Calls);
        Assert.False(waiting.IsCompleted);

        gate.SetResult();
        Assert.Equal(0, await waiting);
        Assert.Equal("resume", recorder.Calls[^1]);
    }

    [Fact]
    public async Task A_long_burst_is_still_flushed_every_few_reads()
    {
        var recorder = new Recorder();
        await using var stream = new ObservedReadStream(new BurstStream(100, Task.CompletedTask), recorder);

        for (var i = 0; i < 40; i++)
        {
            Assert.Equal(1, await stream.ReadAsync(new byte[8]));
        }

        Assert.Equal(40, recorder.Calls.Count(c => c == "read"));
        Assert.Equal(40 / ObservedReadStream.MaxReadsPerFlush, recorder.Calls.Count(c => c == "flush"));
        Assert.Equal(recorder.Calls.Count(c => c == "flush"), recorder.Calls.Count(c => c == "resume"));
    }

    /// <summary>One read of the pump; then, if <paramref name="givenUp"/>, its token is cancelled; then the pump disposes the stream.</summary>
    private static async Task ReadOnceThenDisposeAsync(UpstreamBody body, bool givenUp)
    {
        using var cts = new CancellationTokenSource();
        var stream = new ObservedReadStream(body, new Recorder());
        Assert.Equal(8, await stream.ReadAsync(new byte[8], cts.Token));
        if (givenUp)
        {
            cts.Cancel();
        }

        await stream.DisposeAsync();
    }

    [Fact]
    public async Task A_response_given_up_with_no_read_waiting_is_closed_by_a_cancelled_read_not_left_to_drain()
    {
        // The last read returned data; then the client left (the reads' token is cancelled) before the next read.
        var body = new UpstreamBody(buffered: 40_000, ends: false);

        await ReadOnceThenDisposeAsync(body, givenUp: true);

        Assert.True(body.WaitingReadCancelled, "no waiting read was cancelled: the handler would drain the response");
        Assert.True(body.Disposed);
        Assert.Equal(1 + 3 + 1, body.Reads); // the pump's read, the rest of the buffer in 16 KB reads, the cancelled one
    }

    [Fact]
    public async Task A_response_given_up_that_ends_in_what_was_already_sent_is_read_to_its_end()
    {
        var body = new UpstreamBody(buffered: 100, ends: true);

        await ReadOnceThenDisposeAsync(body, givenUp: true);

        Assert.False(body.WaitingReadCancelled);
        Assert.Equal(3, body.Reads);
        Assert.True(body.Disposed);
    }

    [Fact]
    public async Task A_response_read_to_the_finish_is_disposed_as_it_is()
    {
        // The translator saw the finish and the client is still there: the handler's drain pools the connection.
        var body = new UpstreamBody(buffered: 100, ends: false);

        await ReadOnceThenDisposeAsync(body, givenUp: false);

        Assert.Equal(1, body.Reads);
        Assert.True(body.Disposed);
    }
}

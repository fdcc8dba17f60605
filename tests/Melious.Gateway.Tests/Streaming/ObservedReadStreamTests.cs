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

    /// <summary>Has <c>ready</c> chunks available at once; every read after them waits for <c>gate</c>.</summary>
    private sealed class BurstStream(int ready, Task gate) : Stream
    {
        private int _reads;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_reads++ < ready)
            {
                buffer.Span[0] = (byte)'x';
                return ValueTask.FromResult(1);
            }

            return new ValueTask<int>(gate.ContinueWith(_ => 0, TaskScheduler.Default));
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
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
}

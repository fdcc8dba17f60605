using System.IO.Pipelines;
using System.Text;
using Melious.Gateway.Streaming;

namespace Melious.Gateway.Tests.Streaming;

/// <summary>
/// The look at an upstream body's first events, then the translation loop reading it again from its start: no byte
/// lost or doubled, whether the look ended after a whole event, was cut short while a read waited, hit its size
/// limit or met a failure of the body.
/// </summary>
public sealed class RewindableReadStreamTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<string> ReadToEndAsync(Stream stream)
    {
        var all = new MemoryStream();
        var buffer = new byte[5];
        int read;
        while ((read = await stream.ReadAsync(buffer, Ct)) > 0)
        {
            all.Write(buffer, 0, read);
        }

        return Encoding.UTF8.GetString(all.ToArray());
    }

    private static async Task WriteAsync(Pipe pipe, string text) => await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes(text), Ct);

    [Fact]
    public async Task AfterTheLook_TheLoopReadsTheBodyFromItsStart()
    {
        var pipe = new Pipe();
        await using var stream = new RewindableReadStream(pipe.Reader.AsStream(), Ct, 1024);
        await WriteAsync(pipe, "data: {\"a\":1}\n\n");
        var buffer = new byte[64];
        var looked = await stream.ReadAsync(buffer, Ct);
        Assert.Equal("data: {\"a\":1}\n\n", Encoding.UTF8.GetString(buffer, 0, looked));
        Assert.Equal(looked, stream.Kept);

        stream.Rewind();
        await WriteAsync(pipe, "data: {\"b\":2}\n\n");
        await pipe.Writer.CompleteAsync();
        Assert.Equal("data: {\"a\":1}\n\ndata: {\"b\":2}\n\n", await ReadToEndAsync(stream));
    }

    [Fact]
    public async Task ALookCutShortWhileAReadWaits_LosesNothing_TheReadsBytesComeNext()
    {
        var pipe = new Pipe();
        await using var stream = new RewindableReadStream(pipe.Reader.AsStream(), Ct, 1024);
        await WriteAsync(pipe, "data: {\"role\":1}\n\n");
        var buffer = new byte[64];
        Assert.Equal(18, await stream.ReadAsync(buffer, Ct));

        // The next read waits for the upstream; the look gives up on it (a streamed response is committed).
        using var look = new CancellationTokenSource();
        var waiting = stream.ReadAsync(buffer, look.Token).AsTask();
        await Task.Delay(20, Ct);
        Assert.False(waiting.IsCompleted);
        await look.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);

        // The read the look left goes on: what the upstream sends next arrives after the kept bytes.
        stream.Rewind();
        await WriteAsync(pipe, "data: {\"late\":2}\n\n");
        await WriteAsync(pipe, "data: [DONE]\n\n");
        await pipe.Writer.CompleteAsync();
        Assert.Equal("data: {\"role\":1}\n\ndata: {\"late\":2}\n\ndata: [DONE]\n\n", await ReadToEndAsync(stream));
    }

    [Fact]
    public async Task AFailureOfTheBodyDuringTheLook_ReachesTheLoop_AfterTheKeptBytes()
    {
        var pipe = new Pipe();
        await using var stream = new RewindableReadStream(pipe.Reader.AsStream(), Ct, 1024);
        await WriteAsync(pipe, "data: x\n\n");
        var buffer = new byte[64];
        Assert.Equal(9, await stream.ReadAsync(buffer, Ct));
        await pipe.Writer.CompleteAsync(new IOException("connection reset"));
        await Assert.ThrowsAsync<IOException>(() => stream.ReadAsync(buffer, Ct).AsTask());

        stream.Rewind();
        Assert.Equal(9, await stream.ReadAsync(buffer, Ct));
        Assert.Equal("data: x\n\n", Encoding.UTF8.GetString(buffer, 0, 9));
        var failure = await Assert.ThrowsAsync<IOException>(() => stream.ReadAsync(buffer, Ct).AsTask());
        Assert.Equal("connection reset", failure.Message);
    }

    [Fact]
    public async Task PastItsLimit_TheLookSeesAnEnd_AndTheLoopStillGetsEverything()
    {
        var pipe = new Pipe();
        await using var stream = new RewindableReadStream(pipe.Reader.AsStream(), Ct, 8);
        await WriteAsync(pipe, "0123456789abcdef");
        var buffer = new byte[6];
        var looked = 0;
        int read;
        while ((read = await stream.ReadAsync(buffer, Ct)) > 0)
        {
            looked += read;
        }

        Assert.Equal(12, looked);
        stream.Rewind();
        await WriteAsync(pipe, "ghij");
        await pipe.Writer.CompleteAsync();
        Assert.Equal("0123456789abcdefghij", await ReadToEndAsync(stream));
    }

    [Fact]
    public async Task TheLookRestartsTheIdleDeadline_OnEveryReadOfTheBody()
    {
        var pipe = new Pipe();
        var observer = new CountingObserver();
        await using var stream = new RewindableReadStream(pipe.Reader.AsStream(), Ct, 1024, observer);
        var buffer = new byte[64];
        await WriteAsync(pipe, "a");
        Assert.Equal(1, await stream.ReadAsync(buffer, Ct));
        await WriteAsync(pipe, "b");
        Assert.Equal(1, await stream.ReadAsync(buffer, Ct));
        Assert.Equal(2, observer.Reads);

        // The loop's reads are observed by the loop's own observer, not this one.
        stream.Rewind();
        await pipe.Writer.CompleteAsync();
        Assert.Equal("ab", await ReadToEndAsync(stream));
        Assert.Equal(2, observer.Reads);
    }

    private sealed class CountingObserver : IReadObserver
    {
        public int Reads { get; private set; }

        public void ReadStarting() => Reads++;

        public ValueTask BeforeWaitAsync() => ValueTask.CompletedTask;

        public ValueTask AfterWaitAsync() => ValueTask.CompletedTask;
    }
}

using System.Buffers;
using System.Text;
using Melious.Gateway.Streaming;
using Melious.Gateway.Tests.Support;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.Tests.Streaming;

/// <summary>
/// protocol.md §D.4 case 39: while the upstream is silent (long prefill), the session sends <c>event: ping</c>
/// frames; none while the translation loop is writing. Driven through <see cref="ObservedReadStream"/> as the
/// forwarder does, on a manual clock.
/// </summary>
public sealed class StreamingSessionTests
{
    private static readonly TimeSpan PingInterval = TimeSpan.FromSeconds(15);

    /// <summary>An upstream body whose first read waits until the test opens the gate.</summary>
    private sealed class GatedStream(byte[] data, Task gate) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => data.Length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await gate.WaitAsync(cancellationToken);
            var count = Math.Min(buffer.Length, data.Length - _position);
            data.AsMemory(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    private static (DefaultHttpContext Http, MemoryStream Body) Context()
    {
        var http = new DefaultHttpContext();
        var body = new MemoryStream();
        http.Response.Body = body;
        return (http, body);
    }

    [Fact]
    public async Task Pings_while_the_upstream_is_silent_and_flushes_message_start_first()
    {
        var time = new ManualTimeProvider();
        var (http, body) = Context();
        using var upstream = new CancellationTokenSource();
        var gate = new TaskCompletionSource();
        var session = new StreamingSession(http, "claude-sonnet-4-5-20250929", upstream, TimeSpan.FromMinutes(5), PingInterval, time);
        await session.StartAsync(CancellationToken.None);
        Assert.Equal("text/event-stream; charset=utf-8", http.Response.ContentType);
        Assert.Equal("no-cache", http.Response.Headers.CacheControl.ToString());

        session.Writer.MessageStart(Ids.NewMessageId(), default);
        await using var observed = new ObservedReadStream(new GatedStream("data: [DONE]\n\n"u8.ToArray(), gate.Task), session);
        var read = observed.ReadAsync(new byte[64]).AsTask();

        // The loop waits on the upstream: message_start has been flushed; 20 s of prefill silence → one ping.
        Assert.StartsWith("event: message_start\n", Encoding.UTF8.GetString(body.ToArray()));
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(1, session.PingsSent);
        time.Advance(TimeSpan.FromSeconds(40));
        Assert.True(session.PingsSent >= 3, $"{session.PingsSent} pings after 60 s");

        gate.SetResult();
        Assert.True(await read > 0);
        session.Writer.MessageDelta("end_turn", null, default, null, null);
        session.Writer.MessageStop();
        await session.DisposeAsync();

        var sse = Encoding.UTF8.GetString(body.ToArray());
        Assert.Contains("event: ping\ndata: {\"type\":\"ping\"}\n\n", sse);
        var parsed = SseGrammar.Validate(sse);
        Assert.True(parsed.Completed);
        Assert.Equal(session.PingsSent, parsed.Events.Count(e => e.Event == "ping"));
    }

    [Fact]
    public async Task No_ping_before_message_start_when_the_relay_writes_it()
    {
        // The pass-through relay: the upstream is silent after its headers, before its message_start.
        var time = new ManualTimeProvider();
        var (http, body) = Context();
        using var upstream = new CancellationTokenSource();
        var session = new StreamingSession(http, "m", upstream, TimeSpan.FromMinutes(5), PingInterval, time);
        await session.StartAsync(CancellationToken.None);
        await session.BeforeWaitAsync();
        time.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(0, session.PingsSent);
        Assert.Equal(0, body.Length);

        // Once the relay has copied message_start, silence gets pings again.
        await session.AfterWaitAsync();
        http.Response.BodyWriter.Write("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n"u8);
        session.Writer.MarkPending();
        session.Writer.MarkStarted();
        await session.BeforeWaitAsync();
        time.Advance(TimeSpan.FromSeconds(20));
        Assert.Equal(1, session.PingsSent);
        await session.AfterWaitAsync();
        await session.DisposeAsync();
        Assert.StartsWith("event: message_start\n", Encoding.UTF8.GetString(body.ToArray()));
    }

    [Fact]
    public async Task No_ping_while_the_loop_holds_the_stream_or_after_the_terminal_event()
    {
        var time = new ManualTimeProvider();
        var (http, body) = Context();
        using var upstream = new CancellationTokenSource();
        var session = new StreamingSession(http, "m", upstream, TimeSpan.FromMinutes(5), PingInterval, time);
        await session.StartAsync(CancellationToken.None);
        session.Writer.MessageStart(Ids.NewMessageId(), default);

        // The loop holds the gate (it is translating, not waiting): the timer must not interleave a frame.
        time.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(0, session.PingsSent);

        session.Writer.Error("api_error", "boom");
        await session.BeforeWaitAsync();
        time.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(0, session.PingsSent);
        await session.AfterWaitAsync();
        await session.DisposeAsync();

        var parsed = SseGrammar.Validate(Encoding.UTF8.GetString(body.ToArray()));
        Assert.NotNull(parsed.Error);
    }
}

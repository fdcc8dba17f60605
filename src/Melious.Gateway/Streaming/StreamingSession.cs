using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Melious.Gateway.Streaming;

/// <summary>
/// The client side of one streamed response. It owns the response <see cref="PipeWriter"/> and serializes the two
/// writers that share it: the translation loop, and a timer that sends <c>ping</c> events while the upstream is
/// silent. The loop holds the gate except while it waits on the upstream (see <see cref="ObservedReadStream"/>):
/// every read restarts the upstream idle deadline; before a read that waits it flushes what it wrote and lets pings
/// through.
/// </summary>
internal sealed class StreamingSession : IReadObserver, IAsyncDisposable
{
    private readonly HttpResponse _response;
    private readonly PipeWriter _output;
    private readonly CancellationTokenSource _upstream;
    private readonly IdleDeadline _idle;
    private readonly TimeSpan _pingInterval;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ITimer? _pingTimer;
    private long _lastWrite;
    private bool _holdsGate;
    private int _pings;

    public StreamingSession(HttpContext http, string model, CancellationTokenSource upstream, TimeSpan idleTimeout, TimeSpan pingInterval, TimeProvider time)
    {
        _response = http.Response;
        _output = http.Response.BodyWriter;
        _upstream = upstream;
        _idle = new IdleDeadline(upstream, idleTimeout, time);
        _pingInterval = pingInterval;
        _time = time;
        Writer = new SseMessageWriter(_output, model);
    }

    public SseMessageWriter Writer { get; }

    /// <summary>True when a write to the client failed or was cancelled: the client is gone.</summary>
    public bool ClientGone { get; private set; }

    public int PingsSent => Volatile.Read(ref _pings);

    /// <summary>Sends the 200 headers and takes the gate. Nothing is flushed yet: the first flush carries message_start.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _response.StatusCode = StatusCodes.Status200OK;
        _response.ContentType = "text/event-stream; charset=utf-8";
        _response.Headers.CacheControl = "no-cache";
        _response.Headers["X-Accel-Buffering"] = "no";
        _response.HttpContext.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await _gate.WaitAsync(cancellationToken);
        _holdsGate = true;
        _lastWrite = _time.GetTimestamp();
        _pingTimer = _time.CreateTimer(static state => _ = ((StreamingSession)state!).PingAsync(), this, _pingInterval, _pingInterval);
    }

    public void ReadStarting() => _idle.Touch();

    public async ValueTask BeforeWaitAsync()
    {
        await FlushAsync();
        if (_holdsGate)
        {
            _holdsGate = false;
            _gate.Release();
        }
    }

    public async ValueTask AfterWaitAsync()
    {
        if (!_holdsGate)
        {
            await _gate.WaitAsync();
            _holdsGate = true;
        }
    }

    /// <summary>Flushes buffered events to the client. Call with the gate held.</summary>
    public async ValueTask FlushAsync()
    {
        if (!Writer.HasPending || ClientGone)
        {
            return;
        }

        try
        {
            var result = await _output.FlushAsync(_response.HttpContext.RequestAborted);
            Writer.MarkFlushed();
            _lastWrite = _time.GetTimestamp();
            if (result.IsCanceled || result.IsCompleted)
            {
                MarkClientGone();
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            MarkClientGone();
        }
    }

    private void MarkClientGone()
    {
        ClientGone = true;
        try
        {
            _upstream.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task PingAsync()
    {
        if (ClientGone || _time.GetElapsedTime(Volatile.Read(ref _lastWrite)) < _pingInterval * 0.9)
        {
            return;
        }

        // Only while the loop waits on the upstream; otherwise it is writing anyway.
        if (!_gate.Wait(0))
        {
            return;
        }

        try
        {
            // Never before message_start: a pass-through upstream can be silent after its headers, before the
            // message_start the relay copies, and a ping must not be the first event the client sees.
            if (Writer.Started && !Writer.Terminated)
            {
                Writer.Ping();
                Interlocked.Increment(ref _pings);
                await FlushAsync();
            }
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _idle.Dispose();
        if (_pingTimer is not null)
        {
            await _pingTimer.DisposeAsync();
        }

        // A ping may be mid-flight: wait for it before the response completes.
        if (!_holdsGate)
        {
            await _gate.WaitAsync();
            _holdsGate = true;
        }

        await FlushAsync();
        _gate.Release();
        _holdsGate = false;
    }
}

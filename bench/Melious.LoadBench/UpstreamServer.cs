using Melious.Bench;
using System.Buffers;
using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace Melious.LoadBench;

/// <summary>
/// A fast scripted OpenAI-compatible model server (run as its own process: <c>Melious.LoadBench upstream --port P</c>).
/// Every <c>POST /v1/chat/completions</c> streams the current <see cref="ScenarioPayload"/>: headers at once, the TTFT
/// delay, then one write+flush per chunk with the inter-chunk delay between content chunks, the finish chunk, the
/// usage chunk and <c>data: [DONE]</c>. The payload is precomputed, so a request costs a body drain and one copy
/// per chunk. Control: <c>POST /control/scenario?…</c>, <c>POST /control/capture</c> + <c>GET /control/captured</c>
/// (the next request body, to replay it as the direct baseline), <c>GET /control/stats</c>.
/// </summary>
public static class UpstreamServer
{
    private static volatile ScenarioPayload _payload = new(new Scenario(200, 1, 0, 0, false));
    private static long _requests;
    private static long _active;
    private static long _maxActive;
    private static long _aborted;
    private static volatile bool _captureNext;
    private static volatile byte[]? _captured;

    public static async Task<int> RunAsync(int port, int parentPid)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = 64 * 1024 * 1024;
            k.Limits.MaxConcurrentConnections = null;
            k.Listen(IPAddress.Loopback, port, o => o.Protocols = HttpProtocols.Http1);
        });
        var app = builder.Build();
        app.Run(HandleAsync);
        await app.StartAsync();
        Console.Out.WriteLine($"upstream listening on 127.0.0.1:{port} (pid {Environment.ProcessId})");
        Console.Out.Flush();

        // Exit with the orchestrator, whatever happens to it.
        while (true)
        {
            await Task.Delay(500);
            if (parentPid > 0 && !ProcStats.IsAlive(parentPid))
            {
                break;
            }
        }

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await app.StopAsync(stop.Token);
        return 0;
    }

    private static Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        if (path.EndsWith("/chat/completions", StringComparison.Ordinal) && HttpMethods.IsPost(context.Request.Method))
        {
            return StreamAsync(context);
        }

        if (path.StartsWith("/control/", StringComparison.Ordinal))
        {
            return ControlAsync(context, path);
        }

        if (path == "/health")
        {
            context.Response.StatusCode = 200;
            return Task.CompletedTask;
        }

        context.Response.StatusCode = 404;
        return Task.CompletedTask;
    }

    private static async Task StreamAsync(HttpContext context)
    {
        var payload = _payload;
        var scenario = payload.Scenario;
        Interlocked.Increment(ref _requests);
        var active = Interlocked.Increment(ref _active);
        UpdateMax(active);
        var aborted = context.RequestAborted;
        try
        {
            await DrainBodyAsync(context, aborted);
            var response = context.Response;
            response.StatusCode = 200;
            response.ContentType = "text/event-stream";
            response.Headers.CacheControl = "no-cache";
            await response.StartAsync(aborted);
            var writer = response.BodyWriter;
            await writer.FlushAsync(aborted);
            if (scenario.TtftMs > 0)
            {
                await Task.Delay(scenario.TtftMs, aborted);
            }

            var bytes = payload.Bytes;
            var chunks = payload.Chunks;
            var last = chunks.Length - 1;
            for (var i = 0; i <= last; i++)
            {
                // No delay before the first content chunk, nor before the usage chunk and [DONE].
                if (scenario.DelayMs > 0 && i >= 2 && i <= last - 2)
                {
                    await Task.Delay(scenario.DelayMs, aborted);
                }

                var (start, length) = chunks[i];
                var result = await writer.WriteAsync(bytes.AsMemory(start, length), aborted);
                if (result.IsCanceled || result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            Interlocked.Increment(ref _aborted);
        }
        finally
        {
            Interlocked.Decrement(ref _active);
        }
    }

    private static async Task DrainBodyAsync(HttpContext context, CancellationToken aborted)
    {
        var reader = context.Request.BodyReader;
        var capture = _captureNext;
        var captured = capture ? new ArrayBufferWriter<byte>(64 * 1024) : null;
        while (true)
        {
            var result = await reader.ReadAsync(aborted);
            if (captured is not null)
            {
                foreach (var segment in result.Buffer)
                {
                    captured.Write(segment.Span);
                }
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                break;
            }
        }

        if (captured is not null)
        {
            _captured = captured.WrittenSpan.ToArray();
            _captureNext = false;
        }
    }

    private static async Task ControlAsync(HttpContext context, string path)
    {
        var query = context.Request.Query;
        switch (path)
        {
            case "/control/scenario":
                _payload = new ScenarioPayload(Scenario.FromQuery(name => query[name].ToString() is { Length: > 0 } v ? v : null));
                context.Response.StatusCode = 204;
                return;
            case "/control/capture":
                _captured = null;
                _captureNext = true;
                context.Response.StatusCode = 204;
                return;
            case "/control/captured":
                if (_captured is not { } body)
                {
                    context.Response.StatusCode = 404;
                    return;
                }

                context.Response.ContentType = "application/json";
                context.Response.ContentLength = body.Length;
                await context.Response.Body.WriteAsync(body);
                return;
            case "/control/stats":
                context.Response.ContentType = "application/json";
                var json = string.Create(CultureInfo.InvariantCulture,
                    $"{{\"requests\":{Interlocked.Read(ref _requests)},\"active\":{Interlocked.Read(ref _active)},\"max_active\":{Interlocked.Read(ref _maxActive)},\"aborted\":{Interlocked.Read(ref _aborted)},\"pid\":{Environment.ProcessId}}}");
                if (query.ContainsKey("reset"))
                {
                    Interlocked.Exchange(ref _maxActive, Interlocked.Read(ref _active));
                }

                await context.Response.WriteAsync(json, Encoding.UTF8);
                return;
            default:
                context.Response.StatusCode = 404;
                return;
        }
    }

    private static void UpdateMax(long active)
    {
        var seen = Interlocked.Read(ref _maxActive);
        while (active > seen)
        {
            var previous = Interlocked.CompareExchange(ref _maxActive, active, seen);
            if (previous == seen)
            {
                return;
            }

            seen = previous;
        }
    }
}

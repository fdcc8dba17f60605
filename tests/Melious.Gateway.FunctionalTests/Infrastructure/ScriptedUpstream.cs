using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>A request the scripted upstream received, with the moment (if any) the gateway aborted it.</summary>
public sealed class UpstreamRequest(string method, string path, IDictionary<string, string> headers, byte[] body)
{
    public string Method { get; } = method;

    public string Path { get; } = path;

    public IDictionary<string, string> Headers { get; } = headers;

    public byte[] Body { get; } = body;

    public string BodyText => Encoding.UTF8.GetString(Body);

    public JsonElement Json => JsonDocument.Parse(Body).RootElement;

    /// <summary>
    /// Completes with the moment the gateway's abort reached this request: when Kestrel fired
    /// <see cref="HttpContext.RequestAborted"/>, or, if it never did, when the handler saw the lost connection (a
    /// write or flush that failed, a delay or write cancelled). <see cref="AbortSeenAs"/> says which.
    /// </summary>
    public TaskCompletionSource<DateTime> Aborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>How the abort was seen: "RequestAborted", or "handler: &lt;exception type&gt;" when only the handler saw it.</summary>
    public string? AbortSeenAs { get; private set; }

    /// <summary>How the handler itself ended when it did not run to completion (exception type), or null.</summary>
    public string? HandlerEndedBy { get; internal set; }

    internal void MarkAborted(DateTime at, string seenAs)
    {
        lock (Aborted)
        {
            if (Aborted.Task.IsCompleted)
            {
                return;
            }

            AbortSeenAs = seenAs;
            Aborted.TrySetResult(at);
        }
    }

    public TaskCompletionSource<DateTime> Completed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// An OpenAI- or Anthropic-compatible upstream on a loopback port, scripted per test: the handler gets each request
/// and writes whatever bytes the test wants (verbatim SSE, delays, errors, dropped connections).
/// </summary>
public sealed class ScriptedUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;

    /// <summary>How long a handler that saw its connection fail waits for Kestrel's RequestAborted before it ends.</summary>
    private static readonly TimeSpan AbortGrace = TimeSpan.FromSeconds(10);

    private Func<UpstreamRequest, HttpContext, Task> _handler = (_, _) => Task.CompletedTask;

    private ScriptedUpstream(WebApplication app) => _app = app;

    public ConcurrentQueue<UpstreamRequest> Requests { get; } = new();

    public string BaseUrl { get; private set; } = "";

    /// <summary>Base URL for an OpenAI-compatible model server (the gateway appends /chat/completions).</summary>
    public string OpenAIBaseUrl => BaseUrl + "/v1";

    public int Port { get; private set; }

    public static async Task<ScriptedUpstream> StartAsync(Func<UpstreamRequest, HttpContext, Task> handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var upstream = new ScriptedUpstream(app) { _handler = handler };
        app.Run(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString());
            var request = new UpstreamRequest(context.Request.Method, context.Request.Path + context.Request.QueryString, headers, body.ToArray());
            upstream.Requests.Enqueue(request);
            // Stamp the moment RequestAborted fires, and count the abort however the handler sees it. Kestrel cancels
            // RequestAborted from a queued thread-pool work item; CancellationTokenSource.Cancel marks the token
            // cancelled first and then runs the callbacks, last registered first. So on a busy machine the handler can
            // see the loss first (a failed write, a cancelled write, flush or delay) and end; disposing this
            // registration before its callback ran unregisters it, and Kestrel never cancels RequestAborted once the
            // app has returned. Counting only the callback (or only a failed write) then missed the abort.
            var aborted = context.RequestAborted;
            var registration = aborted.Register(static state => ((UpstreamRequest)state!).MarkAborted(DateTime.UtcNow, "RequestAborted"), request);
            try
            {
                await upstream._handler(request, context);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException || aborted.IsCancellationRequested)
            {
                // The gateway went away under the handler, however the handler saw it. Wait (bounded) for Kestrel's
                // RequestAborted so that the recorded time is the abort's, not that of whatever the handler was doing;
                // only if it never fires is the handler's own observation the abort.
                var seenAt = DateTime.UtcNow;
                request.HandlerEndedBy = ex.GetType().Name;
                if (!aborted.IsCancellationRequested)
                {
                    await Task.WhenAny(request.Aborted.Task, Task.Delay(AbortGrace));
                }

                request.MarkAborted(seenAt, "handler: " + ex.GetType().Name);
            }
            catch (Exception ex)
            {
                request.HandlerEndedBy = ex.GetType().Name;
                throw;
            }
            finally
            {
                registration.Dispose();
                request.Completed.TrySetResult(DateTime.UtcNow);
            }
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        upstream.Port = new Uri(address).Port;
        upstream.BaseUrl = $"http://127.0.0.1:{upstream.Port}";
        return upstream;
    }

    /// <summary>An upstream that answers every request with the same OpenAI SSE script.</summary>
    public static Task<ScriptedUpstream> OpenAIAsync(params string[] dataLines) =>
        StartAsync((_, context) => Sse.WriteAsync(context, dataLines));

    public UpstreamRequest Last => Requests.Last();

    /// <summary>A new script for the requests to come, and the requests seen so far forgotten (a shared upstream between tests).</summary>
    public void Rescript(Func<UpstreamRequest, HttpContext, Task> handler)
    {
        _handler = handler;
        Requests.Clear();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Writes upstream SSE and builds OpenAI chunk JSON.</summary>
public static class Sse
{
    /// <summary>Writes <c>data: …</c> events (and <c>[DONE]</c> if <paramref name="done"/>), flushing each, with an optional delay.</summary>
    public static async Task WriteAsync(HttpContext context, IEnumerable<string> dataLines, TimeSpan? delay = null, bool done = true)
    {
        if (!context.Response.HasStarted)
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync(context.RequestAborted);
        }

        foreach (var line in dataLines)
        {
            await context.Response.WriteAsync($"data: {line}\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            if (delay is { } d && d > TimeSpan.Zero)
            {
                await Task.Delay(d, context.RequestAborted);
            }
        }

        if (done)
        {
            await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
        }
    }

    /// <summary>Writes raw bytes as the whole response body (for verbatim transcripts).</summary>
    public static async Task WriteRawAsync(HttpContext context, string raw, string contentType = "text/event-stream")
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = contentType;
        await context.Response.WriteAsync(raw, context.RequestAborted);
    }

    public static async Task ErrorAsync(HttpContext context, int status, string message, string? retryAfter = null)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        if (retryAfter is not null)
        {
            context.Response.Headers.RetryAfter = retryAfter;
        }

        await context.Response.WriteAsync(JsonSerializer.Serialize(new { error = new { message, type = "error", code = status } }), context.RequestAborted);
    }

    public static string Content(string text) => Delta(new { content = text });

    public static string Reasoning(string text) => Delta(new { reasoning = text });

    public static string Role() => Delta(new { role = "assistant", content = "" });

    public static string ToolCall(int index, string? id, string? name, string arguments) =>
        Delta(new { tool_calls = new[] { new { index, id, type = "function", function = new { name, arguments } } } });

    public static string Finish(string reason) =>
        JsonSerializer.Serialize(new { id = "chatcmpl-1", @object = "chat.completion.chunk", choices = new[] { new { index = 0, delta = new { }, finish_reason = reason } } });

    public static string Usage(int prompt, int completion, int cached = 0, int reasoning = 0) =>
        JsonSerializer.Serialize(new
        {
            id = "chatcmpl-1",
            @object = "chat.completion.chunk",
            choices = Array.Empty<object>(),
            usage = new
            {
                prompt_tokens = prompt,
                completion_tokens = completion,
                total_tokens = prompt + completion,
                prompt_tokens_details = new { cached_tokens = cached },
                completion_tokens_details = new { reasoning_tokens = reasoning },
            },
        });

    /// <summary>A complete text answer: role, one chunk per piece, finish, usage.</summary>
    public static string[] TextAnswer(string[] pieces, int prompt = 100, int cached = 0) =>
        [Role(), .. pieces.Select(Content), Finish("stop"), Usage(prompt, pieces.Length, cached)];

    private static string Delta(object delta) =>
        JsonSerializer.Serialize(new { id = "chatcmpl-1", @object = "chat.completion.chunk", choices = new[] { new { index = 0, delta, finish_reason = (string?)null } } });
}

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

    public TaskCompletionSource<DateTime> Aborted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource<DateTime> Completed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// An OpenAI- or Anthropic-compatible upstream on a loopback port, scripted per test: the handler gets each request
/// and writes whatever bytes the test wants (verbatim SSE, delays, errors, dropped connections).
/// </summary>
public sealed class ScriptedUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;

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
            using var registration = context.RequestAborted.Register(() => request.Aborted.TrySetResult(DateTime.UtcNow));
            try
            {
                await upstream._handler(request, context);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
            }
            catch (IOException)
            {
                // The connection failed under a write: the client (the gateway) is gone. Kestrel cancels RequestAborted
                // from a queued work item, so on a busy machine the write can fail first; the registration above ends
                // with this handler and would then never fire.
                request.Aborted.TrySetResult(DateTime.UtcNow);
            }
            finally
            {
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

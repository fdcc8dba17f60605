using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Melious.Functions.Tests.Infrastructure;

/// <summary>
/// An OpenAI-compatible model server on a loopback port that answers every request with the same
/// <c>data: {chunk}</c> SSE script, flushing each line (a small copy of the functional tests' ScriptedUpstream).
/// </summary>
internal sealed class OpenAIUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OpenAIUpstream(WebApplication app, string baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    /// <summary>Base URL the gateway appends <c>/chat/completions</c> to.</summary>
    public string BaseUrl { get; }

    /// <summary>Bodies of the requests received, as JSON.</summary>
    public ConcurrentQueue<JsonElement> Requests { get; } = new();

    public static async Task<OpenAIUpstream> StartAsync(IReadOnlyList<string> dataLines)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        OpenAIUpstream? upstream = null;
        app.Run(async context =>
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            upstream!.Requests.Enqueue(document.RootElement.Clone());
            context.Response.StatusCode = 200;
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync(context.RequestAborted);
            foreach (var line in dataLines.Append("[DONE]"))
            {
                await context.Response.WriteAsync($"data: {line}\n\n", context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        });
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        upstream = new OpenAIUpstream(app, $"http://127.0.0.1:{address.Port}/v1");
        return upstream;
    }

    /// <summary>A text answer in OpenAI chunks: role, one chunk per piece, finish_reason stop, then usage.</summary>
    public static IReadOnlyList<string> TextAnswer(params string[] pieces) =>
    [
        Chunk(new { role = "assistant", content = "" }, null),
        .. pieces.Select(piece => Chunk(new { content = piece }, null)),
        Chunk(new { }, "stop"),
        JsonSerializer.Serialize(new
        {
            id = "chatcmpl-1",
            @object = "chat.completion.chunk",
            choices = Array.Empty<object>(),
            usage = new { prompt_tokens = 12, completion_tokens = pieces.Length, total_tokens = 12 + pieces.Length },
        }),
    ];

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static string Chunk(object delta, string? finishReason) =>
        JsonSerializer.Serialize(new
        {
            id = "chatcmpl-1",
            @object = "chat.completion.chunk",
            choices = new[] { new { index = 0, delta, finish_reason = finishReason } },
        });
}

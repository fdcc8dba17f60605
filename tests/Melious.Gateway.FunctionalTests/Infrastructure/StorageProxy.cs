using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>
/// A loopback HTTP proxy in front of Azurite's table endpoint that lets a test act between two storage calls of the
/// code under test: <see cref="BeforeForward"/> runs for every request, before it is forwarded. Shared Key signs the
/// account and path, not the host, so requests pass through unchanged.
/// </summary>
public sealed class StorageProxy : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _client;

    private StorageProxy(WebApplication app, HttpClient client)
    {
        _app = app;
        _client = client;
    }

    /// <summary>Runs before each request is forwarded (method, path and query as received).</summary>
    public Func<HttpRequest, Task> BeforeForward { get; set; } = _ => Task.CompletedTask;

    /// <summary>A connection string whose table endpoint is this proxy (queues and blobs go straight to Azurite).</summary>
    public string ConnectionString { get; private set; } = "";

    public static async Task<StorageProxy> StartAsync(AzuriteProcess azurite)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var target = new Uri($"http://127.0.0.1:{azurite.TablePort}");
        var proxy = new StorageProxy(app, new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None }));
        app.Run(async context =>
        {
            await proxy.BeforeForward(context.Request);
            await proxy.ForwardAsync(context, target);
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        proxy.ConnectionString = AzuriteProcess.ConnectionStringFor(azurite.BlobPort, azurite.QueuePort, new Uri(address).Port);
        return proxy;
    }

    private async Task ForwardAsync(HttpContext context, Uri target)
    {
        var incoming = context.Request;
        using var outgoing = new HttpRequestMessage(new HttpMethod(incoming.Method), new Uri(target, incoming.Path + incoming.QueryString));
        using var body = new MemoryStream();
        await incoming.Body.CopyToAsync(body, context.RequestAborted);
        if (body.Length > 0 || incoming.ContentLength is not null)
        {
            outgoing.Content = new ByteArrayContent(body.ToArray());
        }

        foreach (var (name, values) in incoming.Headers)
        {
            if (string.Equals(name, "Host", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (!outgoing.Headers.TryAddWithoutValidation(name, values.ToArray()))
            {
                outgoing.Content?.Headers.TryAddWithoutValidation(name, values.ToArray());
            }
        }

        using var response = await _client.SendAsync(outgoing, HttpCompletionOption.ResponseContentRead, context.RequestAborted);
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            if (!string.Equals(name, "Transfer-Encoding", StringComparison.OrdinalIgnoreCase))
            {
                context.Response.Headers[name] = values.ToArray();
            }
        }

        await response.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _client.Dispose();
    }
}

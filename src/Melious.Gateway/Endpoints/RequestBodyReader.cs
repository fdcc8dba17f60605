using Melious.Gateway.Upstream;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Melious.Gateway.Endpoints;

/// <summary>Reads a request body into a pooled buffer, enforcing the configured size limit (413 beyond it).</summary>
internal static class RequestBodyReader
{
    public static async Task<(PooledBuffer? Body, GatewayError? Error)> ReadAsync(HttpContext http, long maxBytes, CancellationToken cancellationToken)
    {
        var request = http.Request;

        // Our limit replaces the server's default (Kestrel: 30 MB) so the error is ours and Anthropic-shaped. The
        // server may still drain an oversized body after the 413 so that the client gets to read the answer.
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            sizeFeature.MaxRequestBodySize = null;
        }

        if (request.ContentLength is { } declared && declared > maxBytes)
        {
            return (null, TooLarge(maxBytes));
        }

        var buffer = new PooledBuffer((int)Math.Clamp(request.ContentLength ?? 16 * 1024, 1024, 64L * 1024 * 1024));
        try
        {
            while (true)
            {
                var memory = buffer.GetMemory(16 * 1024);
                var read = await request.Body.ReadAsync(memory, cancellationToken);
                if (read == 0)
                {
                    return (buffer, null);
                }

                buffer.Advance(read);
                if (buffer.WrittenCount > maxBytes)
                {
                    buffer.Dispose();
                    return (null, TooLarge(maxBytes));
                }
            }
        }
        catch (Exception ex) when (ex is BadHttpRequestException or IOException && !cancellationToken.IsCancellationRequested)
        {
            buffer.Dispose();
            return (null, ex is BadHttpRequestException { StatusCode: 413 } ? TooLarge(maxBytes) : new GatewayError(400, "invalid_request_error", "the request body could not be read"));
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    private static GatewayError TooLarge(long maxBytes) =>
        new(413, "request_too_large", $"request body exceeds the maximum of {maxBytes} bytes");
}

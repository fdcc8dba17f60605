using Melious.Gateway.Upstream;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Melious.Gateway.Endpoints;

/// <summary>The body, or the error to answer, or the news that the client went away while sending it.</summary>
internal readonly record struct BodyReadResult(PooledBuffer? Body, GatewayError? Error, bool ClientGone = false);

/// <summary>Reads a request body into a pooled buffer, enforcing the configured size limit (413 beyond it).</summary>
internal static class RequestBodyReader
{
    public static async Task<BodyReadResult> ReadAsync(HttpContext http, long maxBytes, CancellationToken cancellationToken)
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
            return new(null, TooLarge(maxBytes));
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
                    return new(buffer, null);
                }

                buffer.Advance(read);
                if (buffer.WrittenCount > maxBytes)
                {
                    buffer.Dispose();
                    return new(null, TooLarge(maxBytes));
                }
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == 413)
        {
            buffer.Dispose();
            return new(null, TooLarge(maxBytes));
        }
        catch (Exception ex) when (ex is BadHttpRequestException or IOException or OperationCanceledException)
        {
            // The connection ended mid-upload (reset, or the body stopped short of its length): the client left.
            // Nobody is there to read an answer, and the server should not try to drain what never comes.
            buffer.Dispose();
            http.Abort();
            return new(null, null, ClientGone: true);
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

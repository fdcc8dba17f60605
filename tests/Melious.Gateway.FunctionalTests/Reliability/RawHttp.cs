using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>HTTP/1.1 over a bare socket: for clients that read slowly, vanish mid-upload, or reset the connection.</summary>
internal static class RawHttp
{
    public static byte[] Request(string key, string body, string path = "/v1/messages", int? declaredLength = null)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var head = $"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nanthropic-version: 2023-06-01\r\n" +
                   $"Content-Type: application/json\r\nContent-Length: {declaredLength ?? bytes.Length}\r\n\r\n";
        return [.. Encoding.ASCII.GetBytes(head), .. bytes];
    }

    public static async Task<Socket> ConnectAsync(int port, int? receiveBuffer = null, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        if (receiveBuffer is { } size)
        {
            // Before connect, so the advertised window (and window scaling) stays small.
            socket.ReceiveBufferSize = size;
        }

        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        return socket;
    }

    /// <summary>Closes with RST (linger 0): the abrupt disconnect of a killed client.</summary>
    public static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Reads until <paramref name="marker"/> has been seen <paramref name="count"/> times; returns everything read.</summary>
    public static async Task<string> ReadUntilAsync(Socket socket, string marker, int count, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(timeout);
        var text = new StringBuilder();
        var buffer = new byte[16 * 1024];
        var decoder = Encoding.UTF8.GetDecoder();
        var chars = new char[Encoding.UTF8.GetMaxCharCount(buffer.Length)];
        while (Occurrences(text, marker) < count)
        {
            var read = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            if (read == 0)
            {
                break;
            }

            var n = decoder.GetChars(buffer, 0, read, chars, 0);
            text.Append(chars, 0, n);
        }

        return text.ToString();
    }

    public static int Occurrences(StringBuilder text, string marker)
    {
        var s = text.ToString();
        var count = 0;
        for (var at = s.IndexOf(marker, StringComparison.Ordinal); at >= 0; at = s.IndexOf(marker, at + marker.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}

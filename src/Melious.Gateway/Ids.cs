using System.Security.Cryptography;

namespace Melious.Gateway;

/// <summary>Identifiers the gateway mints.</summary>
public static class Ids
{
    private const string Base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>A request id: a UUIDv7 (time-ordered) in 32 lower-case hex digits. Also the usage RowKey.</summary>
    public static string NewRequestId() => Guid.CreateVersion7().ToString("N");

    public static string NewMessageId() => WithRandomSuffix("msg_");

    public static string NewToolUseId() => WithRandomSuffix("toolu_");

    internal static string WithRandomSuffix(string prefix, int length = 24) =>
        string.Create(prefix.Length + length, prefix, static (span, p) =>
        {
            p.AsSpan().CopyTo(span);
            Span<byte> random = stackalloc byte[64];
            var tail = span[p.Length..];
            RandomNumberGenerator.Fill(random[..tail.Length]);
            for (var i = 0; i < tail.Length; i++)
            {
                tail[i] = Base62[random[i] % 62];
            }
        });
}

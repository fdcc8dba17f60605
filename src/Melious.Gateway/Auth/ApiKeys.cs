using System.Security.Cryptography;
using System.Text;

namespace Melious.Gateway.Auth;

/// <summary>Minting and hashing of gateway API keys. Keys are <c>sk-mel-</c> + 43 base62 characters (≈256 bits).</summary>
public static class ApiKeys
{
    public const string Prefix = "sk-mel-";

    public static string Generate() => Ids.WithRandomSuffix(Prefix, 43);

    /// <summary>SHA-256 of the key as 64 lower-case hex digits: the only form in which a key is stored.</summary>
    public static string Hash(string key)
    {
        Span<byte> hash = stackalloc byte[32];
        HashInto(key, hash);
        return Convert.ToHexStringLower(hash);
    }

    internal static void HashInto(ReadOnlySpan<char> key, Span<byte> destination)
    {
        var max = Encoding.UTF8.GetMaxByteCount(key.Length);
        var rented = max <= 512 ? null : System.Buffers.ArrayPool<byte>.Shared.Rent(max);
        var buffer = rented ?? stackalloc byte[512];
        var written = Encoding.UTF8.GetBytes(key, buffer);
        SHA256.HashData(buffer[..written], destination);
        if (rented is not null)
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(rented, clearArray: true);
        }
    }

    /// <summary>The public identifier of a key: the first 16 hex digits of its hash. Safe to log and to show.</summary>
    public static string KeyIdFromHash(string hashHex) => hashHex[..16];

    /// <summary>Constant-time comparison of two hex hashes.</summary>
    public static bool HashesEqual(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(a), Encoding.ASCII.GetBytes(b));
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Melious.Gateway.Protocol.Anthropic;

/// <summary>
/// A <c>tools</c> array parsed once and shared, read-only, by every request that sends exactly the same bytes.
/// Claude Code resends its whole tool set (about 25 KB of schemas) unchanged on every turn; materializing it was the
/// largest part of parsing a request, and estimating its tokens a large part of the estimate. Nothing may modify it.
/// </summary>
public sealed class SharedToolList : List<ToolDefinition>
{
    private long _estimatedTokens = -1;

    internal SharedToolList(List<ToolDefinition> tools)
        : base(tools)
    {
    }

    private object? _translation;

    /// <summary>
    /// A translation of these tools into another protocol, made once (it depends on the tools alone). Concurrent
    /// first callers may each build one; they are equal, and the last one is kept.
    /// </summary>
    internal T Translation<T>(Func<List<ToolDefinition>, T> translate)
        where T : class
    {
        if (Volatile.Read(ref _translation) is T translated)
        {
            return translated;
        }

        translated = translate(this);
        Volatile.Write(ref _translation, translated);
        return translated;
    }

    /// <summary>The token estimate of these tools, computed once (the estimate depends on the tools alone).</summary>
    internal long EstimatedTokens(Func<List<ToolDefinition>, long> estimate)
    {
        var tokens = Volatile.Read(ref _estimatedTokens);
        if (tokens < 0)
        {
            tokens = estimate(this);
            Volatile.Write(ref _estimatedTokens, tokens);
        }

        return tokens;
    }
}

/// <summary>
/// A small process-wide cache of parsed <c>tools</c> arrays, keyed by their exact bytes (compared in full, so one
/// caller's tools can never be handed to another). Bounded: at most <see cref="Capacity"/> tool sets of at least
/// <see cref="MinBytes"/> bytes; when full it starts over.
/// </summary>
internal static class ToolSetCache
{
    public const int Capacity = 32;

    /// <summary>Smaller arrays parse quickly anyway.</summary>
    public const int MinBytes = 2 * 1024;

    /// <summary>Largest array kept, so the cache stays a few MB at most.</summary>
    public const int MaxBytes = 256 * 1024;

    private static readonly Lock Gate = new();

    /// <summary>The entries; replaced under <see cref="Gate"/>, never changed, so readers need no lock.</summary>
    private static Entry[] s_entries = [];

    /// <summary>The body being parsed on this thread (set by <see cref="Endpoints.RequestParser"/> around deserialization).</summary>
    [ThreadStatic]
    private static ReadOnlyMemory<byte> t_body;

    private sealed record Entry(byte[] Raw, SharedToolList Tools);

    public static int Count => Volatile.Read(ref s_entries).Length;

    /// <summary>Makes <paramref name="body"/> visible to the <c>tools</c> converter while it is parsed on this thread.</summary>
    public static BodyScope Parsing(ReadOnlyMemory<byte> body)
    {
        t_body = body;
        return default;
    }

    internal readonly struct BodyScope : IDisposable
    {
        public void Dispose() => t_body = default;
    }

    /// <summary>The body being parsed on this thread (empty outside <see cref="Parsing"/>).</summary>
    internal static ReadOnlySpan<byte> Body => t_body.Span;

    /// <summary>
    /// Where <paramref name="token"/> (a reader's <c>ValueSpan</c>) starts in <see cref="Body"/>, found by address so
    /// that it cannot be fooled by a reader over some other buffer; -1 when it is not inside the body.
    /// </summary>
    internal static int OffsetInBody(ReadOnlySpan<byte> token)
    {
        var body = t_body.Span;
        if (body.IsEmpty || token.IsEmpty)
        {
            return -1;
        }

        var offset = (long)Unsafe.ByteOffset(ref MemoryMarshal.GetReference(body), ref MemoryMarshal.GetReference(token));
        return offset >= 0 && offset + token.Length <= body.Length ? (int)offset : -1;
    }

    /// <summary>
    /// A cached tool set whose bytes start <paramref name="rest"/> (the body from a <c>[</c> on). A cached array is
    /// complete and valid JSON, so a body that starts with its bytes holds that same array, ending where it ends.
    /// </summary>
    public static bool TryMatch(ReadOnlySpan<byte> rest, out SharedToolList? tools, out int length)
    {
        foreach (var entry in Volatile.Read(ref s_entries))
        {
            if (rest.StartsWith(entry.Raw))
            {
                tools = entry.Tools;
                length = entry.Raw.Length;
                return true;
            }
        }

        tools = null;
        length = 0;
        return false;
    }

    public static bool TryGet(ReadOnlySpan<byte> raw, out SharedToolList? tools)
    {
        tools = raw.Length is < MinBytes or > MaxBytes ? null : Find(Volatile.Read(ref s_entries), raw);
        return tools is not null;
    }

    /// <summary>Shares <paramref name="tools"/> for later requests with the same bytes, if the array is worth caching.</summary>
    public static List<ToolDefinition> Add(ReadOnlySpan<byte> raw, List<ToolDefinition> tools)
    {
        if (raw.Length < MinBytes || raw.Length > MaxBytes)
        {
            return tools;
        }

        lock (Gate)
        {
            // Another request may have added the same bytes meanwhile: keep one entry, and share it.
            var entries = s_entries;
            if (Find(entries, raw) is { } existing)
            {
                return existing;
            }

            var shared = new SharedToolList(tools);
            Entry[] kept = entries.Length >= Capacity ? [] : entries;
            Volatile.Write(ref s_entries, [.. kept, new Entry(raw.ToArray(), shared)]);
            return shared;
        }
    }

    internal static void Clear()
    {
        lock (Gate)
        {
            Volatile.Write(ref s_entries, []);
        }
    }

    private static SharedToolList? Find(Entry[] entries, ReadOnlySpan<byte> raw)
    {
        foreach (var entry in entries)
        {
            if (raw.SequenceEqual(entry.Raw))
            {
                return entry.Tools;
            }
        }

        return null;
    }
}

/// <summary>
/// Reads <c>tools</c> through <see cref="ToolSetCache"/>: an array already seen is stepped over without being
/// tokenized again and the shared list returned; a new one is parsed as usual and, when large enough, shared.
/// </summary>
internal sealed class ToolListConverter : JsonConverter<List<ToolDefinition>>
{
    public override List<ToolDefinition>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        var itemInfo = (JsonTypeInfo<ToolDefinition>)options.GetTypeInfo(typeof(ToolDefinition));
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            // Not a list: the serializer's own error, under "tools".
            return Rooted(ref reader, (JsonTypeInfo<List<ToolDefinition>>)options.GetTypeInfo(typeof(List<ToolDefinition>)), index: null);
        }

        var start = reader.HasValueSequence ? -1 : ToolSetCache.OffsetInBody(reader.ValueSpan);
        if (start >= 0 && ToolSetCache.TryMatch(ToolSetCache.Body[start..], out var known, out var length))
        {
            // Continue on a reader over the rest of the body from the array's closing bracket, in the state the
            // array started with: it reads that "]" as the end of this array, at this depth, and goes on from there.
            // The serializer only requires the converter to end on the array's EndArray token at its depth, and it
            // reads MessagesRequest in one pass because all its properties are init-only (a test keeps it so).
            var rest = new Utf8JsonReader(ToolSetCache.Body[(start + length - 1)..], reader.IsFinalBlock, reader.CurrentState);
            if (rest.Read() && rest.TokenType == JsonTokenType.EndArray && rest.CurrentDepth == reader.CurrentDepth)
            {
                reader = rest;
                return known;
            }
        }

        var items = reader;
        try
        {
            reader.Skip();
        }
        catch (JsonException)
        {
            // Malformed inside the array: parse the elements so that the error names the one at fault.
            ParseItems(ref items, itemInfo);
            throw;
        }

        var end = start < 0 || reader.HasValueSequence ? -1 : ToolSetCache.OffsetInBody(reader.ValueSpan);
        var raw = end > start ? ToolSetCache.Body[start..(end + 1)] : default;
        if (ToolSetCache.TryGet(raw, out var shared))
        {
            return shared;
        }

        return ToolSetCache.Add(raw, ParseItems(ref items, itemInfo));
    }

    public override void Write(Utf8JsonWriter writer, List<ToolDefinition> value, JsonSerializerOptions options) =>
        JsonSerializer.Serialize(writer, value, (JsonTypeInfo<List<ToolDefinition>>)options.GetTypeInfo(typeof(List<ToolDefinition>)));

    /// <summary>Reads the array's elements one by one, so errors keep their <c>tools.N…</c> path.</summary>
    private static List<ToolDefinition> ParseItems(ref Utf8JsonReader reader, JsonTypeInfo<ToolDefinition> itemInfo)
    {
        var tools = new List<ToolDefinition>();
        while (true)
        {
            try
            {
                if (!reader.Read() || reader.TokenType == JsonTokenType.EndArray)
                {
                    return tools;
                }
            }
            catch (JsonException ex)
            {
                throw Under(tools.Count, ex);
            }

            tools.Add(Rooted(ref reader, itemInfo, tools.Count)!);
        }
    }

    /// <summary>A nested deserialization reports paths from its own root ("$.name"): put them under "tools" (element <paramref name="index"/>).</summary>
    private static T? Rooted<T>(ref Utf8JsonReader reader, JsonTypeInfo<T> typeInfo, int? index)
    {
        try
        {
            return JsonSerializer.Deserialize(ref reader, typeInfo);
        }
        catch (JsonException ex)
        {
            throw Under(index, ex);
        }
    }

    private static JsonException Under(int? index, JsonException ex)
    {
        var root = index is { } i ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"$.tools[{i}]") : "$.tools";
        var message = ex.Message;
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return new JsonException(cut > 0 ? message[..cut] : message, root + (ex.Path is { Length: > 1 } path ? path[1..] : ""), ex.LineNumber, ex.BytePositionInLine, ex);
    }
}

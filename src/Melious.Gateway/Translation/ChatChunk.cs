using System.Text.Json;

namespace Melious.Gateway.Translation;

/// <summary>A slice of the chunk's bytes: the raw (still JSON-escaped) content of a string, or a raw JSON value.</summary>
internal readonly record struct Segment(int Start, int Length, bool IsRawJson = false)
{
    public static readonly Segment None = new(-1, 0);

    public bool IsPresent => Start >= 0;

    public bool IsEmpty => Length == 0;

    public ReadOnlySpan<byte> Of(ReadOnlySpan<byte> data) => Start < 0 ? default : data.Slice(Start, Length);
}

internal struct ToolCallFragment
{
    public int Index;
    public Segment Id;
    public Segment Name;
    public Segment Arguments;
}

internal struct UpstreamUsage
{
    public bool Present;
    public long PromptTokens;
    public long CompletionTokens;
    public long CachedTokens;
    public long CacheWriteTokens;
    public long ReasoningTokens;
}

/// <summary>
/// The fields of one OpenAI <c>chat.completion.chunk</c> the translator needs, located by a single forward pass of
/// <see cref="Utf8JsonReader"/> over the chunk bytes. Strings are not materialized: they stay segments of the input.
/// Tolerates the dialects in protocol.md §B.4–B.5 (reasoning vs reasoning_content, TGI tool_calls objects and
/// object arguments, vLLM stop_reason and SGLang matched_stop, flat or nested error objects).
/// </summary>
internal ref struct ChatChunk
{
    public Segment Content;
    public Segment Reasoning;
    public Segment ReasoningContent;
    public Segment FinishReason;
    public Segment StopReason;
    public UpstreamUsage Usage;
    public bool IsError;
    public Segment ErrorMessage;
    public Segment ErrorType;
    public long ErrorCode;

    /// <summary>Parses <paramref name="data"/>; fragments go to <paramref name="toolCalls"/> (cleared first).</summary>
    public static ChatChunk Parse(ReadOnlySpan<byte> data, List<ToolCallFragment> toolCalls)
    {
        toolCalls.Clear();
        var chunk = new ChatChunk
        {
            Content = Segment.None,
            Reasoning = Segment.None,
            ReasoningContent = Segment.None,
            FinishReason = Segment.None,
            StopReason = Segment.None,
            ErrorMessage = Segment.None,
            ErrorType = Segment.None,
        };
        var reader = new Utf8JsonReader(data, new JsonReaderOptions { MaxDepth = 64 });
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("chunk is not a JSON object");
        }

        var groqUsage = default(UpstreamUsage);

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                    {
                        ParseChoice(ref reader, ref chunk, toolCalls);
                    }
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ParseUsage(ref reader, ref chunk.Usage);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("x_groq"u8))
            {
                // Groq: {"x_groq":{"id":…,"usage":{…}}} on the last chunk carries the usage (a top-level usage wins).
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ParseGroq(ref reader, ref groqUsage);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                chunk.IsError = true;
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ParseError(ref reader, ref chunk);
                }
                else if (reader.TokenType == JsonTokenType.String)
                {
                    chunk.ErrorMessage = StringSegment(ref reader);
                }
                else
                {
                    chunk.IsError = reader.TokenType != JsonTokenType.Null;
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("object"u8))
            {
                // Older vLLM: {"object":"error","message":…,"type":…,"code":…}
                reader.Read();
                if (reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("error"u8))
                {
                    chunk.IsError = true;
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("type"u8))
            {
                // The flat error shape's type (a nested error object's type wins).
                reader.Read();
                if (reader.TokenType == JsonTokenType.String && !chunk.ErrorType.IsPresent)
                {
                    chunk.ErrorType = StringSegment(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("code"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.Number && chunk.ErrorCode == 0 && reader.TryGetInt64(out var code))
                {
                    chunk.ErrorCode = code;
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    chunk.ErrorMessage = StringSegment(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (!chunk.Usage.Present && groqUsage.Present)
        {
            chunk.Usage = groqUsage;
        }

        return chunk;
    }

    private static void ParseGroq(ref Utf8JsonReader reader, ref UpstreamUsage usage)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ParseUsage(ref reader, ref usage);
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static void ParseChoice(ref Utf8JsonReader reader, ref ChatChunk chunk, List<ToolCallFragment> toolCalls)
    {
        // Only choice 0 is used (the gateway never asks for n > 1). Its fields are collected, then committed.
        var index = 0L;
        var content = Segment.None;
        var reasoning = Segment.None;
        var reasoningContent = Segment.None;
        var finish = Segment.None;
        var stop = Segment.None;
        var firstFragment = toolCalls.Count;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                index = reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var i) ? i : 0;
            }
            else if (reader.ValueTextEquals("delta"u8) || reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ParseDelta(ref reader, ref content, ref reasoning, ref reasoningContent, toolCalls);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("finish_reason"u8))
            {
                reader.Read();
                finish = reader.TokenType == JsonTokenType.String ? StringSegment(ref reader) : Segment.None;
            }
            else if (reader.ValueTextEquals("stop_reason"u8) || reader.ValueTextEquals("matched_stop"u8))
            {
                // The matched stop: vLLM's stop_reason, SGLang's matched_stop. A string is the matched stop string;
                // a number is a stop token id (EOS), which is no stop sequence; null is neither.
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    stop = StringSegment(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (index != 0)
        {
            toolCalls.RemoveRange(firstFragment, toolCalls.Count - firstFragment);
            return;
        }

        chunk.Content = content;
        chunk.Reasoning = reasoning;
        chunk.ReasoningContent = reasoningContent;
        chunk.FinishReason = finish;
        chunk.StopReason = stop;
    }

    private static void ParseDelta(ref Utf8JsonReader reader, ref Segment content, ref Segment reasoning, ref Segment reasoningContent, List<ToolCallFragment> toolCalls)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("refusal"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String && (content.IsEmpty || !content.IsPresent))
                {
                    content = StringSegment(ref reader);
                }
                else if (reader.TokenType != JsonTokenType.String)
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("reasoning"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    reasoning = StringSegment(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("reasoning_content"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    reasoningContent = StringSegment(ref reader);
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartArray)
                {
                    var position = 0;
                    while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                    {
                        toolCalls.Add(ParseToolCall(ref reader, position++));
                    }
                }
                else if (reader.TokenType == JsonTokenType.StartObject)
                {
                    // TGI: a single object instead of an array.
                    toolCalls.Add(ParseToolCall(ref reader, 0));
                }
                else
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("function_call"u8))
            {
                // Legacy single function call: treat as tool call 0.
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    var fragment = new ToolCallFragment { Index = 0, Id = Segment.None, Name = Segment.None, Arguments = Segment.None };
                    ParseFunction(ref reader, ref fragment);
                    toolCalls.Add(fragment);
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static ToolCallFragment ParseToolCall(ref Utf8JsonReader reader, int position)
    {
        var fragment = new ToolCallFragment { Index = position, Id = Segment.None, Name = Segment.None, Arguments = Segment.None };
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var i))
                {
                    fragment.Index = i;
                }
            }
            else if (reader.ValueTextEquals("id"u8))
            {
                reader.Read();
                fragment.Id = reader.TokenType == JsonTokenType.String ? StringSegment(ref reader) : Segment.None;
            }
            else if (reader.ValueTextEquals("function"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    ParseFunction(ref reader, ref fragment);
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return fragment;
    }

    private static void ParseFunction(ref Utf8JsonReader reader, ref ToolCallFragment fragment)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("name"u8))
            {
                reader.Read();
                fragment.Name = reader.TokenType == JsonTokenType.String ? StringSegment(ref reader) : Segment.None;
            }
            else if (reader.ValueTextEquals("arguments"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    fragment.Arguments = StringSegment(ref reader);
                }
                else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                {
                    var start = (int)reader.TokenStartIndex;
                    reader.Skip();
                    fragment.Arguments = new Segment(start, (int)reader.BytesConsumed - start, IsRawJson: true);
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static void ParseUsage(ref Utf8JsonReader reader, ref UpstreamUsage usage)
    {
        usage.Present = true;
        var cacheHit = 0L;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("reasoning_tokens"u8))
            {
                // SGLang puts reasoning tokens at the top of usage (OpenAI: completion_tokens_details).
                var reasoning = ReadLong(ref reader);
                if (reasoning > 0)
                {
                    usage.ReasoningTokens = reasoning;
                }
            }
            else if (reader.ValueTextEquals("prompt_cache_hit_tokens"u8))
            {
                // DeepSeek's own cache counter (older responses have no prompt_tokens_details).
                cacheHit = ReadLong(ref reader);
            }
            else if (reader.ValueTextEquals("prompt_tokens"u8))
            {
                usage.PromptTokens = ReadLong(ref reader);
            }
            else if (reader.ValueTextEquals("completion_tokens"u8))
            {
                usage.CompletionTokens = ReadLong(ref reader);
            }
            else if (reader.ValueTextEquals("prompt_tokens_details"u8) || reader.ValueTextEquals("completion_tokens_details"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject)
                {
                    reader.Skip();
                    continue;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("cached_tokens"u8))
                    {
                        usage.CachedTokens = ReadLong(ref reader);
                    }
                    else if (reader.ValueTextEquals("cache_write_tokens"u8) || reader.ValueTextEquals("cache_creation_tokens"u8))
                    {
                        usage.CacheWriteTokens = ReadLong(ref reader);
                    }
                    else if (reader.ValueTextEquals("reasoning_tokens"u8))
                    {
                        usage.ReasoningTokens = ReadLong(ref reader);
                    }
                    else
                    {
                        reader.Read();
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        if (usage.CachedTokens == 0 && cacheHit > 0)
        {
            usage.CachedTokens = cacheHit;
        }
    }

    private static void ParseError(ref Utf8JsonReader reader, ref ChatChunk chunk)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                chunk.ErrorMessage = reader.TokenType == JsonTokenType.String ? StringSegment(ref reader) : chunk.ErrorMessage;
                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                chunk.ErrorType = reader.TokenType == JsonTokenType.String ? StringSegment(ref reader) : chunk.ErrorType;
                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                {
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals("code"u8))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var code))
                {
                    chunk.ErrorCode = code;
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static long ReadLong(ref Utf8JsonReader reader)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value))
        {
            return Math.Max(0, value);
        }

        if (reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out var d))
        {
            return Math.Max(0, (long)d);
        }

        reader.Skip();
        return 0;
    }

    private static Segment StringSegment(ref Utf8JsonReader reader) =>
        new((int)reader.TokenStartIndex + 1, reader.ValueSpan.Length);
}

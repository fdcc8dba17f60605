using System.Buffers;
using System.Text;
using System.Text.Json;
using Melious.Gateway.Streaming;
using Melious.Gateway.Upstream;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Translation;

/// <summary>How a translated stream ended.</summary>
internal enum StreamOutcome
{
    /// <summary>Still reading.</summary>
    Open,

    /// <summary>Content blocks are closed; the caller writes message_delta and message_stop.</summary>
    Completed,

    /// <summary>An <c>error</c> event was written; nothing may follow it.</summary>
    Failed,
}

/// <summary>
/// Turns OpenAI Chat Completions stream chunks into Anthropic message events (protocol.md §C.4), driving an
/// <see cref="IMessageEventSink"/> synchronously, one chunk at a time. Invariants it keeps for the client:
/// block indices are 0,1,2… in start order; at most one block is open; a delta only goes to the open block of its
/// kind; thinking precedes text precedes tools within a chunk; a tool call's arguments are streamed as
/// <c>input_json_delta</c> fragments while it is the only call in flight and buffered otherwise (parallel,
/// interleaved or index-reusing calls), then emitted whole; <c>message_delta</c> waits for the usage chunk that
/// follows <c>finish_reason</c>. A stream that ends without <c>[DONE]</c> or a finish reason, an error chunk (or an
/// <c>event: error</c>, JSON or plain text), or a finish reason of <c>abort</c>/<c>error</c> becomes an <c>error</c>
/// event, never a made-up <c>end_turn</c>; nothing an upstream sends makes it throw. No text block is opened for
/// whitespace alone: whitespace waits for the text it precedes and is dropped when a thinking or tool block or the
/// end comes first (see <see cref="Text"/>). Delta bytes are copied as they arrived, except that held whitespace
/// goes out with the text that follows it and a character split between two chunks is carried into the next delta
/// (see <see cref="Emit"/>).
/// </summary>
internal sealed class OpenAIStreamTranslator(IMessageEventSink sink, ToolNameMap names, IReadOnlyList<string>? stopSequences = null, UpstreamContext? upstream = null, ThinkTagMode thinkTags = ThinkTagMode.None)
{
    private static readonly byte[] Done = "[DONE]"u8.ToArray();

    /// <summary>Escapes only what JSON requires (quotes, backslashes, controls): <c>\"</c>, not <c>\u0022</c>.</summary>
    private static readonly JsonWriterOptions RawJsonWriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly byte[] Replacement = "\\ufffd"u8.ToArray();

    private readonly List<ToolCallFragment> _fragments = new(4);
    private readonly List<ToolCall> _calls = [];
    private BlockKind _open;
    private int _openIndex = -1;
    private ToolCall? _openCall;
    private int _nextIndex;
    private string? _finishReason;
    private string? _matchedStop;
    private UpstreamUsage _usage;
    private bool _sawDone;
    private ArrayBufferWriter<byte>? _scratch;
    private ArrayBufferWriter<byte>? _joined;
    private readonly byte[] _carry = new byte[6];
    private int _carryLength;

    /// <summary>Escaped whitespace that arrived while no text block was open: it waits for text (see <see cref="Text"/>).</summary>
    private ArrayBufferWriter<byte>? _heldWhitespace;

    /// <summary>Inline <c>&lt;think&gt;</c> reasoning (servers without a reasoning parser), when the model's setting asks for it.</summary>
    private readonly ThinkTagSplitter? _splitter = thinkTags == ThinkTagMode.None ? null : new ThinkTagSplitter(thinkTags);
    private readonly List<(bool Thinking, string Text)> _segments = [];

    private enum BlockKind : byte
    {
        None,
        Text,
        Thinking,
        Tool,
    }

    private sealed class ToolCall
    {
        public required int UpstreamIndex { get; init; }
        public required byte[] UpstreamId { get; init; }
        public required string Id { get; init; }
        public string? Name { get; set; }
        public ArrayBufferWriter<byte>? Buffered { get; set; }
        public int BlockIndex { get; set; } = -1;
        public bool SentArguments { get; set; }
        public bool Closed { get; set; }
    }

    public StreamOutcome Outcome { get; private set; }

    /// <summary>Upstream content, reasoning and argument fragments seen: the output-token estimate when no usage arrives.</summary>
    public int Fragments { get; private set; }

    /// <summary>True once any content, reasoning or tool call arrived (for TTFT).</summary>
    public bool HasOutput => Fragments > 0 || _calls.Count > 0;

    public bool SawToolUse => _calls.Count > 0;

    /// <summary>Fragments that arrived for a tool call whose block had already been closed (should never happen).</summary>
    public int LateFragments { get; private set; }

    /// <summary>The upstream usage (OpenAI convention), if a chunk carried it.</summary>
    public UpstreamUsage UpstreamUsage => _usage;

    public string? StopReason { get; private set; }

    public string? StopSequence { get; private set; }

    /// <summary>True once <c>[DONE]</c> arrived or the stream failed: the reader can stop.</summary>
    public bool IsFinished => _sawDone || Outcome != StreamOutcome.Open;

    /// <summary>Handles one SSE event from the upstream.</summary>
    public void OnEvent(string eventType, ReadOnlySpan<byte> data)
    {
        if (IsFinished)
        {
            return;
        }

        var trimmed = data.Trim(" \t\r\n"u8);
        if (trimmed.SequenceEqual(Done))
        {
            _sawDone = true;
            return;
        }

        if (trimmed.IsEmpty)
        {
            return;
        }

        try
        {
            Translate(eventType, trimmed);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FormatException)
        {
            // Defence in depth: a chunk the gateway cannot translate ends the stream with an error event, never
            // with an exception that leaves the client without a terminal event.
            Fail("api_error", "the gateway could not translate the upstream response");
        }
    }

    private void Translate(string eventType, ReadOnlySpan<byte> trimmed)
    {
        ChatChunk chunk;
        try
        {
            chunk = ChatChunk.Parse(trimmed, _fragments);
        }
        catch (JsonException)
        {
            switch (eventType)
            {
                case "error":
                    // Some servers send `event: error` with a plain-text reason: that text is the message.
                    Fail("api_error", FromUpstream(PlainText(trimmed)));
                    break;
                case "message":
                    // Chunks come without an event line (SseParser reports "message"): a broken one is fatal.
                    Fail("api_error", "upstream sent a chunk that is not valid JSON");
                    break;
                default:
                    // A named side event (a proxy's keep-alive, progress note) is not a chunk; ignore it.
                    break;
            }

            return;
        }

        if (chunk.IsError || eventType == "error")
        {
            var message = chunk.ErrorMessage.IsPresent ? FromUpstream(MessageAggregator.Unescape(chunk.ErrorMessage.Of(trimmed))) : "upstream reported an error mid-stream";
            var (type, text) = UpstreamErrors.ForMidStream(chunk.ErrorCode, chunk.ErrorType.IsPresent ? Encoding.UTF8.GetString(chunk.ErrorType.Of(trimmed)) : null, message, upstream);
            Fail(type, text);
            return;
        }

        // Order inside one chunk: thinking, then text, then tool calls.
        var reasoning = chunk.Reasoning.IsPresent && !chunk.Reasoning.IsEmpty ? chunk.Reasoning : chunk.ReasoningContent;
        if (reasoning.IsPresent && !reasoning.IsEmpty)
        {
            Ensure(BlockKind.Thinking);
            Emit(reasoning.Of(trimmed));
            Fragments++;
        }

        if (chunk.Content.IsPresent && !chunk.Content.IsEmpty)
        {
            if (_splitter is null)
            {
                var content = chunk.Content.Of(trimmed);
                if (_open == BlockKind.Thinking)
                {
                    // The answer after a reasoning field starts with the whitespace that followed </think> in the
                    // model's output ("\n\n" from vLLM's reasoning parsers); Anthropic text blocks, and the
                    // think-tag path (ThinkTagSplitter), start at the answer. A chunk of only whitespace waits.
                    content = content[LeadingEscapedWhitespace(content)..];
                }

                if (!content.IsEmpty)
                {
                    Text(content);
                }
            }
            else
            {
                _splitter.Push(MessageAggregator.Unescape(chunk.Content.Of(trimmed)), _segments);
                EmitSegments();
            }

            Fragments++;
        }

        if (_splitter is not null && _fragments.Count > 0)
        {
            // A tool call follows: what the splitter held back is content before it.
            _splitter.Flush(_segments);
            EmitSegments();
        }

        foreach (var fragment in _fragments)
        {
            OnToolFragment(fragment, trimmed);
        }

        if (chunk.FinishReason.IsPresent)
        {
            _finishReason = Encoding.UTF8.GetString(chunk.FinishReason.Of(trimmed));
            if (chunk.StopReason.IsPresent)
            {
                _matchedStop = MessageAggregator.Unescape(chunk.StopReason.Of(trimmed));
            }
        }

        if (chunk.Usage.Present)
        {
            _usage = chunk.Usage;
        }
    }

    private static string PlainText(ReadOnlySpan<byte> data)
    {
        const int Max = 500;
        var text = Encoding.UTF8.GetString(data.Length > Max ? data[..Max] : data).Trim();
        return text.Length == 0 ? "upstream reported an error mid-stream" : text;
    }

    /// <summary>
    /// Ends the stream: closes blocks and emits buffered tool calls, or writes the error event when the upstream
    /// did not finish properly. <paramref name="endedEarly"/> names why the reader stopped, if not by <c>[DONE]</c>.
    /// </summary>
    public StreamOutcome Finish(string? endedEarly = null)
    {
        if (Outcome != StreamOutcome.Open)
        {
            return Outcome;
        }

        if (!_sawDone && _finishReason is null)
        {
            Fail("api_error", endedEarly ?? "upstream stream ended unexpectedly");
            return Outcome;
        }

        if (_finishReason is "abort" or "error")
        {
            Fail("api_error", $"upstream stopped generating (finish_reason \"{_finishReason}\")");
            return Outcome;
        }

        if (_splitter is not null)
        {
            _splitter.Flush(_segments);
            EmitSegments();
        }

        Close();
        foreach (var call in _calls)
        {
            if (call.BlockIndex >= 0)
            {
                continue;
            }

            var index = _nextIndex++;
            call.BlockIndex = index;
            sink.ToolUseStart(index, call.Id, call.Name ?? "unknown_tool");
            if (call.Buffered is { WrittenCount: > 0 } buffered)
            {
                sink.InputJsonDelta(index, buffered.WrittenSpan);
            }
            else
            {
                sink.InputJsonDelta(index, "{}"u8);
            }

            sink.BlockStop(index);
            call.Closed = true;
        }

        (StopReason, StopSequence) = MapStop(_finishReason);
        Outcome = StreamOutcome.Completed;
        return Outcome;
    }

    /// <summary>The Anthropic error type of the error event, when the stream failed.</summary>
    public string? FailureType { get; private set; }

    /// <summary>Writes an error event for a failure the caller detected (idle timeout, broken connection).</summary>
    public void Fail(string type, string message)
    {
        if (Outcome != StreamOutcome.Open)
        {
            return;
        }

        sink.Error(type, message);
        FailureType = type;
        Outcome = StreamOutcome.Failed;
    }

    /// <summary>Upstream text on its way to the client: never the upstream's key or model name.</summary>
    private string FromUpstream(string message) =>
        upstream is null ? message : UpstreamErrors.Sanitize(message, upstream) ?? "upstream reported an error mid-stream";

    private (string Reason, string? Sequence) MapStop(string? finish)
    {
        switch (finish)
        {
            case "length" or "max_tokens":
                return ("max_tokens", null);
            case "content_filter":
                return ("refusal", null);
            case "tool_calls" or "function_call":
                return ("tool_use", null);
        }

        if (SawToolUse)
        {
            // Ollama and named tool_choice paths report "stop" after a tool call.
            return ("tool_use", null);
        }

        if (_matchedStop is not null && stopSequences is not null)
        {
            foreach (var sequence in stopSequences)
            {
                if (sequence == _matchedStop)
                {
                    return ("stop_sequence", sequence);
                }
            }
        }

        return ("end_turn", null);
    }

    private void OnToolFragment(in ToolCallFragment fragment, ReadOnlySpan<byte> data)
    {
        var call = Resolve(fragment, data);
        if (call.Name is null && fragment.Name.IsPresent && !fragment.Name.IsEmpty)
        {
            call.Name = names.ToOriginal(MessageAggregator.Unescape(fragment.Name.Of(data)));
        }

        var arguments = Escaped(fragment.Arguments, data);
        if (!arguments.IsEmpty)
        {
            Fragments++;
        }

        if (ReferenceEquals(call, _openCall))
        {
            if (!arguments.IsEmpty)
            {
                Emit(arguments);
            }

            return;
        }

        if (call.Closed)
        {
            LateFragments++;
            return;
        }

        if (call.BlockIndex < 0 && call.Name is not null && CanStream(call))
        {
            Close();
            _openIndex = _nextIndex++;
            _open = BlockKind.Tool;
            _openCall = call;
            call.BlockIndex = _openIndex;
            sink.ToolUseStart(_openIndex, call.Id, call.Name);
            if (call.Buffered is { WrittenCount: > 0 } earlier)
            {
                Emit(earlier.WrittenSpan);
                call.Buffered = null;
            }

            if (!arguments.IsEmpty)
            {
                Emit(arguments);
            }

            return;
        }

        if (!arguments.IsEmpty)
        {
            (call.Buffered ??= new ArrayBufferWriter<byte>(256)).Write(arguments);
        }
    }

    /// <summary>A call may stream when no other tool block is open and every earlier call has started.</summary>
    private bool CanStream(ToolCall call)
    {
        if (_open == BlockKind.Tool)
        {
            return false;
        }

        foreach (var other in _calls)
        {
            if (ReferenceEquals(other, call))
            {
                return true;
            }

            if (other.BlockIndex < 0)
            {
                return false;
            }
        }

        return true;
    }

    private ToolCall Resolve(in ToolCallFragment fragment, ReadOnlySpan<byte> data)
    {
        var id = fragment.Id.IsPresent ? fragment.Id.Of(data) : default;
        for (var i = _calls.Count - 1; i >= 0; i--)
        {
            var existing = _calls[i];
            if (existing.UpstreamIndex != fragment.Index)
            {
                continue;
            }

            // Same index with a different, non-empty id: the server reused the index for a new call.
            if (!id.IsEmpty && existing.UpstreamId.Length > 0 && !id.SequenceEqual(existing.UpstreamId))
            {
                break;
            }

            return existing;
        }

        var call = new ToolCall { UpstreamIndex = fragment.Index, UpstreamId = id.ToArray(), Id = Ids.NewToolUseId() };
        _calls.Add(call);
        return call;
    }

    /// <summary>The fragment as escaped JSON-string content; raw JSON (TGI object arguments) is escaped first.</summary>
    private ReadOnlySpan<byte> Escaped(Segment segment, ReadOnlySpan<byte> data)
    {
        if (!segment.IsPresent || segment.IsEmpty)
        {
            return default;
        }

        if (!segment.IsRawJson)
        {
            return segment.Of(data);
        }

        var raw = segment.Of(data);
        var scratch = _scratch ??= new ArrayBufferWriter<byte>(256);
        scratch.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(scratch, RawJsonWriterOptions))
        {
            if (System.Text.Unicode.Utf8.IsValid(raw))
            {
                writer.WriteStringValue(raw);
            }
            else
            {
                // Invalid UTF-8 would make the writer throw; clients would see U+FFFD for it anyway.
                writer.WriteStringValue(Encoding.UTF8.GetString(raw));
            }
        }

        // Strip the surrounding quotes.
        return scratch.WrittenSpan[1..^1];
    }

    /// <summary>Sends what the think-tag splitter produced, each piece to a block of its kind.</summary>
    private void EmitSegments()
    {
        foreach (var (thinking, text) in _segments)
        {
            if (thinking)
            {
                Ensure(BlockKind.Thinking);
            }

            var scratch = _scratch ??= new ArrayBufferWriter<byte>(256);
            scratch.ResetWrittenCount();
            using (var writer = new Utf8JsonWriter(scratch, RawJsonWriterOptions))
            {
                writer.WriteStringValue(text);
            }

            var escaped = scratch.WrittenSpan[1..^1];
            if (thinking)
            {
                Emit(escaped);
            }
            else
            {
                Text(escaped);
            }
        }

        _segments.Clear();
    }

    /// <summary>
    /// Sends escaped text to the open text block, or starts one, but never one whose whole text is whitespace:
    /// Claude Code sends blocks back on the next turn, and Anthropic rejects a text block without non-whitespace
    /// text (models write <c>"\n"</c> before or between tool calls). Whitespace that would start a block waits in
    /// <see cref="_heldWhitespace"/> and opens the block together with the text that follows it; when a thinking or
    /// tool block comes first, it is dropped (<see cref="Close"/>). Text inside an open block goes straight out.
    /// </summary>
    private void Text(ReadOnlySpan<byte> escaped)
    {
        if (_open == BlockKind.Text)
        {
            Emit(escaped);
            return;
        }

        if (LeadingEscapedWhitespace(escaped) == escaped.Length)
        {
            // The upstream moved on from the open block (as any content would end it), but nothing starts yet.
            Close();
            (_heldWhitespace ??= new ArrayBufferWriter<byte>(64)).Write(escaped);
            return;
        }

        Ensure(BlockKind.Text);
        if (_heldWhitespace is { WrittenCount: > 0 } held)
        {
            held.Write(escaped);
            Emit(held.WrittenSpan);
            held.ResetWrittenCount();
            return;
        }

        Emit(escaped);
    }

    private void Ensure(BlockKind kind)
    {
        if (_open == kind)
        {
            return;
        }

        Close();
        _openIndex = _nextIndex++;
        _open = kind;
        if (kind == BlockKind.Text)
        {
            sink.TextStart(_openIndex);
        }
        else
        {
            sink.ThinkingStart(_openIndex);
        }
    }

    /// <summary>
    /// Sends escaped JSON-string bytes as a delta of the open block. A character the upstream split between two
    /// chunks (a UTF-8 sequence cut short, or a <c>\uD8xx</c> escape whose low surrogate comes next) is held back
    /// and prepended to the next delta, so that every event holds whole characters (strict JSON parsers reject a
    /// lone surrogate, and a client decoder turns a cut UTF-8 sequence into U+FFFD). The common path is a check of
    /// the last bytes and one copy into the sink.
    /// </summary>
    private void Emit(ReadOnlySpan<byte> escaped)
    {
        if (_carryLength > 0)
        {
            var joined = _joined ??= new ArrayBufferWriter<byte>(256);
            joined.ResetWrittenCount();
            joined.Write(_carry.AsSpan(0, _carryLength));
            joined.Write(escaped);
            _carryLength = 0;
            escaped = joined.WrittenSpan;
        }

        var tail = IncompleteTail(escaped);
        if (tail > 0)
        {
            escaped[^tail..].CopyTo(_carry);
            _carryLength = tail;
            escaped = escaped[..^tail];
        }

        if (!escaped.IsEmpty)
        {
            Send(escaped);
        }
    }

    private void Send(ReadOnlySpan<byte> escaped)
    {
        switch (_open)
        {
            case BlockKind.Text:
                sink.TextDelta(_openIndex, escaped);
                break;
            case BlockKind.Thinking:
                sink.ThinkingDelta(_openIndex, escaped);
                break;
            case BlockKind.Tool:
                sink.InputJsonDelta(_openIndex, escaped);
                _openCall!.SentArguments = true;
                break;
        }
    }

    /// <summary>The length of the whitespace (spaces, and the escapes <c>\n</c>, <c>\r</c>, <c>\t</c>) that starts a JSON-escaped string.</summary>
    internal static int LeadingEscapedWhitespace(ReadOnlySpan<byte> escaped)
    {
        var i = 0;
        while (i < escaped.Length)
        {
            if (escaped[i] == ' ')
            {
                i++;
            }
            else if (escaped[i] == '\\' && i + 1 < escaped.Length && escaped[i + 1] is (byte)'n' or (byte)'r' or (byte)'t')
            {
                i += 2;
            }
            else
            {
                break;
            }
        }

        return i;
    }

    /// <summary>Bytes at the end of <paramref name="escaped"/> that start a character the next chunk completes.</summary>
    internal static int IncompleteTail(ReadOnlySpan<byte> escaped)
    {
        var length = escaped.Length;
        if (length == 0)
        {
            return 0;
        }

        // A high-surrogate escape \uD800–\uDBFF whose backslash is not itself escaped.
        if (length >= 6 && escaped[length - 6] == '\\' && escaped[length - 5] == 'u' && (escaped[length - 4] | 0x20) == 'd'
            && escaped[length - 3] is (byte)'8' or (byte)'9' or (byte)'a' or (byte)'b' or (byte)'A' or (byte)'B')
        {
            var backslashes = 0;
            for (var i = length - 6; i >= 0 && escaped[i] == '\\'; i--)
            {
                backslashes++;
            }

            if (backslashes % 2 == 1)
            {
                return 6;
            }
        }

        // A UTF-8 lead byte whose continuation bytes have not all arrived.
        if (escaped[length - 1] < 0x80)
        {
            return 0;
        }

        for (var back = 1; back <= 3 && back <= length; back++)
        {
            var b = escaped[length - back];
            if ((b & 0xC0) == 0x80)
            {
                continue;
            }

            // Only C2–F4 start a multi-byte sequence; anything else is invalid, not incomplete.
            var needed = b is < 0xC2 or > 0xF4 ? 0 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
            return needed > back ? back : 0;
        }

        return 0;
    }

    private void Close()
    {
        if (_carryLength > 0)
        {
            // The rest of the character never came.
            _carryLength = 0;
            Send(Replacement);
        }

        if (_open == BlockKind.None)
        {
            return;
        }

        // Whitespace held while no block was open belonged before this block, which is not text: it goes.
        _heldWhitespace?.ResetWrittenCount();
        switch (_open)
        {
            case BlockKind.Thinking:
                sink.SignatureDelta(_openIndex, ThinkingSignature.Create());
                break;
            case BlockKind.Tool when _openCall is { SentArguments: false }:
                sink.InputJsonDelta(_openIndex, "{}"u8);
                break;
        }

        sink.BlockStop(_openIndex);
        if (_openCall is not null)
        {
            _openCall.Closed = true;
            _openCall = null;
        }

        _open = BlockKind.None;
    }
}

/// <summary>
/// Opaque, non-empty signatures for thinking blocks produced from upstream reasoning. Claude Code echoes them back;
/// the request translator drops them (open models have no use for them).
/// </summary>
internal static class ThinkingSignature
{
    public const string Prefix = "melious.";

    public static string Create() => Ids.WithRandomSuffix(Prefix, 32);
}

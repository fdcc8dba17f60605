using Melious.Bench;
using System.Buffers;
using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Melious.LoadBench;

/// <summary>Receives the events an <see cref="SseReader"/> splits out of a byte stream.</summary>
public interface ISseHandler
{
    /// <summary><paramref name="name"/> is empty when the event had no <c>event:</c> line.</summary>
    void OnEvent(ReadOnlySpan<byte> name, ReadOnlySpan<byte> data, long timestamp);
}

/// <summary>
/// Splits a server-sent-event byte stream into events (blank-line terminated; <c>event:</c> and <c>data:</c>
/// fields, LF or CRLF), reusing one buffer across responses.
/// </summary>
public sealed class SseReader
{
    private byte[] _buffer = new byte[32 * 1024];
    private int _start;
    private int _end;

    public async Task<long> ReadAllAsync(Stream stream, ISseHandler handler, CancellationToken cancellationToken)
    {
        _start = _end = 0;
        long total = 0;
        while (true)
        {
            if (_end == _buffer.Length)
            {
                if (_start > 0)
                {
                    Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }
                else
                {
                    Array.Resize(ref _buffer, _buffer.Length * 2);
                }
            }

            var read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            if (read == 0)
            {
                return total;
            }

            total += read;
            _end += read;
            Dispatch(handler, Stopwatch.GetTimestamp());
        }
    }

    private void Dispatch(ISseHandler handler, long timestamp)
    {
        while (true)
        {
            var pending = _buffer.AsSpan(_start, _end - _start);
            var (length, terminator) = FindEventEnd(pending);
            if (length < 0)
            {
                break;
            }

            ParseEvent(pending[..length], handler, timestamp);
            _start += length + terminator;
        }

        if (_start == _end)
        {
            _start = _end = 0;
        }
    }

    private static (int Length, int Terminator) FindEventEnd(ReadOnlySpan<byte> span)
    {
        var offset = 0;
        while (true)
        {
            var nl = span[offset..].IndexOf((byte)'\n');
            if (nl < 0)
            {
                return (-1, 0);
            }

            var at = offset + nl;
            if (at + 1 < span.Length && span[at + 1] == (byte)'\n')
            {
                return (at, 2);
            }

            if (at + 2 < span.Length && span[at + 1] == (byte)'\r' && span[at + 2] == (byte)'\n')
            {
                return (at, 3);
            }

            offset = at + 1;
        }
    }

    private static void ParseEvent(ReadOnlySpan<byte> block, ISseHandler handler, long timestamp)
    {
        ReadOnlySpan<byte> name = default;
        ReadOnlySpan<byte> data = default;
        while (!block.IsEmpty)
        {
            var nl = block.IndexOf((byte)'\n');
            var line = nl < 0 ? block : block[..nl];
            block = nl < 0 ? default : block[(nl + 1)..];
            if (!line.IsEmpty && line[^1] == (byte)'\r')
            {
                line = line[..^1];
            }

            if (line.StartsWith("event:"u8))
            {
                name = TrimLeadingSpace(line[6..]);
            }
            else if (line.StartsWith("data:"u8))
            {
                data = TrimLeadingSpace(line[5..]);
            }
        }

        if (!name.IsEmpty || !data.IsEmpty)
        {
            handler.OnEvent(name, data, timestamp);
        }
    }

    private static ReadOnlySpan<byte> TrimLeadingSpace(ReadOnlySpan<byte> s) => !s.IsEmpty && s[0] == (byte)' ' ? s[1..] : s;
}

/// <summary>
/// Validates one Anthropic Messages SSE response against the grammar of protocol.md §A.6 and what the scripted
/// upstream sent: <c>message_start</c> first and once; an <c>event:</c> line equal to <c>data.type</c> on every event;
/// <c>content_block_start</c> indices 0,1,2… with one block open at a time; deltas only for the open block and of
/// its kind; every block stopped; <c>message_delta</c> with usage after the blocks; <c>message_stop</c> last. It also
/// checks the content: all text bytes arrived, the tool input parses as the upstream's arguments, the stop reason and
/// the usage match. Records the time of the first <c>content_block_delta</c> (TTFT).
/// </summary>
public sealed class AnthropicStreamValidator : ISseHandler
{
    private readonly ArrayBufferWriter<byte> _toolJson = new(512);
    private ScenarioPayload _expected = null!;
    private int _events;
    private bool _started;
    private bool _stopped;
    private int _nextIndex;
    private int _openIndex;
    private string? _openType;
    private int _messageDeltas;
    private long _textBytes;
    private int _toolBlocks;
    private string? _stopReason;
    private long _outputTokens = -1;
    private long _inputTokens = -1;
    private long _cacheRead = -1;

    public string? Error { get; private set; }

    public long FirstDeltaTimestamp { get; private set; }

    public void Reset(ScenarioPayload expected)
    {
        _expected = expected;
        _events = 0;
        _started = _stopped = false;
        _nextIndex = 0;
        _openIndex = -1;
        _openType = null;
        _messageDeltas = 0;
        _textBytes = 0;
        _toolBlocks = 0;
        _stopReason = null;
        _outputTokens = _inputTokens = _cacheRead = -1;
        _toolJson.ResetWrittenCount();
        Error = null;
        FirstDeltaTimestamp = 0;
    }

    private void Fail(string message) => Error ??= message;

    public void OnEvent(ReadOnlySpan<byte> name, ReadOnlySpan<byte> data, long timestamp)
    {
        _events++;
        if (Error is not null)
        {
            return;
        }

        if (name.IsEmpty)
        {
            Fail("event without an `event:` line");
            return;
        }

        if (_stopped)
        {
            Fail("event after message_stop: " + Encoding.UTF8.GetString(name));
            return;
        }

        var e = new Parsed();
        try
        {
            Parse(data, ref e);
        }
        catch (JsonException ex)
        {
            Fail($"{Encoding.UTF8.GetString(name)}: data is not JSON ({ex.Message})");
            return;
        }

        if (!name.SequenceEqual(e.Type))
        {
            Fail($"event name {Encoding.UTF8.GetString(name)} != data.type {Encoding.UTF8.GetString(e.Type)}");
            return;
        }

        if (!_started && !name.SequenceEqual("message_start"u8))
        {
            Fail("first event is " + Encoding.UTF8.GetString(name) + ", not message_start");
            return;
        }

        switch (name)
        {
            case var n when n.SequenceEqual("message_start"u8):
                if (_started)
                {
                    Fail("second message_start");
                }

                _started = true;
                break;
            case var n when n.SequenceEqual("ping"u8):
                break;
            case var n when n.SequenceEqual("content_block_start"u8):
                if (_openIndex >= 0)
                {
                    Fail($"content_block_start {e.Index} while block {_openIndex} is open");
                }
                else if (e.Index != _nextIndex)
                {
                    Fail($"content_block_start index {e.Index}, expected {_nextIndex}");
                }
                else
                {
                    _openIndex = e.Index;
                    _nextIndex++;
                    _openType = e.BlockType;
                    if (_openType == "tool_use")
                    {
                        _toolBlocks++;
                        _toolJson.ResetWrittenCount();
                    }
                }

                break;
            case var n when n.SequenceEqual("content_block_delta"u8):
                if (e.Index != _openIndex || _openIndex < 0)
                {
                    Fail($"content_block_delta for index {e.Index}, open block is {_openIndex}");
                    break;
                }

                if (FirstDeltaTimestamp == 0)
                {
                    FirstDeltaTimestamp = timestamp;
                }

                var expectedBlock = e.DeltaType switch
                {
                    "text_delta" => "text",
                    "input_json_delta" => "tool_use",
                    "thinking_delta" or "signature_delta" => "thinking",
                    _ => null,
                };
                if (expectedBlock != _openType)
                {
                    Fail($"{e.DeltaType} inside a {_openType} block");
                }

                _textBytes += e.TextBytes;
                break;
            case var n when n.SequenceEqual("content_block_stop"u8):
                if (e.Index != _openIndex || _openIndex < 0)
                {
                    Fail($"content_block_stop for index {e.Index}, open block is {_openIndex}");
                    break;
                }

                if (_openType == "tool_use")
                {
                    CheckToolInput();
                }

                _openIndex = -1;
                _openType = null;
                break;
            case var n when n.SequenceEqual("message_delta"u8):
                if (_openIndex >= 0)
                {
                    Fail("message_delta while a block is open");
                }

                if (e.OutputTokens < 0)
                {
                    Fail("message_delta without usage.output_tokens");
                }

                _messageDeltas++;
                _stopReason = e.StopReason;
                _outputTokens = e.OutputTokens;
                _inputTokens = e.InputTokens;
                _cacheRead = e.CacheRead;
                break;
            case var n when n.SequenceEqual("message_stop"u8):
                if (_messageDeltas == 0)
                {
                    Fail("message_stop without message_delta");
                }

                _stopped = true;
                break;
            case var n when n.SequenceEqual("error"u8):
                Fail("error event: " + Encoding.UTF8.GetString(data));
                break;
        }

        void CheckToolInput()
        {
            try
            {
                using var doc = JsonDocument.Parse(_toolJson.WrittenMemory);
                if (_expected.ExpectedToolArguments is { } args)
                {
                    using var want = JsonDocument.Parse(args);
                    if (!JsonElement.DeepEquals(doc.RootElement, want.RootElement))
                    {
                        Fail("tool input differs from the upstream's arguments");
                    }
                }
            }
            catch (JsonException)
            {
                Fail("tool input (concatenated partial_json) is not JSON: " + Encoding.UTF8.GetString(_toolJson.WrittenSpan));
            }
        }
    }

    /// <summary>Call at end of stream; returns the first error, or null when the response is valid.</summary>
    public string? Complete()
    {
        if (Error is not null)
        {
            return Error;
        }

        if (_events == 0)
        {
            return Error = "empty stream";
        }

        if (!_stopped)
        {
            return Error = "stream ended without message_stop";
        }

        var scenario = _expected.Scenario;
        if (_textBytes != _expected.ExpectedEscapedTextBytes)
        {
            return Error = $"text bytes {_textBytes}, upstream sent {_expected.ExpectedEscapedTextBytes}";
        }

        if (scenario.ToolCall != (_toolBlocks == 1))
        {
            return Error = $"{_toolBlocks} tool_use blocks, expected {(scenario.ToolCall ? 1 : 0)}";
        }

        var wantStop = scenario.ToolCall ? "tool_use" : "end_turn";
        if (_stopReason != wantStop)
        {
            return Error = $"stop_reason {_stopReason ?? "null"}, expected {wantStop}";
        }

        if (_outputTokens != scenario.CompletionTokens || _inputTokens + _cacheRead != Scenario.PromptTokens || _cacheRead != Scenario.CachedTokens)
        {
            return Error = $"usage in:{_inputTokens} cache_read:{_cacheRead} out:{_outputTokens}, upstream said prompt:{Scenario.PromptTokens} cached:{Scenario.CachedTokens} completion:{scenario.CompletionTokens}";
        }

        return null;
    }

    private ref struct Parsed
    {
        public ReadOnlySpan<byte> Type;
        public int Index;
        public string? BlockType;
        public string? DeltaType;
        public long TextBytes;
        public string? StopReason;
        public long OutputTokens;
        public long InputTokens;
        public long CacheRead;
    }

    private void Parse(ReadOnlySpan<byte> data, ref Parsed e)
    {
        e.Index = -1;
        e.OutputTokens = e.InputTokens = e.CacheRead = -1;
        var reader = new Utf8JsonReader(data);
        reader.Read();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new JsonException("not an object");
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                e.Type = reader.ValueSpan;
            }
            else if (reader.ValueTextEquals("index"u8))
            {
                reader.Read();
                e.Index = reader.GetInt32();
            }
            else if (reader.ValueTextEquals("content_block"u8))
            {
                reader.Read();
                e.BlockType = ReadTypeOf(ref reader);
            }
            else if (reader.ValueTextEquals("delta"u8))
            {
                reader.Read();
                ReadDelta(ref reader, ref e);
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                ReadUsage(ref reader, ref e);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static string? ReadTypeOf(ref Utf8JsonReader reader)
    {
        string? type = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                type = Intern(reader.ValueSpan);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return type;
    }

    private void ReadDelta(ref Utf8JsonReader reader, ref Parsed e)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("type"u8))
            {
                reader.Read();
                e.DeltaType = Intern(reader.ValueSpan);
            }
            else if (reader.ValueTextEquals("text"u8))
            {
                reader.Read();
                e.TextBytes += reader.ValueSpan.Length;
            }
            else if (reader.ValueTextEquals("partial_json"u8))
            {
                reader.Read();
                var span = _toolJson.GetSpan(reader.ValueSpan.Length);
                var written = reader.CopyString(span);
                _toolJson.Advance(written);
            }
            else if (reader.ValueTextEquals("stop_reason"u8))
            {
                reader.Read();
                e.StopReason = reader.TokenType == JsonTokenType.String ? Intern(reader.ValueSpan) : null;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static void ReadUsage(ref Utf8JsonReader reader, ref Parsed e)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("output_tokens"u8))
            {
                reader.Read();
                e.OutputTokens = reader.GetInt64();
            }
            else if (reader.ValueTextEquals("input_tokens"u8))
            {
                reader.Read();
                e.InputTokens = reader.GetInt64();
            }
            else if (reader.ValueTextEquals("cache_read_input_tokens"u8))
            {
                reader.Read();
                e.CacheRead = reader.GetInt64();
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static string Intern(ReadOnlySpan<byte> s) => s switch
    {
        _ when s.SequenceEqual("text"u8) => "text",
        _ when s.SequenceEqual("tool_use"u8) => "tool_use",
        _ when s.SequenceEqual("thinking"u8) => "thinking",
        _ when s.SequenceEqual("text_delta"u8) => "text_delta",
        _ when s.SequenceEqual("input_json_delta"u8) => "input_json_delta",
        _ when s.SequenceEqual("thinking_delta"u8) => "thinking_delta",
        _ when s.SequenceEqual("signature_delta"u8) => "signature_delta",
        _ when s.SequenceEqual("end_turn"u8) => "end_turn",
        _ when s.SequenceEqual("tool_use"u8) => "tool_use",
        _ => Encoding.UTF8.GetString(s),
    };
}

/// <summary>
/// Reads one direct OpenAI stream with the same per-event JSON work as the Anthropic validator (every chunk is
/// tokenized with <see cref="Utf8JsonReader"/>), so both paths cost the client about the same. TTFT is the first
/// chunk that carries content or a tool call. Checks that all content bytes, the finish reason, the usage chunk
/// and <c>[DONE]</c> arrived.
/// </summary>
public sealed class OpenAIStreamReader : ISseHandler
{
    private ScenarioPayload _expected = null!;
    private bool _done;
    private bool _usage;
    private bool _finish;
    private long _contentBytes;

    public string? Error { get; private set; }

    public long FirstContentTimestamp { get; private set; }

    public void Reset(ScenarioPayload expected)
    {
        _expected = expected;
        _done = _usage = _finish = false;
        _contentBytes = 0;
        Error = null;
        FirstContentTimestamp = 0;
    }

    public void OnEvent(ReadOnlySpan<byte> name, ReadOnlySpan<byte> data, long timestamp)
    {
        if (Error is not null)
        {
            return;
        }

        if (_done)
        {
            Error = "data after [DONE]";
            return;
        }

        if (data.SequenceEqual("[DONE]"u8))
        {
            _done = true;
            return;
        }

        try
        {
            var reader = new Utf8JsonReader(data);
            var depth = 0;
            var content = false;
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        depth++;
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        depth--;
                        break;
                    case JsonTokenType.PropertyName when reader.ValueTextEquals("content"u8):
                        reader.Read();
                        if (reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0)
                        {
                            _contentBytes += reader.ValueSpan.Length;
                            content = true;
                        }

                        break;
                    case JsonTokenType.PropertyName when reader.ValueTextEquals("tool_calls"u8):
                        content = true;
                        break;
                    case JsonTokenType.PropertyName when reader.ValueTextEquals("usage"u8):
                        _usage = true;
                        break;
                    case JsonTokenType.PropertyName when reader.ValueTextEquals("finish_reason"u8):
                        reader.Read();
                        _finish |= reader.TokenType == JsonTokenType.String;
                        break;
                }
            }

            if (content && FirstContentTimestamp == 0)
            {
                FirstContentTimestamp = timestamp;
            }
        }
        catch (JsonException ex)
        {
            Error = "chunk is not JSON: " + ex.Message;
        }
    }

    public string? Complete()
    {
        if (Error is not null)
        {
            return Error;
        }

        if (!_done)
        {
            return Error = "stream ended without [DONE]";
        }

        if (!_usage || !_finish)
        {
            return Error = "no usage chunk or finish_reason";
        }

        if (_contentBytes != _expected.ExpectedEscapedTextBytes)
        {
            return Error = $"content bytes {_contentBytes}, expected {_expected.ExpectedEscapedTextBytes}";
        }

        return null;
    }
}

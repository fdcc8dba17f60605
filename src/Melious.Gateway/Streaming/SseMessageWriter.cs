using System.Buffers;
using System.Buffers.Text;
using System.IO.Pipelines;
using System.Text.Encodings.Web;
using System.Text.Json;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Streaming;

/// <summary>
/// Writes Anthropic SSE frames (<c>event: name\ndata: json\n\n</c>; Claude Code requires the <c>event:</c> line)
/// into a <see cref="PipeWriter"/>. Frames are assembled from constant byte fragments plus the escaped payload,
/// so a text delta costs one copy and no allocation. Writing only buffers; <see cref="StreamingSession"/>
/// decides when to flush. Not thread-safe: the session serializes access.
/// </summary>
internal sealed class SseMessageWriter(PipeWriter output, string model) : IMessageEventSink
{
    /// <summary>
    /// Escapes only what JSON requires, as Anthropic does (<c>\"</c>, not <c>\u0022</c>; non-ASCII text as UTF-8).
    /// The output is an event stream, never HTML, so the HTML-safe default encoder only obscures messages.
    /// </summary>
    private static readonly JavaScriptEncoder Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    private readonly JsonEncodedText _model = JsonEncodedText.Encode(model, Encoder);
    private Utf8JsonWriter? _json;
    private Utf8JsonWriter? _relaxedJson;
    private int _webSearchRequests;

    /// <summary>Bytes written since the last flush.</summary>
    public bool HasPending { get; private set; }

    /// <summary>True once a terminal frame (message_stop or error) was written.</summary>
    public bool Terminated { get; private set; }

    /// <summary>
    /// True once message_start was written (here or, for the pass-through relay, <see cref="MarkStarted"/>): a
    /// <c>ping</c> may only follow it (protocol.md §A.6).
    /// </summary>
    public bool Started { get; private set; }

    /// <summary>Records that message_start was written to the pipe by someone else (the pass-through relay).</summary>
    public void MarkStarted() => Started = true;

    public void MessageStart(string messageId, in TokenUsage usage)
    {
        Started = true;
        Write("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\""u8);
        WriteAscii(messageId);
        Write("\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\""u8);
        Write(_model.EncodedUtf8Bytes);
        Write("\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"u8);
        WriteUsage(usage);
        Write("}}\n\n"u8);
    }

    public void TextStart(int index)
    {
        BlockStartPrefix(index);
        Write("{\"type\":\"text\",\"text\":\"\"}}\n\n"u8);
    }

    public void ThinkingStart(int index)
    {
        BlockStartPrefix(index);
        Write("{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"u8);
    }

    public void ToolUseStart(int index, string id, string name)
    {
        BlockStartPrefix(index);
        Write("{\"type\":\"tool_use\",\"id\":\""u8);
        WriteAscii(id);
        Write("\",\"name\":\""u8);
        Write(JsonEncodedText.Encode(name, Encoder).EncodedUtf8Bytes);
        Write("\",\"input\":{},\"caller\":{\"type\":\"direct\"}}}\n\n"u8);
    }

    public void ServerToolUseStart(int index, string id, string name)
    {
        BlockStartPrefix(index);
        Write("{\"type\":\"server_tool_use\",\"id\":\""u8);
        WriteAscii(id);
        Write("\",\"name\":\""u8);
        Write(JsonEncodedText.Encode(name, Encoder).EncodedUtf8Bytes);
        Write("\",\"input\":{}}}\n\n"u8);
    }

    public void WebSearchToolResult(int index, string toolUseId, IReadOnlyList<WebSearchResultItem>? results, string? errorCode)
    {
        BlockStartPrefix(index);
        var json = _relaxedJson ??= new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = true, Encoder = Encoder });
        json.Reset(output);
        json.WriteStartObject();
        json.WriteString("type"u8, "web_search_tool_result"u8);
        json.WriteString("tool_use_id"u8, toolUseId);
        json.WritePropertyName("content"u8);
        WebSearchResultItem.WriteContent(json, results, errorCode);
        json.WriteEndObject();
        json.Flush();
        Write("}\n\n"u8);
        BlockStop(index);
    }

    public void CitationDelta(int index, WebSearchCitation citation)
    {
        Write("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"u8);
        WriteInt(index);
        Write(",\"delta\":{\"type\":\"citations_delta\",\"citation\":"u8);
        var json = _relaxedJson ??= new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = true, Encoder = Encoder });
        json.Reset(output);
        citation.Write(json);
        json.Flush();
        Write("}}\n\n"u8);
    }

    public void ServerToolUse(int webSearchRequests) => _webSearchRequests = webSearchRequests;

    public void TextDelta(int index, ReadOnlySpan<byte> escaped) => Delta(index, "\"text_delta\",\"text\":\""u8, escaped);

    public void ThinkingDelta(int index, ReadOnlySpan<byte> escaped) => Delta(index, "\"thinking_delta\",\"thinking\":\""u8, escaped);

    public void InputJsonDelta(int index, ReadOnlySpan<byte> escaped) => Delta(index, "\"input_json_delta\",\"partial_json\":\""u8, escaped);

    public void SignatureDelta(int index, string signature) =>
        Delta(index, "\"signature_delta\",\"signature\":\""u8, JsonEncodedText.Encode(signature, Encoder).EncodedUtf8Bytes);

    public void BlockStop(int index)
    {
        Write("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"u8);
        WriteInt(index);
        Write("}\n\n"u8);
    }

    /// <summary>Written on the final <c>message_delta</c> when set (the context edits the gateway applied).</summary>
    public ContextManagementResponse? ContextManagement { get; set; }

    public void MessageDelta(string? stopReason, string? stopSequence, in TokenUsage usage, BillingCost? cost, EnvironmentImpact? impact)
    {
        Write("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"u8);
        WriteNullableString(stopReason);
        Write(",\"stop_sequence\":"u8);
        WriteNullableString(stopSequence);
        Write("},\"usage\":"u8);
        WriteUsage(usage);
        if (cost is not null)
        {
            Write(",\"billing_cost\":"u8);
            WriteJson(cost, AnthropicJsonContext.Default.BillingCost);
        }

        if (impact is not null)
        {
            Write(",\"environment_impact\":"u8);
            WriteJson(impact, AnthropicJsonContext.Default.EnvironmentImpact);
        }

        if (ContextManagement is not null)
        {
            Write(",\"context_management\":"u8);
            WriteJson(ContextManagement, AnthropicJsonContext.Default.ContextManagementResponse);
        }

        Write("}\n\n"u8);
    }

    public void MessageStop()
    {
        Write("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"u8);
        Terminated = true;
    }

    public void Error(string type, string message)
    {
        Write("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\""u8);
        Write(JsonEncodedText.Encode(type, Encoder).EncodedUtf8Bytes);
        Write("\",\"message\":\""u8);
        Write(JsonEncodedText.Encode(message, Encoder).EncodedUtf8Bytes);
        Write("\"}}\n\n"u8);
        Terminated = true;
    }

    public void Ping() => Write("event: ping\ndata: {\"type\":\"ping\"}\n\n"u8);

    /// <summary>Records that bytes were written to the pipe by someone else (the pass-through relay).</summary>
    public void MarkPending() => HasPending = true;

    /// <summary>Marks the buffered bytes as handed to the transport.</summary>
    public void MarkFlushed() => HasPending = false;

    private void Delta(int index, ReadOnlySpan<byte> kind, ReadOnlySpan<byte> escaped)
    {
        Write("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"u8);
        WriteInt(index);
        Write(",\"delta\":{\"type\":"u8);
        Write(kind);
        Write(escaped);
        Write("\"}}\n\n"u8);
    }

    private void BlockStartPrefix(int index)
    {
        Write("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":"u8);
        WriteInt(index);
        Write(",\"content_block\":"u8);
    }

    private void WriteUsage(in TokenUsage usage)
    {
        Write("{\"input_tokens\":"u8);
        WriteLong(usage.Input);
        Write(",\"cache_creation_input_tokens\":"u8);
        WriteLong(usage.CacheWrite);
        Write(",\"cache_read_input_tokens\":"u8);
        WriteLong(usage.CacheRead);
        Write(",\"output_tokens\":"u8);
        WriteLong(usage.Output);
        if (usage.Reasoning > 0)
        {
            Write(",\"output_tokens_details\":{\"thinking_tokens\":"u8);
            WriteLong(usage.Reasoning);
            Write("}"u8);
        }

        if (_webSearchRequests > 0)
        {
            Write(",\"server_tool_use\":{\"web_search_requests\":"u8);
            WriteLong(_webSearchRequests);
            Write("}"u8);
        }

        Write("}"u8);
    }

    private void WriteJson<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info)
    {
        var json = _json ??= new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = true });
        json.Reset(output);
        JsonSerializer.Serialize(json, value, info);
        json.Flush();
        HasPending = true;
    }

    private void WriteNullableString(string? value)
    {
        if (value is null)
        {
            Write("null"u8);
            return;
        }

        Write("\""u8);
        Write(JsonEncodedText.Encode(value, Encoder).EncodedUtf8Bytes);
        Write("\""u8);
    }

    private void Write(ReadOnlySpan<byte> bytes)
    {
        output.Write(bytes);
        HasPending = true;
    }

    /// <summary>Ids the gateway minted are ASCII and need no escaping.</summary>
    private void WriteAscii(string value)
    {
        var span = output.GetSpan(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            span[i] = (byte)value[i];
        }

        output.Advance(value.Length);
        HasPending = true;
    }

    private void WriteInt(int value) => WriteLong(value);

    private void WriteLong(long value)
    {
        var span = output.GetSpan(20);
        Utf8Formatter.TryFormat(value, span, out var written);
        output.Advance(written);
    }
}

using System.Buffers;
using System.Text.Json;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Streaming;

/// <summary>
/// Collects the event calls of one response into a non-streaming <see cref="Message"/> (the same translator drives
/// both paths, so a non-streaming response has exactly the blocks the stream would have had). Tool input that is
/// not a valid JSON object becomes <c>{}</c>: the <c>input</c> of a tool_use is always an object, and a truncated
/// input is never guessed at.
/// </summary>
internal sealed class MessageAggregator : IMessageEventSink
{
    private readonly List<Block> _blocks = [];

    private sealed class Block(string kind)
    {
        public string Kind { get; } = kind;
        public ArrayBufferWriter<byte> Escaped { get; } = new(256);
        public string? Id { get; init; }
        public string? Name { get; init; }
        public string Signature { get; set; } = "";
        public JsonElement Content { get; init; }
        public List<WebSearchCitation>? Citations { get; set; }
    }

    private int _webSearchRequests;

    public string? MessageId { get; private set; }

    public string? StopReason { get; private set; }

    public string? StopSequence { get; private set; }

    public TokenUsage Usage { get; private set; }

    public BillingCost? Cost { get; private set; }

    public EnvironmentImpact? Impact { get; private set; }

    /// <summary>Put on the built message when set (the context edits the gateway applied).</summary>
    public ContextManagementResponse? ContextManagement { get; set; }

    public (string Type, string Message)? Failure { get; private set; }

    public bool Completed { get; private set; }

    /// <summary>Number of tool inputs that had to be repaired or replaced.</summary>
    public int InvalidToolInputs { get; private set; }

    public void MessageStart(string messageId, in TokenUsage usage)
    {
        MessageId = messageId;
        Usage = usage;
    }

    public void TextStart(int index) => _blocks.Add(new Block("text"));

    public void ThinkingStart(int index) => _blocks.Add(new Block("thinking"));

    public void ToolUseStart(int index, string id, string name) => _blocks.Add(new Block("tool_use") { Id = id, Name = name });

    public void ServerToolUseStart(int index, string id, string name) => _blocks.Add(new Block("server_tool_use") { Id = id, Name = name });

    public void WebSearchToolResult(int index, string toolUseId, IReadOnlyList<WebSearchResultItem>? results, string? errorCode)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            WebSearchResultItem.WriteContent(writer, results, errorCode);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        _blocks.Add(new Block("web_search_tool_result") { Id = toolUseId, Content = document.RootElement.Clone() });
    }

    public void CitationDelta(int index, WebSearchCitation citation) => (_blocks[index].Citations ??= []).Add(citation);

    public void ServerToolUse(int webSearchRequests) => _webSearchRequests = webSearchRequests;

    public void TextDelta(int index, ReadOnlySpan<byte> escaped) => _blocks[index].Escaped.Write(escaped);

    public void ThinkingDelta(int index, ReadOnlySpan<byte> escaped) => _blocks[index].Escaped.Write(escaped);

    public void InputJsonDelta(int index, ReadOnlySpan<byte> escaped) => _blocks[index].Escaped.Write(escaped);

    public void SignatureDelta(int index, string signature) => _blocks[index].Signature += signature;

    public void BlockStop(int index)
    {
    }

    public void MessageDelta(string? stopReason, string? stopSequence, in TokenUsage usage, BillingCost? cost, EnvironmentImpact? impact)
    {
        StopReason = stopReason;
        StopSequence = stopSequence;
        Usage = usage;
        Cost = cost;
        Impact = impact;
    }

    public void MessageStop() => Completed = true;

    public void Error(string type, string message) => Failure = (type, message);

    public Message Build(string model)
    {
        var content = new List<ResponseContentBlock>(_blocks.Count);
        foreach (var block in _blocks)
        {
            var text = Unescape(block.Escaped.WrittenSpan);
            switch (block.Kind)
            {
                case "text" when text.Length > 0:
                    content.Add(new ResponseTextBlock(text) { Citations = block.Citations });
                    break;
                case "thinking":
                    content.Add(new ResponseThinkingBlock(text, block.Signature));
                    break;
                case "tool_use":
                    content.Add(new ResponseToolUseBlock(block.Id!, block.Name!, ParseToolInput(text)));
                    break;
                case "server_tool_use":
                    content.Add(new ResponseServerToolUseBlock(block.Id!, block.Name!, ParseToolInput(text)));
                    break;
                case "web_search_tool_result":
                    content.Add(new ResponseWebSearchToolResultBlock(block.Id!, block.Content));
                    break;
            }
        }

        return new Message
        {
            Id = MessageId ?? Ids.NewMessageId(),
            Model = model,
            Content = content,
            StopReason = StopReason,
            StopSequence = StopSequence,
            Usage = new Protocol.Anthropic.Usage
            {
                InputTokens = Usage.Input,
                CacheCreationInputTokens = Usage.CacheWrite,
                CacheReadInputTokens = Usage.CacheRead,
                OutputTokens = Usage.Output,
                OutputTokensDetails = Usage.Reasoning > 0 ? new OutputTokensDetails(Usage.Reasoning) : null,
                ServerToolUse = _webSearchRequests > 0 ? new ServerToolUsage(_webSearchRequests) : null,
            },
            BillingCost = Cost,
            EnvironmentImpact = Impact,
            ContextManagement = ContextManagement,
        };
    }

    /// <summary>
    /// Decodes the content of a JSON string (escapes and all) into .NET text. Never throws: upstream text is
    /// copied to the stream unvalidated, so a lone surrogate escape (<c>\ud83d</c> without its pair) or invalid
    /// UTF-8 must not fail the response; each such unit becomes U+FFFD, as a lenient client decoder would show it.
    /// </summary>
    internal static string Unescape(ReadOnlySpan<byte> escaped)
    {
        if (escaped.IsEmpty)
        {
            return "";
        }

        var quoted = ArrayPool<byte>.Shared.Rent(escaped.Length + 2);
        try
        {
            quoted[0] = (byte)'"';
            escaped.CopyTo(quoted.AsSpan(1));
            quoted[escaped.Length + 1] = (byte)'"';
            var reader = new Utf8JsonReader(quoted.AsSpan(0, escaped.Length + 2));
            reader.Read();
            return reader.GetString() ?? "";
        }
        catch (Exception ex) when (ex is InvalidOperationException or JsonException)
        {
            return UnescapeLenient(escaped);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(quoted);
        }
    }

    /// <summary>The slow path of <see cref="Unescape"/>: replaces unpaired surrogates and invalid UTF-8 by U+FFFD.</summary>
    private static string UnescapeLenient(ReadOnlySpan<byte> escaped)
    {
        var text = new System.Text.StringBuilder(escaped.Length);
        while (!escaped.IsEmpty)
        {
            var backslash = escaped.IndexOf((byte)'\\');
            var run = backslash < 0 ? escaped : escaped[..backslash];
            if (!run.IsEmpty)
            {
                // Encoding.UTF8 replaces invalid sequences with U+FFFD.
                text.Append(System.Text.Encoding.UTF8.GetString(run));
            }

            if (backslash < 0)
            {
                break;
            }

            escaped = escaped[backslash..];
            if (escaped.Length < 2)
            {
                text.Append('\uFFFD');
                break;
            }

            switch (escaped[1])
            {
                case (byte)'u' when escaped.Length >= 6 && TryHex(escaped.Slice(2, 4), out var unit):
                    escaped = escaped[6..];
                    if (char.IsHighSurrogate(unit) && escaped.Length >= 6 && escaped[0] == '\\' && escaped[1] == 'u' && TryHex(escaped.Slice(2, 4), out var low) && char.IsLowSurrogate(low))
                    {
                        text.Append(unit).Append(low);
                        escaped = escaped[6..];
                    }
                    else
                    {
                        text.Append(char.IsSurrogate(unit) ? '\uFFFD' : unit);
                    }

                    continue;
                case (byte)'n':
                    text.Append('\n');
                    break;
                case (byte)'t':
                    text.Append('\t');
                    break;
                case (byte)'r':
                    text.Append('\r');
                    break;
                case (byte)'b':
                    text.Append('\b');
                    break;
                case (byte)'f':
                    text.Append('\f');
                    break;
                case (byte)'"' or (byte)'\\' or (byte)'/':
                    text.Append((char)escaped[1]);
                    break;
                default:
                    text.Append('\uFFFD');
                    break;
            }

            escaped = escaped[2..];
        }

        return text.ToString();
    }

    private static bool TryHex(ReadOnlySpan<byte> hex, out char value)
    {
        var ok = System.Buffers.Text.Utf8Parser.TryParse(hex, out ushort number, out var consumed, 'X') && consumed == 4;
        value = (char)number;
        return ok;
    }

    private JsonElement ParseToolInput(string text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return EmptyObject();
        }

        if (TryParseObject(text, out var element))
        {
            return element;
        }

        // Never "repair" a cut-off input: closing a truncated string would hand the client a shortened command or
        // file content (a Write of half a file). An empty input fails the client's validation visibly instead.
        InvalidToolInputs++;
        return EmptyObject();
    }

    private static bool TryParseObject(string text, out JsonElement element)
    {
        try
        {
            using var document = JsonDocument.Parse(text);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                element = document.RootElement.Clone();
                return true;
            }
        }
        catch (JsonException)
        {
        }

        element = default;
        return false;
    }

    private static JsonElement EmptyObject()
    {
        using var document = JsonDocument.Parse("{}");
        return document.RootElement.Clone();
    }
}

using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Streaming;

/// <summary>
/// The Anthropic message event grammar as calls. The translators drive a sink; <see cref="SseMessageWriter"/>
/// turns the calls into <c>text/event-stream</c> bytes and <see cref="MessageAggregator"/> into a non-streaming
/// <see cref="Message"/>. Delta text is passed as the JSON-escaped UTF-8 content of a JSON string (no quotes),
/// exactly as it arrived from upstream, so text is copied, never decoded and re-encoded, on the stream path.
/// </summary>
internal interface IMessageEventSink
{
    void MessageStart(string messageId, in TokenUsage usage);

    void TextStart(int index);

    void ThinkingStart(int index);

    void ToolUseStart(int index, string id, string name);

    void TextDelta(int index, ReadOnlySpan<byte> escaped);

    void ThinkingDelta(int index, ReadOnlySpan<byte> escaped);

    void InputJsonDelta(int index, ReadOnlySpan<byte> escaped);

    void SignatureDelta(int index, string signature);

    void BlockStop(int index);

    /// <summary>Starts a <c>server_tool_use</c> block (a search the gateway runs); its input follows as input_json_delta.</summary>
    void ServerToolUseStart(int index, string id, string name);

    /// <summary>A whole <c>web_search_tool_result</c> block (start and stop): the results, or an error code.</summary>
    void WebSearchToolResult(int index, string toolUseId, IReadOnlyList<WebSearchResultItem>? results, string? errorCode);

    /// <summary>A <c>citations_delta</c> on the open text block.</summary>
    void CitationDelta(int index, WebSearchCitation citation);

    /// <summary>Server tool use of this response, reported in the next <see cref="MessageDelta"/>'s usage.</summary>
    void ServerToolUse(int webSearchRequests);

    void MessageDelta(string? stopReason, string? stopSequence, in TokenUsage usage, BillingCost? cost, EnvironmentImpact? impact);

    void MessageStop();

    void Error(string type, string message);
}

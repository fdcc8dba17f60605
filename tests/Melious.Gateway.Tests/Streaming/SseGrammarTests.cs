using Melious.Gateway.Tests.Support;
using Xunit.Sdk;

namespace Melious.Gateway.Tests.Streaming;

/// <summary>The grammar validator used on every golden stream must itself reject each violation it claims to catch.</summary>
public sealed class SseGrammarTests
{
    private const string Start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_013Zva2CMHLNnXjNJJKqJ2EF\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":1,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0}}}\n\n";
    private const string TextStart0 = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    private const string TextDelta0 = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n";
    private const string Stop0 = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
    private const string Delta = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":1,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}\n\n";
    private const string MessageStop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    private const string Error = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}\n\n";
    private const string Ping = "event: ping\ndata: {\"type\":\"ping\"}\n\n";

    private static string Tool(int index, string id = "toolu_01NRLabsLyVHZPKxbKvkfSMn") =>
        $"event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":{index},\"content_block\":{{\"type\":\"tool_use\",\"id\":\"{id}\",\"name\":\"T\",\"input\":{{}},\"caller\":{{\"type\":\"direct\"}}}}}}\n\n";

    private static string Json(int index, string partial) =>
        $"event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":{index},\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":\"{partial}\"}}}}\n\n";

    private static string Stop(int index) => $"event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":{index}}}\n\n";

    [Fact]
    public void Accepts_a_valid_stream_and_an_error_terminated_one()
    {
        var parsed = SseGrammar.Validate(Start + Ping + TextStart0 + TextDelta0 + Stop0 + Tool(1) + Json(1, "{}") + Stop(1) + Delta + MessageStop);
        Assert.True(parsed.Completed);
        Assert.Equal(2, parsed.Blocks.Count);
        Assert.NotNull(SseGrammar.Validate(Start + TextStart0 + TextDelta0 + Error).Error);
    }

    public static TheoryData<string, string> Violations { get; } = new()
    {
        { "no message_start first", TextStart0 + TextDelta0 + Stop0 + Delta + MessageStop },
        { "message_start twice", Start + Start + Delta + MessageStop },
        { "index not contiguous", Start + Tool(1) + Json(1, "{}") + Stop(1) + Delta + MessageStop },
        { "two open blocks", Start + TextStart0 + TextDelta0 + Tool(1) + Json(1, "{}") + Stop(1) + Stop0 + Delta + MessageStop },
        { "delta for an unopened block", Start + TextStart0 + TextDelta0 + Stop0 + Json(1, "{}") + Delta + MessageStop },
        { "delta after its block stopped", Start + TextStart0 + TextDelta0 + Stop0 + TextDelta0 + Delta + MessageStop },
        { "delta of the wrong type", Start + Tool(0) + TextDelta0 + Stop0 + Delta + MessageStop },
        { "block never stopped", Start + TextStart0 + TextDelta0 + Delta + MessageStop },
        { "no message_stop", Start + TextStart0 + TextDelta0 + Stop0 + Delta },
        { "message_stop without message_delta", Start + MessageStop },
        { "event after message_stop", Start + Delta + MessageStop + Ping },
        { "event after error", Start + Error + Delta + MessageStop },
        { "message_stop after error", Start + Error + MessageStop },
        { "empty text block", Start + TextStart0 + Stop0 + Delta + MessageStop },
        { "tool input only in content_block_start", Start + Tool(0) + Stop(0) + Delta + MessageStop },
        { "tool input not JSON", Start + Tool(0) + Json(0, "{") + Stop(0) + Delta + MessageStop },
        { "tool input not an object", Start + Tool(0) + Json(0, "[1]") + Stop(0) + Delta + MessageStop },
        { "duplicate tool id", Start + Tool(0) + Json(0, "{}") + Stop(0) + Tool(1) + Json(1, "{}") + Stop(1) + Delta + MessageStop },
        { "invalid tool id", Start + Tool(0, "call:1") + Json(0, "{}") + Stop(0) + Delta + MessageStop },
        { "data-only frame", Start + "data: {\"type\":\"message_stop\"}\n\n" },
        { "event name differs from data.type", Start + "event: message_stop\ndata: {\"type\":\"message_delta\"}\n\n" },
        { "unterminated last frame", Start + Delta + MessageStop[..^1] },
        { "CRLF framing", Start.Replace("\n", "\r\n", StringComparison.Ordinal) + Delta + MessageStop },
        { "thinking without signature", Start + "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"t\"}}\n\n" + Stop0 + Delta + MessageStop },
        { "unknown stop_reason", Start + Delta.Replace("end_turn", "error", StringComparison.Ordinal) + MessageStop },
    };

    [Theory]
    [MemberData(nameof(Violations))]
    public void Rejects(string violation, string sse)
    {
        Assert.NotNull(violation);
        Assert.ThrowsAny<XunitException>(() => SseGrammar.Validate(sse));
    }
}

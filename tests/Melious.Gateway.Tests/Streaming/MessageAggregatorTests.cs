using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Streaming;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Tests.Streaming;

/// <summary>The non-streaming <see cref="Message"/> (protocol.md §A.5, §C.3, §D.4 case 40).</summary>
public sealed class MessageAggregatorTests
{
    [Fact]
    public void Builds_the_message_with_blocks_in_order_usage_and_null_stop_sequence()
    {
        var sink = new MessageAggregator();
        sink.MessageStart("msg_013Zva2CMHLNnXjNJJKqJ2EF", new TokenUsage(5000, 0, 0, 0, 0));
        sink.ThinkingStart(0);
        sink.ThinkingDelta(0, "a \\\"b\\\""u8);
        sink.SignatureDelta(0, "sig");
        sink.BlockStop(0);
        sink.TextStart(1);
        sink.TextDelta(1, "caf\\u00e9 "u8);
        sink.TextDelta(1, "\\ud83d\\ude00"u8);
        sink.BlockStop(1);
        sink.ToolUseStart(2, "toolu_01", "Read");
        sink.InputJsonDelta(2, "{\\\"file_path\\\":"u8);
        sink.InputJsonDelta(2, "\\\"x\\\"}"u8);
        sink.BlockStop(2);
        sink.MessageDelta("tool_use", null, new TokenUsage(904, 4096, 0, 60, 6), null, null);
        sink.MessageStop();

        var json = JsonSerializer.Serialize(sink.Build("claude-sonnet-4-5-20250929"), AnthropicJsonContext.Default.Message);
        Assert.Equal(
            """{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"thinking","thinking":"a \u0022b\u0022","signature":"sig"},{"type":"text","text":"caf\u00E9 \uD83D\uDE00"},{"type":"tool_use","id":"toolu_01","name":"Read","input":{"file_path":"x"},"caller":{"type":"direct"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":904,"cache_creation_input_tokens":0,"cache_read_input_tokens":4096,"output_tokens":60,"output_tokens_details":{"thinking_tokens":6}}}""",
            json);
        Assert.True(sink.Completed);
        Assert.Equal(0, sink.InvalidToolInputs);
    }

    [Theory]
    [InlineData("", "{}", 0)]
    [InlineData("{}", "{}", 0)]
    [InlineData("{\\\"command\\\": \\\"rm -rf /tmp/x", "{}", 1)]       // truncated: never guessed at
    [InlineData("{\\\"a\\\": [1, 2", "{}", 1)]
    [InlineData("{\\\"a\\\": {\\\"b\\\": 1},", "{}", 1)]
    [InlineData("file_path=/etc/hosts", "{}", 1)]                                             // not JSON: {}
    [InlineData("[1,2]", "{}", 1)]                                                            // not an object: {}
    [InlineData("\\\"text\\\"", "{}", 1)]
    public void Tool_input_is_always_an_object(string escapedArguments, string expectedInput, int invalid)
    {
        var sink = new MessageAggregator();
        sink.ToolUseStart(0, "toolu_01", "Bash");
        sink.InputJsonDelta(0, Encoding.UTF8.GetBytes(escapedArguments));
        sink.BlockStop(0);
        var block = Assert.IsType<ResponseToolUseBlock>(Assert.Single(sink.Build("m").Content));
        Assert.Equal(JsonValueKind.Object, block.Input.ValueKind);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expectedInput), JsonNode.Parse(block.Input.GetRawText())), block.Input.GetRawText());
        Assert.Equal(invalid, sink.InvalidToolInputs);
    }

    [Fact]
    public void Empty_text_blocks_are_not_returned()
    {
        var sink = new MessageAggregator();
        sink.TextStart(0);
        sink.BlockStop(0);
        sink.ToolUseStart(1, "toolu_01", "T");
        sink.InputJsonDelta(1, "{}"u8);
        sink.BlockStop(1);
        Assert.IsType<ResponseToolUseBlock>(Assert.Single(sink.Build("m").Content));
    }

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("a\\\"b\\\\c\\/d\\n\\t\\r\\b\\f", "a\"b\\c/d\n\t\r\b\f")]
    [InlineData("\\u00e9\\u00E9", "éé")]
    [InlineData("\\ud83d\\ude00", "😀")]
    [InlineData("x\\ud83dy", "x\uFFFDy")]          // lone high surrogate
    [InlineData("x\\ude00", "x\uFFFD")]            // lone low surrogate
    [InlineData("\\ud83d\\u0041", "\uFFFDA")]
    [InlineData("x\\ud83d", "x\uFFFD")]
    public void Unescape_decodes_json_string_content_and_never_throws(string escaped, string expected)
    {
        Assert.Equal(expected, MessageAggregator.Unescape(Encoding.UTF8.GetBytes(escaped)));
    }

    [Fact]
    public void Unescape_replaces_invalid_utf8()
    {
        byte[] bytes = [(byte)'a', 0xFF, (byte)'b', 0xE2, 0x82];
        Assert.Equal("a\uFFFDb\uFFFD", MessageAggregator.Unescape(bytes));
    }

    [Fact]
    public void Records_a_failure_without_completing()
    {
        var sink = new MessageAggregator();
        sink.MessageStart("msg_x", default);
        sink.Error("api_error", "boom");
        Assert.False(sink.Completed);
        Assert.Equal(("api_error", "boom"), sink.Failure);
    }
}

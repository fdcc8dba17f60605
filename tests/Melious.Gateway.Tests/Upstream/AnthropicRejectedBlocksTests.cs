using System.Text;
using System.Text.Json.Nodes;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Tests.Support;

namespace Melious.Gateway.Tests.Upstream;

/// <summary>
/// Blocks Claude Code echoes back that an Anthropic upstream rejects are removed on the pass-through path; any other
/// request is forwarded byte for byte (<see cref="AnthropicForwarder.WithoutRejectedBlocks"/> returns null).
/// </summary>
public sealed class AnthropicRejectedBlocksTests
{
    [Theory]
    [InlineData("""{"type":"text","text":""}""", true)]
    [InlineData("""{"type":"text","text":"\n\n"}""", true)]
    [InlineData("""{"type":"text" , "text" : " \r\n\t\f"}""", true)]
    [InlineData("""{"type":"text","text":"\u00a0\u2028"}""", true)]    // escaped Unicode whitespace
    [InlineData("{\"type\":\"text\",\"text\":\"\u3000\u00a0\"}", true)]  // raw UTF-8 Unicode whitespace
    [InlineData("""{"type":"text","text":"a"}""", false)]
    [InlineData("""{"type":"text","text":"\n\nDone."}""", false)]
    [InlineData("""{"type":"text","text":"\u0041"}""", false)]
    [InlineData("""{"type":"text","text":"\\n"}""", false)]              // an escaped backslash, then the letter n
    [InlineData("""{"type":"text","text":"é"}""", false)]
    [InlineData("""{"type":"text"}""", false)]                             // "text" only as a value
    [InlineData("""{"content":"{\"text\":\"\"}"}""", false)]               // inside a string: escaped quotes
    [InlineData("""{"text":""", false)]                                    // cut short
    [InlineData("""{"text":" """, false)]
    public void Scan_finds_text_members_whose_value_is_blank(string json, bool expected) =>
        Assert.Equal(expected, AnthropicForwarder.MayHaveBlankText(Encoding.UTF8.GetBytes(json)));

    [Theory]
    [InlineData("request/x_claude_code_2_1_197.anthropic.json")]
    [InlineData("request/06_tool_results_ordering.anthropic.json")]
    [InlineData("request/09_text_after_tool_use.anthropic.json")]
    public void A_claude_code_request_without_blank_text_takes_the_fast_path(string file)
    {
        var body = Golden.ReadBytes(file);
        Assert.False(AnthropicForwarder.MayHaveBlankText(body));
        Assert.Null(AnthropicForwarder.WithoutRejectedBlocks(body));
    }

    [Fact]
    public void Blank_assistant_text_blocks_are_dropped_and_user_content_and_tool_input_are_kept()
    {
        var body = Golden.ReadBytes("request/10_empty_text_blocks.anthropic.json");
        var rewritten = JsonNode.Parse(AnthropicForwarder.WithoutRejectedBlocks(body))!;
        var messages = rewritten["messages"]!.AsArray();

        // Two assistant messages held only blank text: gone. The third keeps its tool call (the gateway's thinking goes too).
        Assert.Equal(["user", "user", "user", "assistant", "user"], messages.Select(m => (string?)m!["role"]));
        Assert.Equal("""[{"type":"tool_use","id":"toolu_01E","name":"Bash","input":{"command":"true"}}]""", messages[3]!["content"]!.ToJsonString());
        Assert.Equal("""[{"type":"text","text":"first"},{"type":"text","text":""}]""", messages[0]!["content"]!.ToJsonString());
        Assert.Equal("""[{"type":"text","text":"\n"},{"type":"text","text":"third"}]""", messages[2]!["content"]!.ToJsonString());
    }

    [Fact]
    public void A_claude_code_request_with_an_echoed_empty_text_block_loses_only_that_block()
    {
        var body = Golden.ReadBytes("request/x_claude_code_2_1_330.anthropic.json");
        Assert.True(AnthropicForwarder.MayHaveBlankText(body));
        var original = JsonNode.Parse(body)!;
        var rewritten = JsonNode.Parse(AnthropicForwarder.WithoutRejectedBlocks(body))!;
        var assistant = rewritten["messages"]![2]!["content"]!.AsArray();
        Assert.Equal(["thinking", "tool_use"], assistant.Select(b => (string?)b!["type"]));

        // Put back what was removed (the empty text block; the gateway-signed thinking block): the rest is unchanged.
        assistant.Insert(1, JsonNode.Parse("""{"type":"text","text":""}"""));
        rewritten["messages"]![4]!["content"]!.AsArray().Insert(0, original["messages"]![4]!["content"]![0]!.DeepClone());
        Assert.True(JsonNode.DeepEquals(original, rewritten));
    }

    [Fact]
    public void A_blank_string_that_is_no_assistant_text_block_leaves_the_body_as_sent()
    {
        const string Body = """
            {"model":"m","messages":[
              {"role":"user","content":[{"type":"text","text":" "},{"type":"tool_result","tool_use_id":"t0","content":[{"type":"text","text":""}]}]},
              {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Note","input":{"text":""}},{"type":"text","text":"ok"}]}
            ]}
            """;
        var bytes = Encoding.UTF8.GetBytes(Body);
        Assert.True(AnthropicForwarder.MayHaveBlankText(bytes));
        Assert.Null(AnthropicForwarder.WithoutRejectedBlocks(bytes));
    }
}

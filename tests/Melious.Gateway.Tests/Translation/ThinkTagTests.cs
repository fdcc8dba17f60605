using System.Text;
using System.Text.Json;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Routing;
using Melious.Gateway.Streaming;
using Melious.Gateway.Translation;

namespace Melious.Gateway.Tests.Translation;

/// <summary>Inline <c>&lt;think&gt;…&lt;/think&gt;</c> reasoning from servers without a reasoning parser becomes thinking blocks.</summary>
public sealed class ThinkTagTests
{
    private static (MessageAggregator Sink, OpenAIStreamTranslator Translator) Create(ThinkTagMode mode)
    {
        var sink = new MessageAggregator();
        sink.MessageStart(Ids.NewMessageId(), default);
        return (sink, new OpenAIStreamTranslator(sink, new ToolNameMap(), thinkTags: mode));
    }

    private static string Chunk(string content) =>
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + JsonEncodedText.Encode(content, System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping) + "\"}}]}";

    private static List<ResponseContentBlock> Run(ThinkTagMode mode, params string[] pieces)
    {
        var (sink, translator) = Create(mode);
        foreach (var piece in pieces)
        {
            translator.OnEvent("message", Encoding.UTF8.GetBytes(Chunk(piece)));
        }

        translator.OnEvent("message", """{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"""u8);
        translator.OnEvent("message", "[DONE]"u8);
        Assert.Equal(StreamOutcome.Completed, translator.Finish());
        return sink.Build("m").Content.ToList();
    }

    private static void AssertBlocks(List<ResponseContentBlock> blocks, string? thinking, string? text)
    {
        var expected = (thinking is null ? 0 : 1) + (text is null ? 0 : 1);
        Assert.Equal(expected, blocks.Count);
        if (thinking is not null)
        {
            var block = Assert.IsType<ResponseThinkingBlock>(blocks[0]);
            Assert.Equal(thinking, block.Thinking);
            Assert.StartsWith("melious.", block.Signature, StringComparison.Ordinal);
        }

        if (text is not null)
        {
            Assert.Equal(text, Assert.IsType<ResponseTextBlock>(blocks[^1]).Text);
        }
    }

    [Fact]
    public void Tags_in_one_chunk() =>
        AssertBlocks(Run(ThinkTagMode.Leading, "<think>\nLet me add.\n</think>\n\n2 + 2 = 4."), "Let me add.", "2 + 2 = 4.");

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    public void Tags_split_across_chunks_at_every_boundary(int size)
    {
        const string whole = "<think>Plan: read, then answer.</think>\n\nThe answer is 42.";
        var pieces = Enumerable.Range(0, (whole.Length + size - 1) / size).Select(i => whole.Substring(i * size, Math.Min(size, whole.Length - i * size))).ToArray();
        AssertBlocks(Run(ThinkTagMode.Leading, pieces), "Plan: read, then answer.", "The answer is 42.");
        AssertBlocks(Run(ThinkTagMode.Anywhere, pieces), "Plan: read, then answer.", "The answer is 42.");
    }

    [Fact]
    public void Unclosed_tag_ends_the_thinking_block_at_the_end_of_the_stream() =>
        AssertBlocks(Run(ThinkTagMode.Leading, "<think>", "still thinking", " when the budget ran out</th"), "still thinking when the budget ran out</th", null);

    [Fact]
    public void Escaped_angle_brackets_from_go_servers_are_recognised()
    {
        // Ollama (Go's encoding/json) escapes < and > as \u003c and \u003e.
        var (sink, translator) = Create(ThinkTagMode.Leading);
        translator.OnEvent("message", """{"choices":[{"index":0,"delta":{"content":"\u003cthink\u003eHmm \"quoted\"\u003c/think\u003eDone."}}]}"""u8);
        translator.OnEvent("message", "[DONE]"u8);
        translator.Finish();
        AssertBlocks(sink.Build("m").Content.ToList(), "Hmm \"quoted\"", "Done.");
    }

    [Fact]
    public void Leading_mode_leaves_later_tags_as_text_and_none_mode_leaves_all()
    {
        AssertBlocks(Run(ThinkTagMode.Leading, "Use ", "<think> tags like this."), null, "Use <think> tags like this.");
        AssertBlocks(Run(ThinkTagMode.None, "<think>x</think>y"), null, "<think>x</think>y");
        var blocks = Run(ThinkTagMode.Anywhere, "Intro. <think>inner</think> Outro.");
        Assert.Equal(["Intro. ", "inner", "Outro."], blocks.Select(b => b switch { ResponseTextBlock t => t.Text, ResponseThinkingBlock t => t.Thinking, _ => "?" }));
    }

    [Fact]
    public void Text_that_merely_starts_like_the_tag_is_kept()
    {
        AssertBlocks(Run(ThinkTagMode.Leading, "<thi", "s is html>"), null, "<this is html>");
        AssertBlocks(Run(ThinkTagMode.Leading, "  <t"), null, "  <t");
    }

    [Fact]
    public void Held_back_partial_tag_goes_out_before_a_tool_call()
    {
        var (sink, translator) = Create(ThinkTagMode.Anywhere);
        translator.OnEvent("message", Encoding.UTF8.GetBytes(Chunk("<think>need a tool</think>Calling <")));
        translator.OnEvent("message", """{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"Read","arguments":"{}"}}]}}]}"""u8);
        translator.OnEvent("message", """{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"""u8);
        translator.OnEvent("message", "[DONE]"u8);
        translator.Finish();
        var blocks = sink.Build("m").Content.ToList();
        Assert.Equal("need a tool", Assert.IsType<ResponseThinkingBlock>(blocks[0]).Thinking);
        Assert.Equal("Calling <", Assert.IsType<ResponseTextBlock>(blocks[1]).Text);
        Assert.Equal("Read", Assert.IsType<ResponseToolUseBlock>(blocks[2]).Name);
    }

    [Fact]
    public void Whitespace_alone_after_a_tool_call_opens_no_text_block_in_either_mode()
    {
        foreach (var mode in new[] { ThinkTagMode.Leading, ThinkTagMode.Anywhere })
        {
            var (sink, translator) = Create(mode);
            translator.OnEvent("message", Encoding.UTF8.GetBytes(Chunk("Reading.")));
            translator.OnEvent("message", """{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"Read","arguments":"{}"}}]}}]}"""u8);
            translator.OnEvent("message", Encoding.UTF8.GetBytes(Chunk("\n\n")));
            translator.OnEvent("message", """{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"""u8);
            translator.OnEvent("message", "[DONE]"u8);
            translator.Finish();
            var blocks = sink.Build("m").Content.ToList();
            Assert.Equal(2, blocks.Count);
            Assert.Equal("Reading.", Assert.IsType<ResponseTextBlock>(blocks[0]).Text);
            Assert.IsType<ResponseToolUseBlock>(blocks[1]);
        }
    }

    [Theory]
    [InlineData("ollama", null, "Leading")]
    [InlineData("llamacpp", null, "Leading")]
    [InlineData("vllm", null, "None")]
    [InlineData("vllm", "think-tags", "Anywhere")]
    [InlineData("ollama", "field", "None")]
    [InlineData("sglang", "auto", "None")]
    public void Mode_follows_the_setting_and_the_flavour(string flavor, string? reasoning, string expected) =>
        Assert.Equal(Enum.Parse<ThinkTagMode>(expected), ReasoningModes.ModeOf(new ModelEntry { Id = "m", BaseUrl = "http://x", Flavor = flavor, Reasoning = reasoning }));
}

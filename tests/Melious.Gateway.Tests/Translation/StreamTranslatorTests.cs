using System.Text;
using Melious.Gateway.Streaming;
using Melious.Gateway.Tests.Support;
using Melious.Gateway.Translation;

namespace Melious.Gateway.Tests.Translation;

/// <summary>Behaviour of <see cref="OpenAIStreamTranslator"/> that a transcript shows poorly: terminal states and helpers.</summary>
public sealed class StreamTranslatorTests
{
    private static OpenAIStreamTranslator Create(MessageAggregator sink)
    {
        sink.MessageStart(Ids.NewMessageId(), default);
        return new OpenAIStreamTranslator(sink, new ToolNameMap());
    }

    private static void Feed(OpenAIStreamTranslator translator, string data, string eventType = "message") =>
        translator.OnEvent(eventType, Encoding.UTF8.GetBytes(data));

    [Fact]
    public void Nothing_is_read_after_done()
    {
        var sink = new MessageAggregator();
        var translator = Create(sink);
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"a"}}]}""");
        Feed(translator, "[DONE]");
        Assert.True(translator.IsFinished);
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"IGNORED"}}]}""");
        Assert.Equal(StreamOutcome.Completed, translator.Finish());
        Assert.Equal("end_turn", translator.StopReason);
        var text = Assert.IsType<Melious.Gateway.Protocol.Anthropic.ResponseTextBlock>(Assert.Single(sink.Build("m").Content));
        Assert.Equal("a", text.Text);
    }

    [Fact]
    public void Finish_and_fail_are_idempotent_and_nothing_follows_an_error()
    {
        var sink = new MessageAggregator();
        var translator = Create(sink);
        Feed(translator, """{"error":{"message":"boom","code":503}}""");
        Assert.Equal(StreamOutcome.Failed, translator.Outcome);
        Assert.Equal(("overloaded_error", "boom"), sink.Failure);
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"late"}}]}""");
        translator.Fail("api_error", "second");
        Assert.Equal(StreamOutcome.Failed, translator.Finish());
        Assert.Equal(("overloaded_error", "boom"), sink.Failure);
        Assert.Empty(sink.Build("m").Content);
    }

    [Fact]
    public void A_caller_detected_failure_becomes_the_error_event()
    {
        var run = new MessageAggregator();
        var translator = Create(run);
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"slow"}}]}""");
        translator.Fail("timeout_error", "the upstream sent nothing for 100 s");
        Assert.Equal(StreamOutcome.Failed, translator.Finish());
        Assert.Equal(("timeout_error", "the upstream sent nothing for 100 s"), run.Failure);
    }

    [Fact]
    public void Usage_and_fragments_are_exposed_for_billing()
    {
        var translator = Create(new MessageAggregator());
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"a"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"reasoning":"b"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"T","arguments":"{}"}}]}}]}""");
        Assert.Equal(3, translator.Fragments);
        Assert.True(translator.HasOutput);
        Assert.True(translator.SawToolUse);
        Assert.False(translator.UpstreamUsage.Present);
        Feed(translator, """{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":4,"cache_write_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}""");
        var usage = translator.UpstreamUsage;
        Assert.True(usage.Present);
        Assert.Equal((10, 3, 4, 2, 1), (usage.PromptTokens, usage.CompletionTokens, usage.CachedTokens, usage.CacheWriteTokens, usage.ReasoningTokens));
    }

    [Fact]
    public void The_whitespace_between_a_reasoning_field_and_the_answer_is_dropped_even_when_split_across_chunks()
    {
        var sink = new MessageAggregator();
        var translator = Create(sink);
        Feed(translator, """{"choices":[{"index":0,"delta":{"reasoning":"think\n"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"\n"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":" \r\n\tAnswer\n\n"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"  more"}}]}""");
        Feed(translator, "[DONE]");
        Assert.Equal(StreamOutcome.Completed, translator.Finish());
        var content = sink.Build("m").Content;
        Assert.Equal(2, content.Count);
        Assert.Equal("think\n", Assert.IsType<Melious.Gateway.Protocol.Anthropic.ResponseThinkingBlock>(content[0]).Thinking);
        // Only the start of the answer is trimmed; whitespace inside it stays.
        Assert.Equal("Answer\n\n  more", Assert.IsType<Melious.Gateway.Protocol.Anthropic.ResponseTextBlock>(content[1]).Text);
        Assert.Equal(4, translator.Fragments);
    }

    [Fact]
    public void An_answer_without_reasoning_keeps_its_leading_whitespace_and_whitespace_alone_after_reasoning_opens_no_text_block()
    {
        var plain = new MessageAggregator();
        var translator = Create(plain);
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"\n  code"}}]}""");
        translator.Finish();
        Assert.Equal("\n  code", Assert.IsType<Melious.Gateway.Protocol.Anthropic.ResponseTextBlock>(Assert.Single(plain.Build("m").Content)).Text);

        var thinkingOnly = new MessageAggregator();
        translator = Create(thinkingOnly);
        Feed(translator, """{"choices":[{"index":0,"delta":{"reasoning":"hmm"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"\n\n"},"finish_reason":"stop"}]}""");
        translator.Finish();
        Assert.IsType<Melious.Gateway.Protocol.Anthropic.ResponseThinkingBlock>(Assert.Single(thinkingOnly.Build("m").Content));
    }

    [Fact]
    public void Whitespace_alone_between_or_after_tool_calls_opens_no_text_block()
    {
        // anthropics/claude-code#23440: Claude Code sends {"type":"text","text":"\n"} back, and Anthropic answers
        // 400 "text content blocks must contain non-whitespace text".
        var sink = new MessageAggregator();
        var translator = Create(sink);
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"\n"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"Read","arguments":"{}"}}]}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"\n\n"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":" \t"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"Read","arguments":"{}"}}]}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"\r\n"},"finish_reason":"tool_calls"}]}""");
        Feed(translator, "[DONE]");
        Assert.Equal(StreamOutcome.Completed, translator.Finish());
        var content = sink.Build("m").Content;
        Assert.Equal(2, content.Count);
        Assert.All(content, block => Assert.IsType<Melious.Gateway.Protocol.Anthropic.ResponseToolUseBlock>(block));
        Assert.Equal("tool_use", translator.StopReason);
    }

    [Fact]
    public void Whitespace_before_text_waits_and_goes_out_with_it_in_one_delta()
    {
        byte[] upstream =
        [
            .. "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"Read\",\"arguments\":\"{}\"}}]}}]}\n\n"u8,
            .. "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\n\"}}]}\n\n"u8,
            .. "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" \"}}]}\n\n"u8,
            .. "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\nDone.\"}}]}\n\n"u8,
            .. "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" \"}}]}\n\n"u8,
            .. "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"u8,
        ];
        var parsed = SseGrammar.Validate(StreamHarness.RunStream(upstream, new StreamSettings()).Sse);
        Assert.Equal(["tool_use", "text"], parsed.Blocks.Select(b => b.Type));
        Assert.Equal("\n \nDone. ", parsed.Blocks[1].Text.ToString());
        Assert.Equal(2, parsed.Blocks[1].Deltas);
        var message = StreamHarness.RunAggregate(upstream, new StreamSettings()).Aggregator.Build("m");
        Assert.Equal("\n \nDone. ", Assert.IsType<Melious.Gateway.Protocol.Anthropic.ResponseTextBlock>(message.Content[1]).Text);
    }

    [Fact]
    public void Whitespace_before_reasoning_is_dropped_and_an_answer_of_whitespace_alone_has_no_block()
    {
        var sink = new MessageAggregator();
        var translator = Create(sink);
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"\n"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"reasoning":"plan"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"Hi"}}]}""");
        Feed(translator, "[DONE]");
        translator.Finish();
        var content = sink.Build("m").Content;
        Assert.Equal(2, content.Count);
        Assert.Equal("Hi", Assert.IsType<Melious.Gateway.Protocol.Anthropic.ResponseTextBlock>(content[1]).Text);

        var stopped = new MessageAggregator();
        translator = new OpenAIStreamTranslator(stopped, new ToolNameMap(), ["END"]);
        stopped.MessageStart(Ids.NewMessageId(), default);
        Feed(translator, """{"choices":[{"index":0,"delta":{"content":"\n\n"}}]}""");
        Feed(translator, """{"choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_reason":"END"}]}""");
        Feed(translator, "[DONE]");
        Assert.Equal(StreamOutcome.Completed, translator.Finish());
        Assert.Empty(stopped.Build("m").Content);
        Assert.Equal(("stop_sequence", "END"), (translator.StopReason, translator.StopSequence));
    }

    [Theory]
    [InlineData("", 0)]
    [InlineData("a", 0)]
    [InlineData(" \\n", 3)]         // a space, then a newline escape
    [InlineData(" \\\\n", 1)]       // a space, then an escaped backslash and the letter n: text
    [InlineData("\\n\\r\\t x", 7)]
    [InlineData("\\u000a", 0)]     // other escapes are left alone
    public void Leading_escaped_whitespace_counts_spaces_and_the_newline_and_tab_escapes(string escaped, int expected)
    {
        Assert.Equal(expected, OpenAIStreamTranslator.LeadingEscapedWhitespace(Encoding.ASCII.GetBytes(escaped)));
    }

    [Theory]
    [InlineData("abc", 0)]
    [InlineData("", 0)]
    [InlineData("a\\ud83d", 6)]                 // high surrogate escape: its pair comes next
    [InlineData("a\\uD83D", 6)]
    [InlineData("\\ud83d", 6)]
    [InlineData("a\\\\ud83d", 0)]               // an escaped backslash followed by the text "ud83d"
    [InlineData("a\\\\\\ud83d", 6)]             // escaped backslash, then a real escape
    [InlineData("a\\ude00", 0)]                 // a low surrogate never waits
    [InlineData("a\\u00e9", 0)]
    [InlineData("a\\ud83d\\ude00", 0)]
    public void Incomplete_tail_finds_a_split_surrogate_escape(string escaped, int expected)
    {
        Assert.Equal(expected, OpenAIStreamTranslator.IncompleteTail(Encoding.ASCII.GetBytes(escaped)));
    }

    [Theory]
    [InlineData(new byte[] { 0x61, 0xE2, 0x82 }, 2)]          // € cut after 2 of 3 bytes
    [InlineData(new byte[] { 0x61, 0xE2 }, 1)]
    [InlineData(new byte[] { 0x61, 0xE2, 0x82, 0xAC }, 0)]    // complete €
    [InlineData(new byte[] { 0xF0, 0x9F, 0x98 }, 3)]          // 😀 cut after 3 of 4 bytes
    [InlineData(new byte[] { 0xF0, 0x9F, 0x98, 0x80 }, 0)]
    [InlineData(new byte[] { 0x61, 0xC3 }, 1)]
    [InlineData(new byte[] { 0x61, 0xC3, 0xA9 }, 0)]
    [InlineData(new byte[] { 0x61, 0xFF }, 0)]                // invalid, not incomplete: passed through
    [InlineData(new byte[] { 0x80, 0x80, 0x80 }, 0)]
    public void Incomplete_tail_finds_a_cut_utf8_sequence(byte[] bytes, int expected)
    {
        Assert.Equal(expected, OpenAIStreamTranslator.IncompleteTail(bytes));
    }

    [Fact]
    public void A_utf8_character_split_between_chunks_arrives_whole()
    {
        byte[] euroHead = [0xE2, 0x82];
        byte[] euroTail = [0xAC];
        byte[] upstream =
        [
            .. "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"1 "u8, .. euroHead, .. "\"}}]}\n\n"u8,
            .. "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\""u8, .. euroTail, .. "\"}}]}\n\n"u8,
            .. "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"u8,
        ];
        var run = StreamHarness.RunStream(upstream, new StreamSettings());
        var parsed = SseGrammar.Validate(run.Sse);
        Assert.Equal("1 €", parsed.Blocks[0].Text.ToString());
        Assert.DoesNotContain("\uFFFD", run.Sse);
        var message = StreamHarness.RunAggregate(upstream, new StreamSettings()).Aggregator.Build("m");
        Assert.Equal("1 €", Assert.IsType<Melious.Gateway.Protocol.Anthropic.ResponseTextBlock>(Assert.Single(message.Content)).Text);
    }
}

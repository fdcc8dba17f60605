using System.Text.Json.Nodes;
using Melious.Gateway.Tests.Support;
using Melious.Gateway.Translation;

namespace Melious.Gateway.Tests.Translation;

/// <summary>
/// Golden transcripts of the OpenAI stream → Anthropic stream translation (protocol.md §C.4, §D.4 cases 23–37 and
/// 40, §D.5). Each case is <c>Golden/stream/NAME.openai.sse</c> (verbatim upstream bytes) →
/// <c>NAME.anthropic.sse</c> (verbatim gateway SSE) and <c>NAME.message.json</c> (the non-streaming response built
/// from the same upstream bytes). Every output is also checked against the SSE grammar, fed one byte per read,
/// and compared block by block with the non-streaming message.
/// </summary>
public sealed class StreamTranslationGoldenTests
{
    /// <summary>Case name → (protocol.md §D.4 numbers it covers, settings). 0 = not in §D.4 (an extra case).</summary>
    private static readonly Dictionary<string, (int[] Pitfalls, StreamSettings Settings, bool ToolInputMayBeInvalid)> Cases = new()
    {
        ["d5_thinking_text_two_parallel_tools"] = ([28], new StreamSettings(), false),
        ["23_plain_text"] = ([23], new StreamSettings { EstimatedInputTokens = 1180 }, false),
        ["24_usage_after_finish"] = ([24], new StreamSettings(), false),
        ["24_no_usage_chunk"] = ([24], new StreamSettings { EstimatedInputTokens = 812 }, false),
        ["25_content_and_finish_one_chunk"] = ([25], new StreamSettings(), false),
        ["26_single_tool_fragments"] = ([26], new StreamSettings(), false),
        ["27_text_then_tool"] = ([27], new StreamSettings(), false),
        ["28_two_tools_one_chunk"] = ([28], new StreamSettings(), false),
        ["29_interleaved_indices"] = ([29], new StreamSettings(), false),
        ["30_index_reuse_new_id"] = ([30], new StreamSettings(), false),
        ["31_id_repeated_every_fragment"] = ([31], new StreamSettings(), false),
        ["32_missing_and_duplicate_ids"] = ([32], new StreamSettings(), false),
        ["32_tgi_object_tool_calls"] = ([32], new StreamSettings(), false),
        ["32_no_argument_call"] = ([32], new StreamSettings(), false),
        ["33_reasoning"] = ([33], new StreamSettings(), false),
        ["33_reasoning_content"] = ([33], new StreamSettings(), false),
        ["33_reasoning_both_fields"] = ([33], new StreamSettings(), false),
        ["34_inline_think_tags"] = ([34], new StreamSettings(), false),
        ["35_finish_length"] = ([35], new StreamSettings(), false),
        ["35_finish_content_filter"] = ([35], new StreamSettings(), false),
        ["35_stop_after_tool_call"] = ([35], new StreamSettings(), false),
        ["35_finish_abort"] = ([35], new StreamSettings(), false),
        ["35_finish_error"] = ([35], new StreamSettings(), false),
        ["36_mid_stream_error"] = ([36], new StreamSettings(), false),
        ["37_eof_without_done"] = ([37], new StreamSettings(), false),
        ["37_connection_lost"] = ([37], new StreamSettings { EndedEarly = "the upstream connection was lost mid-response" }, false),
        ["40_invalid_tool_json"] = ([40], new StreamSettings(), true),
        ["17_vllm_stop_sequence"] = ([17], new StreamSettings { StopSequences = ["END", "STOP"] }, false),
        ["17_sglang_stop_sequence"] = ([17], new StreamSettings { StopSequences = ["END", "STOP"] }, false),
        ["16_long_mcp_name_roundtrip"] = ([16], new StreamSettings { ToolNames = RequestTranslationGoldenTests.LongToolNames }, false),
        ["x_multiline_data_field"] = ([0], new StreamSettings(), false),
        ["x_crlf_framing"] = ([0], new StreamSettings(), false),
        ["x_comment_and_other_fields"] = ([0], new StreamSettings(), false),
        ["x_upstream_error_event"] = ([36], new StreamSettings(), false),
        ["x_upstream_error_event_plain_text"] = ([36], new StreamSettings(), false),
        ["x_flat_vllm_error_object"] = ([36], new StreamSettings(), false),
        ["x_rate_limit_error_chunk"] = ([36], new StreamSettings(), false),
        ["x_invalid_json_chunk"] = ([0], new StreamSettings(), false),
        ["x_choice_index_not_zero"] = ([0], new StreamSettings(), false),
        ["x_usage_on_every_chunk"] = ([24], new StreamSettings(), false),
        ["x_ollama_whole_tool_calls"] = ([35], new StreamSettings(), false),
        ["x_invalid_upstream_ids"] = ([32], new StreamSettings(), false),
        ["x_escaped_unicode_verbatim"] = ([0], new StreamSettings(), false),
        ["x_reasoning_content_tools_one_chunk"] = ([33], new StreamSettings(), false),
        ["x_refusal_delta"] = ([0], new StreamSettings(), false),
        ["x_stop_reason_token_id"] = ([17], new StreamSettings { StopSequences = ["END"] }, false),
        ["x_stop_reason_not_requested"] = ([17], new StreamSettings { StopSequences = ["END"] }, false),
        ["x_done_only"] = ([0], new StreamSettings(), false),
        ["x_empty_body"] = ([37], new StreamSettings(), false),
        ["x_tool_name_in_later_fragment"] = ([32], new StreamSettings(), false),
        ["x_interleaved_thinking_and_tools"] = ([33], new StreamSettings(), false),
        ["x_legacy_function_call"] = ([0], new StreamSettings(), false),
        ["x_text_after_tool_call"] = ([27], new StreamSettings(), false),
        ["x_cache_write_tokens"] = ([23], new StreamSettings(), false),
        ["x_three_tools_separate_chunks"] = ([28], new StreamSettings(), false),
        ["x_truncated_tool_json_length"] = ([35, 40], new StreamSettings(), true),
        ["x_split_surrogate_pair"] = ([0], new StreamSettings(), false),
        ["x_lone_surrogate"] = ([0], new StreamSettings(), false),
        ["x_invalid_utf8"] = ([0], new StreamSettings(), false),
        ["x_whole_completion_as_chunk"] = ([25], new StreamSettings(), false),
        ["x_finish_without_done"] = ([24, 37], new StreamSettings { EstimatedInputTokens = 321 }, false),

        // Seven real servers in their exact wire formats (Golden/stream/SERVERS.md names the source of each).
        ["s_vllm_text"] = ([23, 24], new StreamSettings(), false),
        ["s_vllm_tool_call"] = ([25, 26, 27], new StreamSettings(), false),
        ["s_vllm_reasoning"] = ([33], new StreamSettings(), false),
        ["s_vllm_error"] = ([36], new StreamSettings(), false),
        ["s_sglang_text"] = ([23, 24], new StreamSettings(), false),
        ["s_sglang_tool_call"] = ([26, 32], new StreamSettings(), false),
        ["s_sglang_reasoning"] = ([33], new StreamSettings(), false),
        ["s_sglang_abort_error"] = ([36], new StreamSettings(), false),
        ["s_ollama_text"] = ([23, 24], new StreamSettings(), false),
        ["s_ollama_tool_call"] = ([28, 35], new StreamSettings(), false),
        ["s_ollama_reasoning"] = ([33], new StreamSettings(), false),
        ["s_llamacpp_text"] = ([23, 24], new StreamSettings(), false),
        ["s_llamacpp_tool_call"] = ([26], new StreamSettings(), false),
        ["s_llamacpp_reasoning"] = ([33], new StreamSettings(), false),
        ["s_llamacpp_error"] = ([36, 37], new StreamSettings(), false),
        ["s_deepseek_text"] = ([23, 24], new StreamSettings(), false),
        ["s_deepseek_reasoning"] = ([33], new StreamSettings(), false),
        ["s_deepseek_tool_call"] = ([26, 27], new StreamSettings(), false),
        ["s_openrouter_text"] = ([24], new StreamSettings(), false),
        ["s_openrouter_reasoning"] = ([33], new StreamSettings(), false),
        ["s_openrouter_tool_call"] = ([26], new StreamSettings(), false),
        ["s_openrouter_midstream_error"] = ([35, 36], new StreamSettings(), false),
        ["s_groq_text"] = ([24], new StreamSettings(), false),
        ["s_groq_reasoning"] = ([33], new StreamSettings(), false),
        ["s_groq_tool_call"] = ([28, 32], new StreamSettings(), false),
        ["s_groq_tool_use_failed"] = ([36], new StreamSettings(), false),
        ["x_deepseek_legacy_cache_hit"] = ([23], new StreamSettings(), false),
    };

    public static TheoryData<string> CaseNames { get; } = new(Cases.Keys.Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Stream_matches_golden_transcript(string name)
    {
        var (_, settings, lenient) = Cases[name];
        var upstream = Golden.ReadBytes($"stream/{name}.openai.sse");

        var run = StreamHarness.RunStream(upstream, settings);
        var parsed = SseGrammar.Validate(run.Sse, toolInputMustParse: !lenient);
        Golden.AssertText($"stream/{name}.anthropic.sse", run.Sse);
        Assert.Equal(parsed.Error is null ? StreamOutcome.Completed : StreamOutcome.Failed, run.Outcome);
        Assert.Equal(0, run.Translator.LateFragments);
        Assert.Equal(StreamSettings.OriginalModel, (string?)parsed.MessageStart["message"]!["model"]);

        // Read boundaries must not matter.
        var trickled = StreamHarness.RunStream(upstream, settings with { OneByteReads = true });
        Assert.Equal(Golden.Normalize(run.Sse), Golden.Normalize(trickled.Sse));
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Non_streaming_message_has_the_same_blocks(string name)
    {
        var (_, settings, lenient) = Cases[name];
        var upstream = Golden.ReadBytes($"stream/{name}.openai.sse");
        var stream = SseGrammar.Validate(StreamHarness.RunStream(upstream, settings).Sse, toolInputMustParse: !lenient);
        var aggregate = StreamHarness.RunAggregate(upstream, settings);
        var body = aggregate.ResponseJson(settings.Model);
        Golden.AssertJson($"stream/{name}.message.json", body);

        var response = JsonNode.Parse(body)!.AsObject();
        if (stream.Error is not null)
        {
            Assert.Equal(StreamOutcome.Failed, aggregate.Outcome);
            Assert.Equal("error", (string?)response["type"]);
            Assert.True(JsonNode.DeepEquals(stream.Error["error"], response["error"]), "the non-streaming error differs from the stream's error event");
            return;
        }

        Assert.Equal(StreamOutcome.Completed, aggregate.Outcome);
        Assert.Equal("message", (string?)response["type"]);
        Assert.Equal(StreamSettings.OriginalModel, (string?)response["model"]);
        Assert.Matches("^msg_[A-Za-z0-9]{24}$", (string?)response["id"]);
        Assert.True(response.ContainsKey("stop_sequence"), "stop_sequence must always be present");
        var content = response["content"]!.AsArray();
        foreach (var block in content)
        {
            if ((string?)block!["type"] == "tool_use")
            {
                Assert.IsType<JsonObject>(block["input"]);
            }
        }

        var expected = Golden.Normalize(SseGrammar.ToContent(stream, lenient ? content : null));
        Assert.Equal(Golden.Pretty(expected), Golden.Pretty(Golden.Normalize(content.ToJsonString())));

        var delta = stream.MessageDelta!;
        Assert.Equal((string?)delta["delta"]!["stop_reason"], (string?)response["stop_reason"]);
        Assert.Equal((string?)delta["delta"]!["stop_sequence"], (string?)response["stop_sequence"]);
        Assert.True(JsonNode.DeepEquals(delta["usage"], response["usage"]), $"usage differs: {delta["usage"]!.ToJsonString()} vs {response["usage"]!.ToJsonString()}");
    }

    [Fact]
    public void Every_golden_input_has_a_case()
    {
        var directory = Golden.PathOf("stream");
        var inputs = Directory.GetFiles(directory, "*.openai.sse").Select(p => Path.GetFileName(p)[..^".openai.sse".Length]).Order(StringComparer.Ordinal);
        Assert.Equal(Cases.Keys.Order(StringComparer.Ordinal), inputs);
    }

    [Fact]
    public void Cases_cover_every_stream_pitfall_of_protocol_md()
    {
        var covered = Cases.Values.SelectMany(c => c.Pitfalls).ToHashSet();
        foreach (var pitfall in new[] { 16, 17, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 40 })
        {
            Assert.Contains(pitfall, covered);
        }
    }
}

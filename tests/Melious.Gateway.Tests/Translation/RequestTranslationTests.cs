using System.Text.Json.Nodes;
using Melious.Gateway.Routing;
using Melious.Gateway.Tests.Support;
using Melious.Gateway.Translation;

namespace Melious.Gateway.Tests.Translation;

/// <summary>Request-translation rules that are tables rather than transcripts (protocol.md §D.4 cases 2, 14, 16, 18, 20, §C.2).</summary>
public sealed class RequestTranslationTests
{
    private static JsonObject Upstream(string anthropicJson, ModelEntry? model = null, long estimate = 1000) =>
        JsonNode.Parse(RequestHarness.Serialize(RequestHarness.Translate(anthropicJson, model ?? TestModels.Vllm, estimate).Request))!.AsObject();

    [Fact]
    public void Billing_header_is_dropped_so_requests_with_different_cch_are_byte_identical()
    {
        // Case 2: the per-request cch would defeat upstream prefix caching.
        static string Body(string cch) => RequestHarness.Serialize(RequestHarness.Translate(
            "{\"model\":\"claude-sonnet-4-5-20250929\",\"max_tokens\":100,\"system\":[" +
            "{\"type\":\"text\",\"text\":\"x-anthropic-billing-header: cc_version=2.1.153.d02; cc_entrypoint=cli; cch=" + cch + ";\"}," +
            "{\"type\":\"text\",\"text\":\"You are Claude Code.\"}],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            TestModels.Vllm, 1000).Request);

        var first = Body("ab12c");
        Assert.Equal(first, Body("f00d1"));
        Assert.Equal("You are Claude Code.", (string?)JsonNode.Parse(first)!["messages"]![0]!["content"]);
    }

    [Fact]
    public void Billing_header_line_inside_a_system_string_is_dropped_and_the_rest_kept()
    {
        var upstream = Upstream("""
            {"model":"m","max_tokens":10,"system":"x-anthropic-billing-header: cc_version=1; cch=00000;\nReal prompt.","messages":[{"role":"user","content":"hi"}]}
            """);
        Assert.Equal("Real prompt.", (string?)upstream["messages"]![0]!["content"]);
    }

    [Theory]
    [InlineData(32000, 17_459, 8192)]      // case 18: the model's output cap
    [InlineData(1, 8, 1)]                  // case 19: a probe is never raised
    [InlineData(8192, 30_000, 1268)]       // room = 32768 − 30000 − margin(1500)
    [InlineData(8192, 32_000, 768)]        // the margin does not fit: what is left
    [InlineData(8192, 33_000, 1)]          // over the window but within the estimate's error: let the upstream decide
    public void Max_tokens_is_clamped_to_the_model_and_window(long requested, long estimate, long expected)
    {
        Assert.Equal(expected, OpenAIRequestTranslator.ClampMaxTokens(requested, TestModels.Small, estimate));
    }

    [Fact]
    public void A_prompt_clearly_over_the_window_is_refused_without_an_upstream_call()
    {
        // Case 18: Claude Code compacts on exactly this wording.
        var error = Assert.Throws<RequestTranslationException>(() => RequestHarness.Translate(
            """{"model":"claude-sonnet-4-5-20250929","max_tokens":32000,"messages":[{"role":"user","content":"x"}]}""", TestModels.Small, 40_000));
        Assert.Equal("prompt is too long: 40000 tokens > 32768 maximum", error.Message);
    }

    [Theory]
    [InlineData("""{"type":"auto"}""", "vllm", "\"auto\"", null)]
    [InlineData("""{"type":"any"}""", "vllm", "\"required\"", null)]
    [InlineData("""{"type":"none"}""", "vllm", "\"none\"", null)]
    [InlineData("""{"type":"tool","name":"Read"}""", "vllm", """{"type":"function","function":{"name":"Read"}}""", null)]
    [InlineData("""{"type":"auto","disable_parallel_tool_use":true}""", "vllm", "\"auto\"", false)]
    [InlineData("""{"type":"any","disable_parallel_tool_use":true}""", "openai", "\"required\"", false)]
    [InlineData("""{"type":"auto","disable_parallel_tool_use":true}""", "ollama", "\"auto\"", null)]
    [InlineData("""{"type":"auto","disable_parallel_tool_use":false}""", "vllm", "\"auto\"", null)]
    public void Tool_choice_maps_to_openai(string toolChoice, string flavor, string expectedChoice, bool? expectedParallel)
    {
        // Case 14.
        var upstream = Upstream(
            "{\"model\":\"m\",\"max_tokens\":10,\"tool_choice\":" + toolChoice +
            ",\"tools\":[{\"name\":\"Read\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            TestModels.Vllm with { Flavor = flavor });
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(expectedChoice), upstream["tool_choice"]), upstream["tool_choice"]?.ToJsonString());
        Assert.Equal(expectedParallel, (bool?)upstream["parallel_tool_calls"]);
    }

    [Theory]
    [InlineData("""{"type":"enabled","budget_tokens":10000}""", null, "vllm", "high", true)]
    [InlineData("""{"type":"enabled","budget_tokens":2048}""", null, "vllm", "medium", true)]
    [InlineData("""{"type":"enabled","budget_tokens":1024}""", null, "vllm", "low", true)]
    [InlineData("""{"type":"disabled"}""", null, "vllm", null, false)]
    [InlineData("""{"type":"enabled","budget_tokens":10000}""", "low", "vllm", "low", true)]
    [InlineData("""{"type":"adaptive"}""", null, "vllm", "medium", true)]
    [InlineData("""{"type":"adaptive","display":"omitted"}""", "max", "sglang", "high", true)]
    [InlineData(null, "medium", "vllm", null, null)]          // CLAUDE_CODE_DISABLE_THINKING=1: effort alone never turns thinking on
    [InlineData(null, "high", "ollama", null, null)]          // (reasoning_effort would: Ollama maps it to think)
    [InlineData(null, "low", "openai", null, null)]
    [InlineData(null, null, "vllm", null, null)]
    [InlineData("""{"type":"enabled","budget_tokens":10000}""", null, "ollama", "high", null)]
    [InlineData("""{"type":"enabled","budget_tokens":10000}""", null, "openai", "high", null)]
    [InlineData("""{"type":"enabled","budget_tokens":10000}""", null, "llamacpp", "high", true)]
    public void Thinking_and_effort_map_to_the_upstream_controls(string? thinking, string? effort, string flavor, string? expectedEffort, bool? expectedEnableThinking)
    {
        // Case 20: explicit effort wins over the budget; each server family gets the control it understands. Without
        // thinking, effort is not sent: the request is treated as one without thinking (protocol.md §C.1).
        var upstream = Upstream(
            "{\"model\":\"m\",\"max_tokens\":32000" +
            (thinking is null ? "" : ",\"thinking\":" + thinking) +
            (effort is null ? "" : ",\"output_config\":{\"effort\":\"" + effort + "\"}") +
            ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            TestModels.Vllm with { Flavor = flavor });
        Assert.Equal(expectedEffort, (string?)upstream["reasoning_effort"]);
        Assert.Equal(expectedEnableThinking, (bool?)upstream["chat_template_kwargs"]?["enable_thinking"]);
    }

    [Fact]
    public void A_model_without_reasoning_controls_gets_none()
    {
        var upstream = Upstream("""{"model":"m","max_tokens":100,"thinking":{"type":"enabled","budget_tokens":5000},"messages":[{"role":"user","content":"hi"}]}""", TestModels.NoThinking);
        Assert.False(upstream.ContainsKey("reasoning_effort"));
        Assert.False(upstream.ContainsKey("chat_template_kwargs"));
    }

    [Theory]
    [InlineData("""{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjQK"}""", "document blocks with a base64 source (application/pdf)")]
    [InlineData("""{"type":"url","url":"https://example.com/a.pdf"}""", "document blocks with a url source")]
    public void Unsupported_documents_are_a_clear_400_never_a_silent_drop(string source, string expected)
    {
        var error = Assert.Throws<RequestTranslationException>(() => RequestHarness.Translate(
            "{\"model\":\"m\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"document\",\"source\":" + source + "},{\"type\":\"text\",\"text\":\"summarize\"}]}]}",
            TestModels.Vllm, 1000));
        Assert.StartsWith(expected, error.Message);
    }

    [Fact]
    public void A_pdf_returned_by_a_tool_becomes_a_note_and_a_text_document_its_text()
    {
        // Claude Code's Read of a .pdf returns a base64 document block; that tool_result is resent every turn, so a 400
        // here would end the session. Like an image toward a model without vision, the model is told what was there.
        var upstream = Upstream("""
            {"model":"m","max_tokens":10,"messages":[
              {"role":"user","content":"read the files"},
              {"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"Read","input":{"file_path":"a.pdf"}},{"type":"tool_use","id":"c2","name":"Read","input":{"file_path":"b.txt"}}]},
              {"role":"user","content":[
                {"type":"tool_result","tool_use_id":"c1","content":[
                  {"type":"text","text":"PDF file read: a.pdf"},
                  {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjQK"}},
                  {"type":"document","source":{"type":"url","url":"https://example.com/a.pdf"}}]},
                {"type":"tool_result","tool_use_id":"c2","content":[
                  {"type":"document","title":"b.txt","source":{"type":"text","media_type":"text/plain","data":"hello"}}]}]}]}
            """);
        var messages = upstream["messages"]!.AsArray();
        Assert.Equal(
            "PDF file read: a.pdf\n[document omitted: this gateway does not accept application/pdf documents]\n[document omitted: this gateway does not accept url documents]",
            (string?)messages[2]!["content"]);
        Assert.Equal("b.txt\n\nhello", (string?)messages[3]!["content"]);
        Assert.Equal(4, messages.Count);
    }

    [Theory]
    [InlineData("tool_search_tool_regex_20251119", "tool_search_tool_regex")]
    [InlineData("tool_search_tool_bm25_20251119", "tool_search_tool_bm25")]
    public void With_a_server_side_tool_search_tool_every_deferred_tool_is_sent(string type, string name)
    {
        // The gateway cannot run Anthropic's tool search, so no tool_reference will ever load a deferred tool: without
        // them the model would have no tools at all. (Claude Code's own ToolSearch is a client tool: DeferredToolTests.)
        var upstream = Upstream(
            "{\"model\":\"m\",\"max_tokens\":10,\"tools\":[{\"type\":\"" + type + "\",\"name\":\"" + name + "\"}," + """
              {"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}},"defer_loading":true},
              {"name":"Read","input_schema":{"type":"object","properties":{}}}],
             "messages":[{"role":"user","content":"weather in Paris?"}]}
            """);
        Assert.Equal(["get_weather", "Read"], upstream["tools"]!.AsArray().Select(t => (string?)t!["function"]!["name"]));
        Assert.DoesNotContain("defer_loading", upstream.ToJsonString(), StringComparison.Ordinal);
    }

    private const string WeatherSchema = """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}""";

    [Fact]
    public void Output_config_format_maps_to_response_format()
    {
        // protocol.md §C.1: output_config.format (json_schema) → response_format, as vLLM's own endpoint does.
        var upstream = Upstream(
            "{\"model\":\"m\",\"max_tokens\":10,\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":" + WeatherSchema + "}}," +
            "\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"}]}");
        var expected = JsonNode.Parse("{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"output\",\"schema\":" + WeatherSchema + "}}");
        Assert.True(JsonNode.DeepEquals(expected, upstream["response_format"]), upstream["response_format"]?.ToJsonString());
    }

    [Fact]
    public void Top_level_output_format_is_an_alias_of_output_config_format_which_wins()
    {
        // Beta structured-outputs-2025-11-13 sends the format as top-level output_format.
        var alone = Upstream(
            "{\"model\":\"m\",\"max_tokens\":10,\"output_format\":{\"type\":\"json_schema\",\"schema\":" + WeatherSchema + "}," +
            "\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"}]}");
        var expected = JsonNode.Parse("{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"output\",\"schema\":" + WeatherSchema + "}}");
        Assert.True(JsonNode.DeepEquals(expected, alone["response_format"]), alone["response_format"]?.ToJsonString());

        var both = Upstream(
            "{\"model\":\"m\",\"max_tokens\":10,\"output_format\":{\"type\":\"json_schema\",\"schema\":{\"type\":\"object\",\"properties\":{\"ignored\":{\"type\":\"string\"}}}}," +
            "\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":" + WeatherSchema + "}}," +
            "\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"}]}");
        Assert.True(JsonNode.DeepEquals(expected, both["response_format"]), both["response_format"]?.ToJsonString());
    }

    [Fact]
    public void Tool_results_follow_the_order_of_the_calls_not_of_completion()
    {
        // claude-code.md §9.16; tool messages for ids the assistant never issued keep their place after the known ones.
        var upstream = Upstream("""
            {"model":"m","max_tokens":10,"messages":[
              {"role":"user","content":"go"},
              {"role":"assistant","content":[
                {"type":"tool_use","id":"c1","name":"A","input":{}},
                {"type":"tool_use","id":"c2","name":"A","input":{}},
                {"type":"tool_use","id":"c3","name":"A","input":{}}]},
              {"role":"user","content":[
                {"type":"tool_result","tool_use_id":"stray","content":"s"},
                {"type":"tool_result","tool_use_id":"c3","content":"3"},
                {"type":"text","text":"note"},
                {"type":"tool_result","tool_use_id":"c1","content":"1"},
                {"type":"tool_result","tool_use_id":"c2","content":"2"}]}]}
            """);
        var roles = upstream["messages"]!.AsArray().Select(m => $"{m!["role"]}:{m["tool_call_id"] ?? m["content"]}");
        Assert.Equal(["user:go", "assistant:", "tool:c1", "tool:c2", "tool:c3", "tool:stray", "user:note"], roles);
    }

    [Fact]
    public void Translation_does_not_mutate_or_depend_on_shared_state()
    {
        var json = Golden.Read("request/x_claude_code_2_1_330.anthropic.json");
        var request = RequestHarness.Parse(json);
        var first = RequestHarness.Serialize(OpenAIRequestTranslator.Translate(request, TestModels.Vllm, 30_000).Request);
        var second = RequestHarness.Serialize(OpenAIRequestTranslator.Translate(request, TestModels.Vllm, 30_000).Request);
        Assert.Equal(first, second);
    }
}

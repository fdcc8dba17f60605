using System.Text.Json.Nodes;
using Melious.Gateway.Routing;
using Melious.Gateway.Tests.Support;
using Melious.Gateway.Translation;

namespace Melious.Gateway.Tests.Translation;

/// <summary>
/// Golden transcripts of the Anthropic request → OpenAI request translation (protocol.md §C.1–C.2, §D.4 cases
/// 1–22, claude-code.md §3 and §10). Each case is <c>Golden/request/NAME.anthropic.json</c> (the client body,
/// verbatim) → <c>NAME.openai.json</c> (the upstream body, compared as JSON).
/// </summary>
public sealed class RequestTranslationGoldenTests
{
    private const long Estimate = 1000;

    /// <summary>Case name → (protocol.md §D.4 numbers it covers, upstream model, estimated input tokens). 0 = extra case.</summary>
    private static readonly Dictionary<string, (int[] Pitfalls, ModelEntry Model, long Estimate)> Cases = new()
    {
        ["01_mid_conversation_system"] = ([1], TestModels.Vllm, Estimate),
        ["02_billing_header"] = ([2, 22], TestModels.Vllm, Estimate),
        ["05_unknown_fields_and_blocks"] = ([5], TestModels.Vllm, Estimate),
        ["06_tool_results_ordering"] = ([6], TestModels.Vllm, Estimate),
        ["07_tool_result_error_with_image"] = ([7], TestModels.Vllm, Estimate),
        ["07_tool_result_image_text_only_model"] = ([7], TestModels.VllmTextOnly, Estimate),
        ["08_empty_tool_result"] = ([8], TestModels.Vllm, Estimate),
        ["09_text_after_tool_use"] = ([9], TestModels.Vllm, Estimate),
        ["10_empty_text_blocks"] = ([10], TestModels.Vllm, Estimate),
        ["11_consecutive_roles"] = ([11], TestModels.Vllm, Estimate),
        ["12_prefill"] = ([12], TestModels.Vllm, Estimate),
        ["12_prefill_ollama"] = ([12], TestModels.Ollama, Estimate),
        ["13_thinking_replay"] = ([13], TestModels.Vllm, Estimate),
        ["14_tool_choice_any"] = ([14], TestModels.Vllm, Estimate),
        ["14_tool_choice_named_no_parallel"] = ([14], TestModels.Vllm, Estimate),
        ["15_server_tools"] = ([15], TestModels.Vllm, Estimate),
        ["15_only_server_tools"] = ([15], TestModels.Vllm, Estimate),
        ["16_schema_sanitation_long_names"] = ([16], TestModels.Vllm, Estimate),
        ["17_stop_sequences"] = ([17], TestModels.Vllm, Estimate),
        ["17_stop_sequences_openai_hosted"] = ([17, 14], TestModels.OpenAIHosted, Estimate),
        ["18_max_tokens_clamp"] = ([18], TestModels.Small, 17_459),
        ["19_probe"] = ([19], TestModels.Vllm, 8),
        ["20_thinking_enabled_budget"] = ([20], TestModels.Vllm, Estimate),
        ["20_thinking_disabled"] = ([20], TestModels.Vllm, Estimate),
        ["20_effort_low_wins"] = ([20], TestModels.Vllm, Estimate),
        ["20_thinking_adaptive_display_omitted"] = ([20], TestModels.Vllm, Estimate),
        ["21_image_sources"] = ([21], TestModels.Vllm, Estimate),
        ["22_cache_control_everywhere"] = ([22], TestModels.Vllm, Estimate),
        ["x_claude_code_2_1_330"] = ([1, 2, 5, 6, 10, 13, 16, 20, 22], TestModels.Vllm, 30_000),
        ["x_claude_code_2_1_197"] = ([1, 2, 6, 13, 20, 22], TestModels.Vllm, 20_000),
        ["x_document_and_mid_conv_system_block"] = ([1], TestModels.Vllm, Estimate),
        ["x_tool_result_string_and_blocks"] = ([6, 7], TestModels.Vllm, Estimate),
    };

    public static TheoryData<string> CaseNames { get; } = new(Cases.Keys.Order(StringComparer.Ordinal));

    /// <summary>The name map a translation of case 16 produces (for the response-side round trip).</summary>
    internal static ToolNameMap LongToolNames() =>
        RequestHarness.Translate(Golden.Read("request/16_schema_sanitation_long_names.anthropic.json"), TestModels.Vllm, Estimate).ToolNames;

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Upstream_request_matches_golden(string name)
    {
        var (_, model, estimate) = Cases[name];
        var client = Golden.Read($"request/{name}.anthropic.json");
        var upstream = RequestHarness.Serialize(RequestHarness.Translate(client, model, estimate).Request);
        Golden.AssertJson($"request/{name}.openai.json", upstream);

        // Pure and deterministic: byte-identical on a second run (upstream prefix caches depend on it).
        Assert.Equal(upstream, RequestHarness.Serialize(RequestHarness.Translate(client, model, estimate).Request));
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Upstream_request_is_well_formed(string name)
    {
        var (_, model, estimate) = Cases[name];
        var upstream = JsonNode.Parse(RequestHarness.Serialize(RequestHarness.Translate(Golden.Read($"request/{name}.anthropic.json"), model, estimate).Request))!.AsObject();
        Assert.Equal(model.Id, (string?)upstream["model"]);
        Assert.True((bool)upstream["stream"]!);
        Assert.True((bool)upstream["stream_options"]!["include_usage"]!);

        var messages = upstream["messages"]!.AsArray();
        Assert.NotEmpty(messages);
        var pendingCalls = new List<string>();
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i]!.AsObject();
            var role = (string?)message["role"];
            Assert.Contains(role, new[] { "system", "user", "assistant", "tool" });
            if (role == "system")
            {
                Assert.Equal(0, i);
            }

            if (role != "tool")
            {
                Assert.True(pendingCalls.Count == 0, $"messages.{i}: tool calls {string.Join(", ", pendingCalls)} have no tool message before it");
            }

            switch (role)
            {
                case "tool":
                    var id = (string?)message["tool_call_id"];
                    Assert.True(pendingCalls.Remove(id!), $"messages.{i}: tool message for {id} does not follow an assistant call with that id (or repeats it)");
                    Assert.IsAssignableFrom<JsonValue>(message["content"]);
                    break;
                case "assistant":
                    Assert.True(message["content"] is not null || message["tool_calls"] is not null, $"messages.{i}: empty assistant message");
                    foreach (var call in message["tool_calls"]?.AsArray() ?? [])
                    {
                        Assert.Equal("function", (string?)call!["type"]);
                        Assert.Matches("^[a-zA-Z0-9_-]{1,64}$", (string?)call["function"]!["name"]);
                        Assert.IsType<JsonObject>(JsonNode.Parse((string)call["function"]!["arguments"]!));
                        pendingCalls.Add((string)call["id"]!);
                    }

                    break;
                default:
                    AssertNotBlank(message["content"], $"messages.{i}");
                    break;
            }

            if (i > 0 && role is "user" or "assistant")
            {
                Assert.NotEqual(role, (string?)messages[i - 1]!["role"]);
            }
        }

        foreach (var tool in upstream["tools"]?.AsArray() ?? [])
        {
            Assert.Equal("function", (string?)tool!["type"]);
            Assert.Matches("^[a-zA-Z0-9_-]{1,64}$", (string?)tool["function"]!["name"]);
            Assert.IsType<JsonObject>(tool["function"]!["parameters"]);
        }

        // Anthropic-only fields never reach an OpenAI upstream.
        var text = upstream.ToJsonString();
        foreach (var field in new[] { "cache_control", "x-anthropic-billing-header", "\"signature\"", "defer_loading", "context_management", "metadata", "\"thinking\"" })
        {
            Assert.DoesNotContain(field, text);
        }
    }

    private static void AssertNotBlank(JsonNode? content, string where)
    {
        switch (content)
        {
            case JsonValue value:
                Assert.False(string.IsNullOrWhiteSpace((string?)value), $"{where}: blank content");
                break;
            case JsonArray parts:
                Assert.NotEmpty(parts);
                break;
            default:
                Assert.Fail($"{where}: content missing");
                break;
        }
    }

    [Fact]
    public void Every_golden_input_has_a_case()
    {
        var inputs = Directory.GetFiles(Golden.PathOf("request"), "*.anthropic.json").Select(p => Path.GetFileName(p)[..^".anthropic.json".Length]).Order(StringComparer.Ordinal);
        Assert.Equal(Cases.Keys.Order(StringComparer.Ordinal), inputs);
    }

    [Fact]
    public void Cases_cover_every_request_pitfall_of_protocol_md()
    {
        var covered = Cases.Values.SelectMany(c => c.Pitfalls).ToHashSet();

        // 3 (beta URL/headers) and 4 (auth) are HTTP cases; 18's refusal is below.
        foreach (var pitfall in new[] { 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22 })
        {
            Assert.Contains(pitfall, covered);
        }
    }
}

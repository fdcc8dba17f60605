using System.Net;
using System.Text.Json.Nodes;
using Melious.Gateway.FunctionalTests.Clients;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>
/// <c>context_management</c> with <c>clear_thinking_20251015</c> (beta context-management-2025-06-27): toward an OpenAI
/// upstream only the last N thinking turns replay their reasoning and the response reports
/// <c>context_management.applied_edits</c>; toward an Anthropic upstream the field passes through; never a 400.
/// </summary>
public sealed class ContextManagementTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Thinking turns signed by the gateway (an OpenAI model answered them) unless <paramref name="signature"/> says otherwise.</summary>
    private static JsonObject ThreeThinkingTurns(bool stream, JsonNode? contextManagement, string signature = "melious.sig")
    {
        var body = Scenario.Body(stream: stream);
        var messages = new JsonArray();
        for (var turn = 1; turn <= 3; turn++)
        {
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = $"question {turn}" });
            messages.Add(new JsonObject
            {
                ["role"] = "assistant",
                ["content"] = new JsonArray(
                    new JsonObject { ["type"] = "thinking", ["thinking"] = $"reasoning of turn {turn}", ["signature"] = signature },
                    new JsonObject { ["type"] = "text", ["text"] = $"answer {turn}" }),
            });
        }

        messages.Add(new JsonObject { ["role"] = "user", ["content"] = "question 4" });
        body["messages"] = messages;
        body["thinking"] = new JsonObject { ["type"] = "enabled", ["budget_tokens"] = 1024 };
        body["max_tokens"] = 2048;
        if (contextManagement is not null)
        {
            body["context_management"] = contextManagement;
        }

        return body;
    }

    private static List<string?> ReplayedReasoning(UpstreamRequest request) =>
        request.Json.GetProperty("messages").EnumerateArray()
            .Where(m => m.GetProperty("role").GetString() == "assistant")
            .Select(m => m.TryGetProperty("reasoning_content", out var r) && r.ValueKind == System.Text.Json.JsonValueKind.String ? r.GetString() : null)
            .ToList();

    [Fact]
    public async Task ClearThinking_KeepsTheLastTurns_AndReportsTheAppliedEdit()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var edit = JsonNode.Parse("""{"edits":[{"type":"clear_thinking_20251015","keep":{"type":"thinking_turns","value":1}}]}""");
        var response = await s.PostAsync(ThreeThinkingTurns(false, edit));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal([null, null, "reasoning of turn 3"], ReplayedReasoning(s.Upstream.Requests.Single()));

        var applied = (await s.JsonAsync(response)).GetProperty("context_management").GetProperty("applied_edits");
        var only = Assert.Single(applied.EnumerateArray());
        Assert.Equal("clear_thinking_20251015", only.GetProperty("type").GetString());
        Assert.Equal(2, only.GetProperty("cleared_thinking_turns").GetInt32());
        Assert.True(only.GetProperty("cleared_input_tokens").GetInt64() > 0);
    }

    [Fact]
    public async Task Streams_CarryTheAppliedEdits_OnMessageDelta_AndKeepAllClearsNothing()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var response = await s.PostAsync(ThreeThinkingTurns(true, JsonNode.Parse("""{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}""")));
        var events = await SseEvents.ReadAllAsync(response, Ct);
        SseEvents.AssertGrammar(events);
        Assert.Equal(["reasoning of turn 1", "reasoning of turn 2", "reasoning of turn 3"], ReplayedReasoning(s.Upstream.Requests.Single()));
        var delta = events.Single(e => e.Name == "message_delta").Data;
        Assert.Empty(delta.GetProperty("context_management").GetProperty("applied_edits").EnumerateArray());

        var defaultKeep = await s.PostAsync(ThreeThinkingTurns(true, JsonNode.Parse("""{"edits":[{"type":"clear_thinking_20251015"}]}""")));
        var second = await SseEvents.ReadAllAsync(defaultKeep, Ct);
        Assert.Equal([null, null, "reasoning of turn 3"], ReplayedReasoning(s.Upstream.Requests.Last()));
        Assert.Equal(2, second.Single(e => e.Name == "message_delta").Data.GetProperty("context_management").GetProperty("applied_edits")[0].GetProperty("cleared_thinking_turns").GetInt32());
    }

    [Theory]
    [InlineData("\"garbage\"")]
    [InlineData("{\"edits\":5}")]
    [InlineData("{\"edits\":[{\"type\":\"clear_tool_uses_20250919\",\"trigger\":{\"type\":\"input_tokens\",\"value\":30000}}]}")]
    [InlineData("{\"edits\":[{\"type\":\"clear_thinking_20251015\",\"keep\":{\"type\":\"future_kind\"}}]}")]
    [InlineData("{\"edits\":[{\"type\":true,\"keep\":\"all\"}]}")]
    [InlineData("{\"edits\":[{\"type\":\"clear_thinking_20251015\",\"keep\":{\"type\":7}}]}")]
    [InlineData("{\"edits\":[{\"type\":\"clear_thinking_20251015\",\"keep\":{\"type\":\"thinking_turns\",\"value\":\"2\"}}]}")]
    public async Task UnknownShapes_AreNeverA400(string contextManagement)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var response = await s.PostAsync(ThreeThinkingTurns(false, JsonNode.Parse(contextManagement)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(3, ReplayedReasoning(s.Upstream.Requests.Single()).Count(r => r is not null));
    }

    [Fact]
    public async Task AnthropicUpstream_GetsTheFieldAsSent()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => AnthropicUpstream.TextAsync(context, "secondary-model", "ok"), anthropicUpstream: true);
        var edit = """{"edits":[{"type":"clear_thinking_20251015","keep":{"type":"thinking_turns","value":2}}]}""";
        // Thinking an Anthropic model signed (gateway signatures are never forwarded to an Anthropic upstream).
        var response = await s.PostAsync(ThreeThinkingTurns(true, JsonNode.Parse(edit), signature: "EqQBCkYIBxgCKkB"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await SseEvents.ReadAllAsync(response, Ct);
        var sent = s.Upstream.Requests.Single().Json;
        Assert.Equal(JsonNode.Parse(edit)!.ToJsonString(), JsonNode.Parse(sent.GetProperty("context_management").GetRawText())!.ToJsonString());
        Assert.Equal(3, sent.GetProperty("messages").EnumerateArray().Count(m => m.GetProperty("content").ValueKind == System.Text.Json.JsonValueKind.Array
            && m.GetProperty("content").EnumerateArray().Any(b => b.GetProperty("type").GetString() == "thinking")));
    }
}

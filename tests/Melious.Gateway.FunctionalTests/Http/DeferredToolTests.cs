using System.Net;
using System.Text.Json.Nodes;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>Tool search toward an OpenAI upstream: a <c>defer_loading</c> tool is sent only once a <c>tool_reference</c> names it.</summary>
public sealed class DeferredToolTests(AzuriteFixture azurite)
{
    private static JsonArray Tools() => (JsonArray)JsonNode.Parse("""
        [
          {"name":"ToolSearch","description":"Search deferred tools","input_schema":{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}},
          {"name":"mcp__github__create_issue","description":"Create an issue","input_schema":{"type":"object","properties":{"title":{"type":"string"}}},"defer_loading":true},
          {"name":"mcp__github__list_prs","description":"List PRs","input_schema":{"type":"object","properties":{}},"defer_loading":true}
        ]
        """)!;

    private static List<string> UpstreamTools(UpstreamRequest request) =>
        request.Json.TryGetProperty("tools", out var tools)
            ? tools.EnumerateArray().Select(t => t.GetProperty("function").GetProperty("name").GetString()!).ToList()
            : [];

    [Fact]
    public async Task DeferredTools_AreSentOnlyAfterAToolReference()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var first = Scenario.Body(prompt: "file an issue");
        first["tools"] = Tools();
        Assert.Equal(HttpStatusCode.OK, (await s.PostAsync(first)).StatusCode);
        Assert.Equal(["ToolSearch"], UpstreamTools(s.Upstream.Requests.Last()));

        var second = Scenario.Body();
        second["tools"] = Tools();
        second["messages"] = JsonNode.Parse("""
            [
              {"role":"user","content":"file an issue"},
              {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"ToolSearch","input":{"query":"github issue"}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"tool_reference","tool_name":"mcp__github__create_issue"}]}]}
            ]
            """);
        Assert.Equal(HttpStatusCode.OK, (await s.PostAsync(second)).StatusCode);
        Assert.Equal(["ToolSearch", "mcp__github__create_issue"], UpstreamTools(s.Upstream.Requests.Last()));
        Assert.DoesNotContain("defer_loading", s.Upstream.Requests.Last().BodyText, StringComparison.Ordinal);
    }
}

using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Web;
using Azure.Data.Tables;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.FunctionalTests.Usage;
using Melious.Gateway.Storage;
using Melious.Gateway.Tests.Support;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Clients;

/// <summary>
/// Anthropic's <c>web_search</c> server tool through an OpenAI-compatible upstream (docs/web-search.md), over real
/// HTTP: a scripted SearXNG-shaped provider on loopback answers the gateway's searches, the scripted upstream model
/// calls <c>web_search</c> and then answers from the results. Checks the client stream against the SSE grammar
/// (server_tool_use → web_search_tool_result → text), what the provider and the upstream received, max_uses,
/// the replay of results in a second turn, the answer without a provider, and the billing row.
/// </summary>
public sealed class WebSearchTests(AzuriteFixture azurite)
{
    private const string Query = "melious gateway release notes";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A SearXNG instance (<c>GET /search?format=json&amp;q=…</c>) with one result per domain, the page text naming the domain.</summary>
    private static Task<ScriptedUpstream> SearxngAsync() => ScriptedUpstream.StartAsync(async (request, context) =>
    {
        var query = HttpUtility.ParseQueryString(new Uri("http://x" + request.Path).Query);
        if (request.Path.Split('?')[0] != "/search" || query["format"] != "json")
        {
            context.Response.StatusCode = 404;
            return;
        }

        var q = query["q"] ?? "";
        var results = new JsonArray();
        foreach (var domain in new[] { "news.example.com", "blocked.example.org", "docs.example.com" })
        {
            results.Add(new JsonObject
            {
                ["url"] = $"https://{domain}/page",
                ["title"] = $"Result from {domain}",
                ["content"] = $"PAGE-TEXT-{domain} about {q}",
                ["engine"] = "duckduckgo",
                ["publishedDate"] = domain == "docs.example.com" ? null : "2026-11-30T00:00:00",
            });
        }

        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(new JsonObject { ["query"] = q, ["number_of_results"] = 3, ["results"] = results }.ToJsonString(), Ct);
    });

    /// <summary>The model: searches (once per round) until it has <paramref name="searches"/> tool messages, then answers from them.</summary>
    private static Func<UpstreamRequest, HttpContext, Task> SearchingModel(int searches = 1) => (request, context) =>
    {
        var tools = request.ToolMessages().ToList();
        if (tools.Count < searches)
        {
            var arguments = JsonSerializer.Serialize(new { query = tools.Count == 0 ? Query : Query + " again" });
            return Sse.WriteAsync(context,
            [
                Sse.Role(), Sse.Content("Let me search."),
                Sse.ToolCall(0, "call_" + tools.Count, "web_search", arguments[..10]), Sse.ToolCall(0, null, null, arguments[10..]),
                Sse.Finish("tool_calls"), Sse.Usage(1000, 20),
            ]);
        }

        var seen = tools.Count > 0 && ScenarioExtensions.ContentText(tools[0]).Contains("PAGE-TEXT-news.example.com", StringComparison.Ordinal) ? "news" : "nothing";
        return Sse.WriteAsync(context, [Sse.Role(), Sse.Content("From the results: "), Sse.Content(seen + " [1]."), Sse.Finish("stop"), Sse.Usage(1500, 7)]);
    };

    private static Dictionary<string, string?> Settings(ScriptedUpstream? provider) => new()
    {
        ["Melious:Search:Provider"] = provider is null ? "" : "searxng",
        ["Melious:Search:BaseUrl"] = provider?.BaseUrl,
        ["Melious:Search:PricePerSearch"] = "0.01",
        ["Melious:Search:SigningKeySetting"] = "Test:SearchSigningKey",
        ["Test:SearchSigningKey"] = "functional-test-signing-key",
        ["Melious:Search:MaxResults"] = "5",
    };

    private static JsonObject SearchBody(bool stream, int? maxUses = 5, JsonArray? messages = null)
    {
        var tool = new JsonObject { ["type"] = "web_search_20250305", ["name"] = "web_search", ["blocked_domains"] = new JsonArray("blocked.example.org") };
        if (maxUses is { } uses)
        {
            tool["max_uses"] = uses;
        }

        var body = Scenario.Body(stream: stream, prompt: "what is new in the melious gateway?");
        body["tools"] = new JsonArray(tool);
        if (messages is not null)
        {
            body["messages"] = messages;
        }

        return body;
    }

    [Fact]
    public async Task Streamed_search_runs_once_at_the_provider_and_reaches_the_client_in_Anthropic_order()
    {
        await using var provider = await SearxngAsync();
        await using var s = await Scenario.StartAsync(azurite, SearchingModel(), Settings(provider));

        var response = await s.PostAsync(SearchBody(stream: true));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var sse = await response.Content.ReadAsStringAsync(Ct);
        var parsed = SseGrammar.Validate(sse);

        Assert.Equal(["text", "server_tool_use", "web_search_tool_result", "text"], parsed.Blocks.Select(b => b.Type));
        var content = JsonNode.Parse(SseGrammar.ToContent(parsed))!.AsArray();
        Assert.Equal(Query, (string?)content[1]!["input"]!["query"]);
        var results = content[2]!["content"]!.AsArray();
        Assert.Equal(["https://news.example.com/page", "https://docs.example.com/page"], results.Select(r => (string)r!["url"]!));
        Assert.Equal("2026-11-30T00:00:00", (string?)results[0]!["page_age"]);
        Assert.Null(results[1]!["page_age"]);
        Assert.All(results, r => Assert.StartsWith("mws1.", (string)r!["encrypted_content"]!));
        Assert.Equal("From the results: news [1].", parsed.Blocks[3].Text.ToString());

        // "[1]" names the first result: the text block carries a web_search_result_location citation for it.
        var citation = Assert.Single(parsed.Blocks[3].Citations)!;
        Assert.Equal("https://news.example.com/page", (string?)citation["url"]);
        Assert.StartsWith("PAGE-TEXT-news.example.com", (string?)citation["cited_text"]);
        Assert.Equal("end_turn", (string?)parsed.MessageDelta!["delta"]!["stop_reason"]);
        Assert.Equal(1, (int)parsed.MessageDelta!["usage"]!["server_tool_use"]!["web_search_requests"]!);
        Assert.Equal(2500, (long)parsed.MessageDelta!["usage"]!["input_tokens"]!);
        Assert.Equal(27, (long)parsed.MessageDelta!["usage"]!["output_tokens"]!);
        Assert.Equal("0.010000000", (string?)parsed.MessageDelta!["billing_cost"]!["web_search"]);

        // The provider got the model's query, with the blocked domain as an operator.
        var search = Assert.Single(provider.Requests);
        var q = HttpUtility.ParseQueryString(new Uri("http://x" + search.Path).Query)["q"];
        Assert.Equal(Query + " -site:blocked.example.org", q);

        // The upstream was offered web_search as a function, then got the call and the results back.
        Assert.Equal(2, s.Upstream.Requests.Count);
        var first = s.Upstream.Requests.First().Json;
        var function = first.GetProperty("tools").EnumerateArray().Single().GetProperty("function");
        Assert.Equal("web_search", function.GetProperty("name").GetString());
        Assert.Equal("query", function.GetProperty("parameters").GetProperty("required")[0].GetString());
        var second = s.Upstream.Last;
        var assistant = second.Json.GetProperty("messages").EnumerateArray().Single(m => m.GetProperty("role").GetString() == "assistant");
        Assert.Equal("Let me search.", assistant.GetProperty("content").GetString());
        Assert.Equal(parsed.Blocks[1].Id, assistant.GetProperty("tool_calls")[0].GetProperty("id").GetString());
        var toolMessage = second.ToolMessages().Single();
        Assert.Equal(parsed.Blocks[1].Id, toolMessage.GetProperty("tool_call_id").GetString());
        var toolText = ScenarioExtensions.ContentText(toolMessage);
        Assert.Contains("PAGE-TEXT-news.example.com about " + q, toolText, StringComparison.Ordinal);
        Assert.DoesNotContain("PAGE-TEXT-blocked.example.org", toolText, StringComparison.Ordinal);

        // One billing row, with the search counted and priced into the total.
        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        var rows = await UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Count >= 1, TimeSpan.FromSeconds(30));
        var row = Assert.Single(rows);
        Assert.Equal(1, row.GetInt32("WebSearchRequests"));
        Assert.Equal(10_000_000, UsageTables.Long(row, "WebSearchCostNanos"));
        Assert.Equal(10_000_000, UsageTables.Long(row, "CostNanos"));
        Assert.Equal(2500, UsageTables.Long(row, "InputTokens"));
        Assert.Equal("end_turn", row.GetString("StopReason"));

        // The rollup counts the search: the cost report has its web_search line (the tokens are free here), the
        // usage report its search (docs/cost-report.md).
        await UsageTables.WaitForAsync(storage, TableNames.UsageDaily, r => r.Sum(d => UsageTables.Long(d, "Requests")) >= 1, TimeSpan.FromSeconds(30));
        var day = row.GetDateTimeOffset("StartedAt")!.Value.UtcDateTime.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
        using var costs = await s.Client.GetAsync($"/v1/organizations/cost_report?starting_at={day}T00:00:00Z&group_by[]=description", Ct);
        var costText = await costs.Content.ReadAsStringAsync(Ct);
        Assert.True(costs.StatusCode == HttpStatusCode.OK, costText);
        var line = Assert.Single(JsonNode.Parse(costText)!["data"]!.AsArray().SelectMany(b => b!["results"]!.AsArray()))!;
        Assert.Equal("web_search", (string?)line["cost_type"]);
        Assert.Null(line["token_type"]);
        Assert.Equal(row.GetString("UpstreamModel") + " Web Search", (string?)line["description"]);
        Assert.Equal("1", (string?)line["amount"]);   // $0.01 in cents
        using var usage = await s.Client.GetAsync($"/v1/organizations/usage_report/messages?starting_at={day}T00:00:00Z", Ct);
        var usageText = await usage.Content.ReadAsStringAsync(Ct);
        Assert.True(usage.StatusCode == HttpStatusCode.OK, usageText);
        var result = Assert.Single(JsonNode.Parse(usageText)!["data"]!.AsArray().SelectMany(b => b!["results"]!.AsArray()))!;
        Assert.Equal(1, (long)result["server_tool_use"]!["web_search_requests"]!);
    }

    [Fact]
    public async Task NonStreaming_search_and_a_second_turn_that_replays_the_results_to_the_upstream()
    {
        await using var provider = await SearxngAsync();
        await using var s = await Scenario.StartAsync(azurite, SearchingModel(), Settings(provider));

        var response = await s.PostAsync(SearchBody(stream: false));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var message = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;
        var content = message["content"]!.AsArray();
        Assert.Equal(["text", "server_tool_use", "web_search_tool_result", "text"], content.Select(b => (string)b!["type"]!));
        var serverId = (string)content[1]!["id"]!;
        Assert.StartsWith("srvtoolu_", serverId);
        Assert.Equal(serverId, (string?)content[2]!["tool_use_id"]);
        Assert.Equal(1, (int)message["usage"]!["server_tool_use"]!["web_search_requests"]!);
        Assert.Equal(2, content[2]!["content"]!.AsArray().Count);
        var upstreamToolText = ScenarioExtensions.ContentText(s.Upstream.Last.ToolMessages().Single());

        // Turn two: the client sends the whole assistant turn back (as Claude Code and the SDKs do).
        var messages = new JsonArray(
            new JsonObject { ["role"] = "user", ["content"] = "what is new in the melious gateway?" },
            new JsonObject { ["role"] = "assistant", ["content"] = content.DeepClone() },
            new JsonObject { ["role"] = "user", ["content"] = "thanks, summarize" });
        var again = await s.PostAsync(SearchBody(stream: false, messages: messages));
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Single(provider.Requests);

        var replayed = s.Upstream.Last.Json.GetProperty("messages").EnumerateArray().ToList();
        Assert.Equal(["user", "assistant", "tool", "assistant", "user"], replayed.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(serverId, replayed[1].GetProperty("tool_calls")[0].GetProperty("id").GetString());
        Assert.Equal(Query, JsonDocument.Parse(replayed[1].GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments").GetString()!).RootElement.GetProperty("query").GetString());
        Assert.Equal(serverId, replayed[2].GetProperty("tool_call_id").GetString());

        // The page text came back out of encrypted_content: the model reads exactly what it read in turn one.
        Assert.Equal(upstreamToolText, replayed[2].GetProperty("content").GetString());
        Assert.Contains("PAGE-TEXT-docs.example.com", upstreamToolText, StringComparison.Ordinal);
        Assert.Equal("From the results: news [1].", replayed[3].GetProperty("content").GetString());
        Assert.Equal("https://news.example.com/page", (string?)content[3]!["citations"]![0]!["url"]);
    }

    [Fact]
    public async Task Max_uses_is_enforced_and_the_last_round_gets_no_search_tool()
    {
        await using var provider = await SearxngAsync();
        // The model would search forever; max_uses 1 allows one search, the next call gets max_uses_exceeded, and the
        // third (last) round is offered no search tool.
        await using var s = await Scenario.StartAsync(azurite, SearchingModel(searches: 10), Settings(provider));

        var response = await s.PostAsync(SearchBody(stream: true, maxUses: 1));
        var parsed = SseGrammar.Validate(await response.Content.ReadAsStringAsync(Ct));
        Assert.Single(provider.Requests);
        var content = JsonNode.Parse(SseGrammar.ToContent(parsed))!.AsArray();
        var results = content.Where(b => (string?)b!["type"] == "web_search_tool_result").Select(b => b!["content"]!).ToList();
        Assert.Equal(3, results.Count);
        Assert.IsType<JsonArray>(results[0]);
        Assert.Equal("max_uses_exceeded", (string?)results[1]["error_code"]);
        Assert.Equal("max_uses_exceeded", (string?)results[2]["error_code"]);
        Assert.Equal(1, (int)parsed.MessageDelta!["usage"]!["server_tool_use"]!["web_search_requests"]!);
        Assert.Equal("end_turn", (string?)parsed.MessageDelta!["delta"]!["stop_reason"]);

        var requests = s.Upstream.Requests.ToList();
        Assert.Equal(3, requests.Count);
        Assert.True(requests[1].Json.TryGetProperty("tools", out _));
        Assert.False(requests[2].Json.TryGetProperty("tools", out _), "the last round must not offer web_search");
        Assert.Contains("max_uses_exceeded", ScenarioExtensions.ContentText(requests[2].ToolMessages().Last()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_provider_the_search_answers_unavailable_and_the_model_is_told()
    {
        await using var s = await Scenario.StartAsync(azurite, SearchingModel(), Settings(null));

        var response = await s.PostAsync(SearchBody(stream: true));
        var parsed = SseGrammar.Validate(await response.Content.ReadAsStringAsync(Ct));
        Assert.Equal(["text", "server_tool_use", "web_search_tool_result", "text"], parsed.Blocks.Select(b => b.Type));
        Assert.Equal("""{"type":"web_search_tool_result_error","error_code":"unavailable"}""", parsed.Blocks[2].Content!.ToJsonString());
        Assert.Null(parsed.MessageDelta!["usage"]!["server_tool_use"]);
        Assert.Null(parsed.MessageDelta!["billing_cost"]!["web_search"]);
        Assert.Contains("not available", ScenarioExtensions.ContentText(s.Upstream.Last.ToolMessages().Single()), StringComparison.Ordinal);

        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        var row = Assert.Single(await UsageTables.WaitForAsync(storage, TableNames.Billing, r => r.Count >= 1, TimeSpan.FromSeconds(30)));
        Assert.Equal(0, row.GetInt32("WebSearchRequests"));
    }

    /// <summary>
    /// An Ollama model's inline <c>&lt;think&gt;</c> reasoning is a thinking block in a search's answer too, as it is
    /// without the search tool (the search loop's translator was built without the model's reasoning mode).
    /// </summary>
    [Fact]
    public async Task Inline_think_tags_of_an_ollama_model_are_a_thinking_block_in_the_answer_after_a_search()
    {
        await using var provider = await SearxngAsync();
        var settings = Settings(provider);
        settings["Melious:Upstream:Flavor"] = "ollama";
        var search = SearchingModel();
        await using var s = await Scenario.StartAsync(azurite, (request, context) => request.ToolMessages().Any()
            ? Sse.WriteAsync(context, [Sse.Role(), Sse.Content("<think>weighing the results"), Sse.Content("</think>From the results."), Sse.Finish("stop"), Sse.Usage(1500, 7)])
            : search(request, context), settings);

        var response = await s.PostAsync(SearchBody(stream: true));
        var parsed = SseGrammar.Validate(await response.Content.ReadAsStringAsync(Ct));
        Assert.Equal(["text", "server_tool_use", "web_search_tool_result", "thinking", "text"], parsed.Blocks.Select(b => b.Type));
        var content = JsonNode.Parse(SseGrammar.ToContent(parsed))!.AsArray();
        Assert.Equal("weighing the results", (string?)content[3]!["thinking"]);
        Assert.Equal("From the results.", (string?)content[4]!["text"]);
    }

    [Fact]
    public async Task A_request_without_the_server_tool_is_not_offered_web_search()
    {
        await using var provider = await SearxngAsync();
        await using var s = await Scenario.StartAsync(azurite, SearchingModel(searches: 0), Settings(provider));
        var response = await s.PostAsync(Scenario.Body(stream: true));
        SseGrammar.Validate(await response.Content.ReadAsStringAsync(Ct));
        Assert.False(s.Upstream.Last.Json.TryGetProperty("tools", out _));
        Assert.Empty(provider.Requests);
    }

    [Fact]
    public async Task Brave_gets_the_key_from_its_setting_reference_and_the_country()
    {
        await using var brave = await ScriptedUpstream.StartAsync(async (request, context) =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""
                {"type":"search","web":{"type":"search","results":[{"title":"Brave <strong>hit</strong>","url":"https://news.example.com/b","description":"PAGE-TEXT-news.example.com from <strong>Brave</strong>","page_age":"2026-12-01T08:00:00"}]}}
                """, Ct);
        });
        var settings = Settings(brave);
        settings["Melious:Search:Provider"] = "brave";
        settings["Melious:Search:ApiKeySetting"] = "config:Test:BraveKey";
        settings["Test:BraveKey"] = "brave-secret-0123456789";
        await using var s = await Scenario.StartAsync(azurite, SearchingModel(), settings);

        var body = SearchBody(stream: false);
        body["tools"]![0]!["user_location"] = new JsonObject { ["type"] = "approximate", ["city"] = "Berlin", ["country"] = "DE" };
        var response = await s.PostAsync(body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var content = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!["content"]!.AsArray();
        var result = content[2]!["content"]![0]!;
        Assert.Equal("Brave hit", (string?)result["title"]);
        Assert.Equal("2026-12-01T08:00:00", (string?)result["page_age"]);
        Assert.Equal("From the results: news [1].", (string?)content[3]!["text"]);

        var search = Assert.Single(brave.Requests);
        Assert.StartsWith("/res/v1/web/search?", search.Path, StringComparison.Ordinal);
        var query = HttpUtility.ParseQueryString(new Uri("http://x" + search.Path).Query);
        Assert.Equal(Query + " -site:blocked.example.org", query["q"]);
        Assert.Equal("de", query["country"]);
        Assert.Equal("brave-secret-0123456789", search.Headers["x-subscription-token"]);

        // The key never reaches the client, the model or a log line.
        Assert.DoesNotContain(s.Upstream.Requests, r => r.BodyText.Contains("brave-secret", StringComparison.Ordinal));
        Assert.DoesNotContain(s.Gateway.Logs.Lines, l => l.Contains("brave-secret", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Tavily_gets_the_domain_lists_and_a_bearer_key()
    {
        await using var tavily = await ScriptedUpstream.StartAsync(async (request, context) =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""
                {"query":"q","results":[{"title":"Tavily hit","url":"https://news.example.com/t","content":"PAGE-TEXT-news.example.com via Tavily","score":0.8}],"response_time":0.4}
                """, Ct);
        });
        var settings = Settings(tavily);
        settings["Melious:Search:Provider"] = "tavily";
        settings["Melious:Search:ApiKeySetting"] = "Test:TavilyKey";
        settings["Test:TavilyKey"] = "tvly-secret";
        await using var s = await Scenario.StartAsync(azurite, SearchingModel(), settings);

        var body = SearchBody(stream: true);
        body["tools"]![0]!["allowed_domains"] = new JsonArray("example.com");
        var parsed = SseGrammar.Validate(await (await s.PostAsync(body)).Content.ReadAsStringAsync(Ct));
        Assert.Equal("https://news.example.com/t", (string?)parsed.Blocks[2].Content![0]!["url"]);

        var search = Assert.Single(tavily.Requests);
        Assert.Equal(("POST", "/search"), (search.Method, search.Path));
        Assert.Equal("Bearer tvly-secret", search.Headers["authorization"]);
        var json = search.Json;
        Assert.Equal(Query, json.GetProperty("query").GetString());
        Assert.Equal("example.com", json.GetProperty("include_domains")[0].GetString());
        Assert.Equal("blocked.example.org", json.GetProperty("exclude_domains")[0].GetString());
    }
}

using System.Net;
using System.Text.RegularExpressions;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>
/// Claude Code's gateway model discovery (CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1) calls GET /v1/models?limit=1000
/// and keeps ids matching /(claude|anthropic)/i (checked in the 2.1.332 binary): every catalog model gets such an alias,
/// with its display name, and the alias routes to that model.
/// </summary>
public sealed class ModelDiscoveryTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task EveryCatalogModel_IsListedUnderAClaudeAlias_ThatRoutesToIt()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var list = await s.JsonAsync(await s.Client.GetAsync("/v1/models?limit=1000", Ct));
        var kept = list.GetProperty("data").EnumerateArray()
            .Where(m => Regex.IsMatch(m.GetProperty("id").GetString()!, "(claude|anthropic)", RegexOptions.IgnoreCase))
            .ToDictionary(m => m.GetProperty("id").GetString()!, m => m.GetProperty("display_name").GetString());
        foreach (var model in new[] { "main-model", "secondary-model", "light-model" })
        {
            Assert.True(kept.ContainsKey("claude-melious-" + model), string.Join(", ", kept.Keys));
            Assert.Equal(model, kept["claude-melious-" + model]);
        }

        var response = await s.PostAsync(Scenario.Body("claude-melious-light-model"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("claude-melious-light-model", (await s.JsonAsync(response)).GetProperty("model").GetString());
        Assert.Equal("light-model", s.Upstream.Requests.Last().Json.GetProperty("model").GetString());

        var single = await s.Client.GetAsync("/v1/models/claude-melious-main-model", Ct);
        Assert.Equal(HttpStatusCode.OK, single.StatusCode);
    }

    [Fact]
    public async Task ThePrefixIsConfigurable_AndEmptyTurnsItOff()
    {
        await using (var s = await Scenario.StartAsync(azurite, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["ok"])), new Dictionary<string, string?> { ["Melious:Models:DiscoveryPrefix"] = "claude-acme-" }))
        {
            var list = await s.JsonAsync(await s.Client.GetAsync("/v1/models?limit=1000", Ct));
            var ids = list.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
            Assert.Contains("claude-acme-main-model", ids);
            Assert.DoesNotContain("claude-melious-main-model", ids);
        }

        await using (var s = await Scenario.StartAsync(azurite, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["ok"])), new Dictionary<string, string?> { ["Melious:Models:DiscoveryPrefix"] = "" }))
        {
            var list = await s.JsonAsync(await s.Client.GetAsync("/v1/models?limit=1000", Ct));
            Assert.DoesNotContain(list.GetProperty("data").EnumerateArray(), m => m.GetProperty("id").GetString()!.StartsWith("claude-melious-", StringComparison.Ordinal));
        }
    }
}

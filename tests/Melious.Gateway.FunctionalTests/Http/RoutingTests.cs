using System.Net;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>Model resolution against the real <c>models</c> table in Azurite.</summary>
public sealed class RoutingTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("claude-opus-4-8", "main-model")]
    [InlineData("claude-sonnet-5", "secondary-model")]
    [InlineData("claude-haiku-4-5-20251001", "light-model")]
    [InlineData("qwen3-coder:30b", "qwen3-coder:30b")]
    public async Task SeededTiers_RouteByName_AndResponsesKeepTheClientName(string requested, string upstream)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var json = await s.JsonAsync(await s.PostAsync(Scenario.Body(model: requested)));
        Assert.Equal(requested, json.GetProperty("model").GetString());
        Assert.Equal(upstream, s.Upstream.Last.Json.GetProperty("model").GetString());
        Assert.DoesNotContain(upstream == requested ? "\u0000" : upstream, json.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task EmptyTable_IsSeededFromConfiguration()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var entities = await s.Gateway.Services.GetRequiredService<ModelCatalogStore>().ListRawAsync(Ct);
        Assert.Contains(entities, e => e.PartitionKey == "tier" && e.RowKey == "opus" && (string)e["Model"] == "main-model");
        Assert.Contains(entities, e => e.PartitionKey == "upstream" && e.RowKey == "default" && ((string)e["BaseUrl"]).EndsWith("/v1", StringComparison.Ordinal));
        Assert.Contains(entities, e => e.PartitionKey == "model" && (string)e["Id"] == "secondary-model");
    }

    [Fact]
    public async Task TableChanges_ApplyWithoutRestart()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["ok"])), new Dictionary<string, string?> { ["Melious:Catalog:RefreshInterval"] = "00:00:00.300" });
        var store = s.Gateway.Services.GetRequiredService<ModelCatalogStore>();
        await store.SetTierAsync("sonnet", "brand-new-model", Ct);
        await store.SetAliasAsync("claude-team-special", "aliased-model", Ct);

        // The background refresh (every 300 ms here) picks both changes up without a restart. A refresh is a storage
        // round trip that on a loaded machine can outlast a fixed wait, so ask (bounded) until both apply.
        async Task<string?> RoutedToAsync(string model)
        {
            using var response = await s.PostAsync(Scenario.Body(model: model));
            await response.Content.ReadAsStringAsync(Ct);
            return s.Upstream.Last.Json.GetProperty("model").GetString();
        }

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var tier = await RoutedToAsync("claude-sonnet-4-5");
            var alias = await RoutedToAsync("claude-team-special");
            if ((tier == "brand-new-model" && alias == "aliased-model") || DateTime.UtcNow >= deadline)
            {
                Assert.Equal("brand-new-model", tier);
                Assert.Equal("aliased-model", alias);
                break;
            }

            await Task.Delay(200, Ct);
        }
    }

    [Fact]
    public async Task CatalogEntry_SetsLimitsAndUpstream()
    {
        await using var other = await ScriptedUpstream.OpenAIAsync(Sse.TextAnswer(["from the other server"]));
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var store = s.Gateway.Services.GetRequiredService<ModelCatalogStore>();
        await store.UpsertModelAsync("big-model", new Dictionary<string, object?> { ["BaseUrl"] = other.OpenAIBaseUrl, ["MaxOutputTokens"] = 1234L, ["ContextWindow"] = 8192L }, Ct);
        await store.SetTierAsync("opus", "big-model", Ct);
        await s.Gateway.RefreshCatalogAsync();

        var json = await s.JsonAsync(await s.PostAsync(Scenario.Body(model: "claude-opus-4-8", maxTokens: 64000)));
        Assert.Equal("from the other server", json.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(1234, other.Last.Json.GetProperty("max_tokens").GetInt64());
        Assert.Empty(s.Upstream.Requests);
    }

    [Fact]
    public async Task PromptClearlyOverTheWindow_Gets400_WithoutAnUpstreamCall()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var store = s.Gateway.Services.GetRequiredService<ModelCatalogStore>();
        await store.UpsertModelAsync("secondary-model", new Dictionary<string, object?> { ["ContextWindow"] = 2000L }, Ct);
        await s.Gateway.RefreshCatalogAsync();

        var response = await s.PostAsync(Scenario.Body(prompt: string.Join(' ', Enumerable.Repeat("word", 5000))));
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", "prompt is too long");
        Assert.Empty(s.Upstream.Requests);
    }
}

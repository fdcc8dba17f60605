using System.Net;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>
/// Model resolution against the real <c>models</c> table in Azurite, on both hosts. Catalog edits go through the
/// storage-side store and are awaited until the gateway serves them (<see cref="CatalogKit"/>); on the shared Functions
/// host each test edits names of its own and puts back (or removes) what it changed.
/// </summary>
public abstract class RoutingTests(IGatewayTarget target)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("claude-opus-4-8", "main-model")]
    [InlineData("claude-sonnet-5", "secondary-model")]
    [InlineData("claude-haiku-4-5-20251001", "light-model")]
    [InlineData("qwen3-coder:30b", "qwen3-coder:30b")]
    public async Task SeededTiers_RouteByName_AndResponsesKeepTheClientName(string requested, string upstream)
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        var json = await s.JsonAsync(await s.PostAsync(Scenario.Body(model: requested)));
        Assert.Equal(requested, json.GetProperty("model").GetString());
        Assert.Equal(upstream, s.Upstream.Last.Json.GetProperty("model").GetString());
        Assert.DoesNotContain(upstream == requested ? "\u0000" : upstream, json.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task EmptyTable_IsSeededFromConfiguration()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        var entities = await s.Catalog().ListRawAsync(Ct);
        Assert.Contains(entities, e => e.PartitionKey == "tier" && e.RowKey == "opus" && (string)e["Model"] == "main-model");
        Assert.Contains(entities, e => e.PartitionKey == "upstream" && e.RowKey == "default" && ((string)e["BaseUrl"]).EndsWith("/v1", StringComparison.Ordinal));
        Assert.Contains(entities, e => e.PartitionKey == "model" && (string)e["Id"] == "secondary-model");
    }

    [Fact]
    public async Task TableChanges_ApplyWithoutRestart()
    {
        // The background refresh picks both changes up without a restart: every 300 ms on this self-host, every second
        // on the shared Functions host (FunctionsHostFixture.Settings), where settings of a test's own cannot apply.
        var settings = target.Kind == HostKind.SelfHost ? new Dictionary<string, string?> { ["Melious:Catalog:RefreshInterval"] = "00:00:00.300" } : null;
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["ok"])), settings);
        var store = s.Catalog();
        var newModel = CatalogKit.Unique("brand-new-model");
        var alias = CatalogKit.Unique("claude-team-special");
        try
        {
            await store.SetTierAsync("sonnet", newModel, Ct);
            await store.SetAliasAsync(alias, "aliased-model", Ct);

            // A refresh is a storage round trip that on a loaded machine can outlast a fixed wait, so ask (bounded)
            // until both apply.
            async Task<string?> RoutedToAsync(string model)
            {
                using var response = await s.PostAsync(Scenario.Body(model: model));
                await response.Content.ReadAsStringAsync(Ct);
                return s.Upstream.Last.Json.GetProperty("model").GetString();
            }

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
            while (true)
            {
                var tier = await RoutedToAsync("claude-sonnet-4-5");
                var aliased = await RoutedToAsync(alias);
                if ((tier == newModel && aliased == "aliased-model") || DateTime.UtcNow >= deadline)
                {
                    Assert.Equal(newModel, tier);
                    Assert.Equal("aliased-model", aliased);
                    break;
                }

                await Task.Delay(200, Ct);
            }
        }
        finally
        {
            // The shared Functions host keeps its catalog for the rest of the run: the seeded sonnet tier back, the
            // alias gone, and both seen by the worker before the next test.
            await store.SetTierAsync("sonnet", "secondary-model", CancellationToken.None);
            await store.DeleteAliasAsync(alias, CancellationToken.None);
            await s.AwaitCatalogAsync("claude-sonnet-4-5", m => CatalogKit.ResolvesTo(m) == "secondary-model");
            await s.AwaitCatalogAsync(alias, m => m is null);
        }
    }

    [Fact]
    public async Task CatalogEntry_SetsLimitsAndUpstream()
    {
        await using var other = await ScriptedUpstream.OpenAIAsync(Sse.TextAnswer(["from the other server"]));
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        var store = s.Catalog();
        var model = CatalogKit.Unique("big-model");
        var alias = CatalogKit.Unique("claude-big");
        try
        {
            await store.UpsertModelAsync(model, new Dictionary<string, object?> { ["BaseUrl"] = other.OpenAIBaseUrl, ["MaxOutputTokens"] = 1234L, ["ContextWindow"] = 8192L }, Ct);
            await store.SetAliasAsync(alias, model, Ct);
            await s.AwaitCatalogAsync(alias, m => CatalogKit.ResolvesTo(m) == model && CatalogKit.ContextWindow(m) == 8192);

            var json = await s.JsonAsync(await s.PostAsync(Scenario.Body(model: alias, maxTokens: 64000)));
            Assert.Equal("from the other server", json.GetProperty("content")[0].GetProperty("text").GetString());
            Assert.Equal(model, other.Last.Json.GetProperty("model").GetString());
            Assert.Equal(1234, other.Last.Json.GetProperty("max_tokens").GetInt64());
            Assert.Empty(s.Upstream.Requests);
        }
        finally
        {
            await store.DeleteAliasAsync(alias, CancellationToken.None);
            await store.DeleteModelAsync(model, CancellationToken.None);
        }
    }

    [Fact]
    public async Task PromptClearlyOverTheWindow_Gets400_WithoutAnUpstreamCall()
    {
        await using var s = await Scenario.StartAsync(target, Sse.TextAnswer(["ok"]));
        var store = s.Catalog();
        var model = CatalogKit.Unique("small-window-model");
        try
        {
            await store.UpsertModelAsync(model, new Dictionary<string, object?> { ["ContextWindow"] = 2000L }, Ct);
            await s.AwaitCatalogAsync(model, m => CatalogKit.ContextWindow(m) == 2000);

            var response = await s.PostAsync(Scenario.Body(model: model, prompt: string.Join(' ', Enumerable.Repeat("word", 5000))));
            await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", "prompt is too long");
            Assert.Empty(s.Upstream.Requests);
        }
        finally
        {
            await store.DeleteModelAsync(model, CancellationToken.None);
        }
    }
}

/// <summary>The tests of <see cref="RoutingTests"/> against the self-host.</summary>
public sealed class RoutingTestsOnSelfHost(AzuriteFixture azurite) : RoutingTests(azurite);

/// <summary>The tests of <see cref="RoutingTests"/> against the Functions app under the real Functions host.</summary>
[Collection(FunctionsHostCollection.Name)]
public sealed class RoutingTestsOnFunctionsHost(FunctionsHostFixture host) : RoutingTests(host);

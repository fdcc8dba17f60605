using Melious.Gateway.Routing;

namespace Melious.Gateway.Tests.Routing;

public sealed class ModelRouterTests
{
    private static readonly ModelEntry Default = new() { Id = "", BaseUrl = "http://default/v1", InCatalog = false };

    private static CatalogSnapshot Snapshot() => new(
        [
            new ModelEntry { Id = "Qwen3-Coder-30B", BaseUrl = "http://gpu1/v1" },
            new ModelEntry { Id = "gpt-oss-120b", BaseUrl = "http://gpu2/v1" },
        ],
        new Dictionary<string, string> { ["claude-fast"] = "gpt-oss-120b", ["my-opus-special"] = "gpt-oss-120b" },
        new Dictionary<string, string> { ["opus"] = "gpt-oss-120b", ["sonnet"] = "Qwen3-Coder-30B", ["haiku"] = "tiny-model" },
        Default,
        DateTimeOffset.UtcNow,
        fromStorage: true);

    [Theory]
    [InlineData("qwen3-coder-30b", "Qwen3-Coder-30B", RouteKind.Exact)]
    [InlineData("CLAUDE-FAST", "gpt-oss-120b", RouteKind.Alias)]
    [InlineData("my-opus-special", "gpt-oss-120b", RouteKind.Alias)]
    [InlineData("claude-opus-4-8", "gpt-oss-120b", RouteKind.Tier)]
    [InlineData("claude-sonnet-4-5-20250929", "Qwen3-Coder-30B", RouteKind.Tier)]
    [InlineData("Claude-Sonnet-5", "Qwen3-Coder-30B", RouteKind.Tier)]
    [InlineData("claude-haiku-4-5-20251001", "tiny-model", RouteKind.Tier)]
    [InlineData("anthropic/claude-opus-4-8", "gpt-oss-120b", RouteKind.Tier)]
    [InlineData("claude-opus-4-8[1m]", "gpt-oss-120b", RouteKind.Tier)]
    [InlineData("llama3.2:3b", "llama3.2:3b", RouteKind.PassThrough)]
    public void Resolve_FollowsPrecedence(string requested, string upstream, RouteKind kind)
    {
        var route = ModelRouter.Resolve(Snapshot(), requested);

        Assert.Equal(requested, route.RequestedModel);
        Assert.Equal(upstream, route.Model.Id);
        Assert.Equal(kind, route.Kind);
    }

    [Fact]
    public void Resolve_TierTargetOutsideCatalog_UsesDefaultUpstream()
    {
        var route = ModelRouter.Resolve(Snapshot(), "claude-haiku-4-5");
        Assert.Equal("http://default/v1", route.Model.BaseUrl);
        Assert.False(route.Model.InCatalog);
    }

    [Fact]
    public void Resolve_PassThrough_KeepsTheNameAsIs()
    {
        var route = ModelRouter.Resolve(Snapshot(), "  Some/Model:Q4  ");
        Assert.Equal("  Some/Model:Q4  ", route.Model.Id);
        Assert.Equal(RouteKind.PassThrough, route.Kind);
    }

    [Fact]
    public void Resolve_WithoutTiers_PassesTierNamesThrough()
    {
        var snapshot = new CatalogSnapshot([], new Dictionary<string, string>(), new Dictionary<string, string>(), Default, DateTimeOffset.UtcNow, true);
        var route = ModelRouter.Resolve(snapshot, "claude-opus-4-8");
        Assert.Equal(RouteKind.PassThrough, route.Kind);
        Assert.Equal("claude-opus-4-8", route.Model.Id);
    }

    [Theory]
    [InlineData("qwen3-coder-30b-a3b-instruct", 3.3, 30.5, 16)]
    [InlineData("Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8", 35, 480, 8)]
    [InlineData("openai/gpt-oss-120b", 5.1, 117, 4)]
    [InlineData("llama3.1:8b-instruct-q4_K_M", 8, 8, 4)]
    public void KnownModels_GuessEnergyProfiles(string id, double active, double total, int bits)
    {
        var profile = KnownModels.Guess(id.Replace("llama3.1:8b", "llama-3.1-8b", StringComparison.Ordinal));
        Assert.NotNull(profile);
        Assert.Equal(active, profile.ActiveParamsB);
        Assert.Equal(total, profile.TotalParamsB);
        Assert.Equal(bits, profile.QuantBits);
    }

    [Fact]
    public void KnownModels_UnknownName_IsNull() => Assert.Null(KnownModels.Guess("my-private-model"));
}

public sealed class DiscoveryAliasTests
{
    [Fact]
    public void Slugs_use_the_last_segment_unless_two_models_share_it()
    {
        var aliases = CatalogSnapshot.DiscoveryAliasesOf(
            [
                new ModelEntry { Id = "Qwen/Qwen3-Coder-480B-A35B-Instruct", BaseUrl = "http://a" },
                new ModelEntry { Id = "qwen3-coder:30b", BaseUrl = "http://a" },
                new ModelEntry { Id = "a/gpt-oss-120b", BaseUrl = "http://a" },
                new ModelEntry { Id = "b/gpt-oss-120b", BaseUrl = "http://a" },
            ],
            "claude-melious-");
        Assert.Equal("Qwen/Qwen3-Coder-480B-A35B-Instruct", aliases["claude-melious-qwen3-coder-480b-a35b-instruct"]);
        Assert.Equal("qwen3-coder:30b", aliases["claude-melious-qwen3-coder-30b"]);
        Assert.Equal("a/gpt-oss-120b", aliases["claude-melious-a-gpt-oss-120b"]);
        Assert.Equal("b/gpt-oss-120b", aliases["claude-melious-b-gpt-oss-120b"]);
        Assert.Empty(CatalogSnapshot.DiscoveryAliasesOf([new ModelEntry { Id = "m", BaseUrl = "http://a" }], ""));
    }

    [Fact]
    public void A_discovery_alias_resolves_before_the_tier_rule()
    {
        var model = new ModelEntry { Id = "my-haiku-special", BaseUrl = "http://a" };
        var snapshot = new CatalogSnapshot([model], new Dictionary<string, string>(), new Dictionary<string, string> { ["haiku"] = "other" }, new ModelEntry { Id = "", BaseUrl = "http://d", InCatalog = false }, DateTimeOffset.UtcNow, true, "claude-melious-");
        var route = ModelRouter.Resolve(snapshot, "claude-melious-my-haiku-special");
        Assert.Equal(RouteKind.Alias, route.Kind);
        Assert.Same(model, route.Model);
    }
}

using Melious.Gateway.Routing;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Tests.Routing;

public sealed class KnownModelsTests
{
    public static TheoryData<string, double, double, int> RealIds => new()
    {
        // As vLLM / SGLang (Hugging Face ids), Ollama (name:tag), llama.cpp, OpenRouter/Groq/DeepSeek name them.
        { "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8", 35, 480, 8 },
        { "Qwen/Qwen3-Coder-480B-A35B-Instruct", 35, 480, 8 },
        { "qwen3-coder:30b", 3.3, 30.5, 4 },
        { "Qwen/Qwen3-Coder-30B-A3B-Instruct", 3.3, 30.5, 16 },
        { "qwen/qwen3-coder", 3.3, 30.5, 16 },
        { "Qwen/Qwen3-235B-A22B-Instruct-2507", 22, 235, 16 },
        { "qwen3:8b", 8.2, 8.2, 4 },
        { "gpt-oss-120b", 5.1, 117, 4 },
        { "openai/gpt-oss-20b", 3.6, 21, 4 },
        { "gpt-oss:120b", 5.1, 117, 4 },
        { "deepseek-ai/DeepSeek-V3.1", 37, 671, 8 },
        { "deepseek-ai/DeepSeek-R1-0528", 37, 671, 8 },
        { "deepseek-chat", 37, 671, 8 },
        { "deepseek-r1:32b", 32.8, 32.8, 4 },
        { "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", 70.6, 70.6, 16 },
        { "moonshotai/Kimi-K2-Instruct-0905", 32, 1000, 8 },
        { "moonshotai/kimi-k2-thinking", 32, 1000, 4 },
        { "zai-org/GLM-4.5-Air-FP8", 12, 106, 8 },
        { "zai-org/GLM-4.6", 32, 355, 16 },
        { "meta-llama/Llama-3.3-70B-Instruct", 70.6, 70.6, 16 },
        { "llama3.3:70b", 70.6, 70.6, 4 },
        { "llama-3.1-8b-instant", 8, 8, 16 },
        { "meta-llama/llama-4-scout-17b-16e-instruct", 17, 109, 16 },
        { "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8", 17, 400, 8 },
        { "mistralai/Devstral-Small-2507", 24, 24, 16 },
        { "codestral-latest", 22, 22, 16 },
        { "mistralai/Mistral-Small-3.2-24B-Instruct-2506", 24, 24, 16 },
        { "google/gemma-3-27b-it", 27, 27, 16 },
        { "gemma3:12b", 12, 12, 4 },
        { "unsloth/Qwen3-Coder-30B-A3B-Instruct-GGUF:Q8_0", 3.3, 30.5, 8 },
    };

    [Theory]
    [MemberData(nameof(RealIds))]
    public void RealIds_MatchTheTable(string id, double active, double total, int bits)
    {
        var profile = KnownModels.Infer(id);
        Assert.NotNull(profile);
        Assert.Equal(active, profile.ActiveParamsB);
        Assert.Equal(total, profile.TotalParamsB);
        Assert.Equal(bits, profile.QuantBits);
        Assert.Equal(EnergySources.KnownModel, profile.Source);
    }

    [Theory]
    [InlineData("acme/House-Coder-70B-Instruct", 70, 70)]
    [InlineData("my-moe-120b-a12b", 12, 120)]
    [InlineData("DeepSeek-R1-Distill-Qwen-1.5B", 1.5, 1.5)]
    public void UnknownNames_WithSizes_AreParsed(string id, double active, double total)
    {
        var profile = KnownModels.Infer(id);
        Assert.NotNull(profile);
        Assert.Equal(active, profile.ActiveParamsB);
        Assert.Equal(total, profile.TotalParamsB);
        Assert.Equal(EnergySources.ParsedName, profile.Source);
    }

    [Theory]
    [InlineData("house-model-v2")]
    [InlineData("claude-sonnet-4-5-20250929")]
    [InlineData("mixtral-8x7")]
    [InlineData("gemma-3-270m")]
    [InlineData("qwen3:30b[1m]x")]
    public void UnknownIds_StayUnknown(string id)
    {
        if (id == "qwen3:30b[1m]x")
        {
            // A known family with a context suffix is still matched; nothing invents a size from "1m".
            Assert.Equal(30.5, KnownModels.Infer(id)!.TotalParamsB);
            return;
        }

        Assert.Null(KnownModels.Infer(id));
        var estimate = EnergyModel.Estimate(KnownModels.Infer(id), RegionFactors.For("westeurope"), 1000, 0, 500, 1e9);
        Assert.Equal("unknown", estimate.Method);
        Assert.Equal(EnergySources.Unknown, estimate.Source);
        Assert.Null(estimate.EnergyWh);
    }

    [Fact]
    public void InferredSources_HaveWiderRanges_ThanOperatorEntered()
    {
        var region = RegionFactors.For("westeurope");
        var entered = EnergyModel.Estimate(new EnergyProfile(3.3, 30.5), region, 1000, 0, 500, 1e9);
        var table = EnergyModel.Estimate(new EnergyProfile(3.3, 30.5, Source: EnergySources.KnownModel), region, 1000, 0, 500, 1e9);
        var parsed = EnergyModel.Estimate(new EnergyProfile(3.3, 30.5, Source: EnergySources.ParsedName), region, 1000, 0, 500, 1e9);

        Assert.Equal(entered.EnergyWh, table.EnergyWh);
        Assert.Equal(EnergySources.Catalog, entered.Source);
        Assert.Equal(EnergySources.KnownModel, table.Source);
        Assert.True(table.EnergyWhMin < entered.EnergyWhMin && table.EnergyWhMax > entered.EnergyWhMax);
        Assert.True(parsed.EnergyWhMin < table.EnergyWhMin && parsed.EnergyWhMax > table.EnergyWhMax);
        Assert.True(parsed.Gco2eMax > table.Gco2eMax);
    }

    [Fact]
    public void CatalogParameters_Win_OverTheTable()
    {
        var entered = new ModelEntry { Id = "Qwen/Qwen3-Coder-480B-A35B-Instruct", BaseUrl = "http://x", Energy = new EnergyProfile(40, 500, 16) };
        Assert.Same(entered.Energy, UsageCalculator.ProfileOf(entered));
        var bare = entered with { Energy = null };
        Assert.Equal(35, UsageCalculator.ProfileOf(bare)!.ActiveParamsB);
    }

    [Fact]
    public void EveryTableEntry_HasASourceAndSaneNumbers()
    {
        foreach (var e in KnownModels.Table)
        {
            Assert.False(string.IsNullOrWhiteSpace(e.Source), e.Pattern);
            Assert.InRange(e.Active, 0.1, e.Total);
            Assert.Contains(e.QuantBits, new[] { 4, 8, 16 });
            // Each entry is reachable: no earlier entry shadows it.
            Assert.Same(e, KnownModels.Match(e.Pattern));
        }
    }
}

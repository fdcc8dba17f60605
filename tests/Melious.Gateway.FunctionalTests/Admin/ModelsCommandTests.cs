using System.Text.Json;
using Azure.Data.Tables;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Routing;
using Melious.Gateway.Storage;

namespace Melious.Gateway.FunctionalTests.Admin;

public sealed class ModelsCommandTests(AzuriteFixture azurite)
{
    private const string LiteralSecret = "sk-upstream-LITERAL-0123456789";
    private const string ConfigSecret = "sk-upstream-CONFIG-9876543210";
    private const string EnvSecret = "sk-upstream-ENV-5555555555";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Set_WritesTheGivenPropertiesWithTheTypesTheCatalogReads()
    {
        await using var admin = new AdminHarness(azurite);

        var result = await admin.RunAsync(
            "models", "set", "Qwen3-Coder-30B",
            "--base-url", "http://10.0.0.5:8000/v1/",
            "--protocol", "anthropic",
            "--flavor", "sglang",
            "--api-key-ref", "env:QWEN_KEY",
            "--context-window", "262144",
            "--max-output", "65536",
            "--tool-use", "false",
            "--vision", "true",
            "--thinking", "false",
            "--input-price", "0.60",
            "--output-price", "0.9",
            "--cache-read-price", "0.06",
            "--cache-write-price", "0.75",
            "--currency", "eur",
            "--price-version", "2025-08-01",
            "--active-params", "3.3",
            "--total-params", "30.5",
            "--quant-bits", "8",
            "--joules-per-token", "0.25",
            "--gpu-count", "2",
            "--display-name", "Qwen3 Coder 30B");

        Assert.True(result.ExitCode == 0, result.ToString());
        var row = (await admin.Table(TableNames.Models).GetEntityAsync<TableEntity>(ModelCatalogStore.ModelPartition, "qwen3-coder-30b", cancellationToken: Ct)).Value;
        Assert.Equal("Qwen3-Coder-30B", row["Id"]);
        Assert.Equal("http://10.0.0.5:8000/v1", row["BaseUrl"]);
        Assert.Equal("anthropic", row["Protocol"]);
        Assert.Equal("sglang", row["Flavor"]);
        Assert.Equal("env:QWEN_KEY", row["ApiKeyRef"]);
        Assert.Equal(262144L, row["ContextWindow"]);
        Assert.Equal(65536L, row["MaxOutputTokens"]);
        Assert.Equal(false, row["ToolUse"]);
        Assert.Equal(true, row["Vision"]);
        Assert.Equal(false, row["Thinking"]);
        Assert.Equal("0.60", row["InputPrice"]);
        Assert.Equal("0.9", row["OutputPrice"]);
        Assert.Equal("0.06", row["CacheReadPrice"]);
        Assert.Equal("0.75", row["CacheWritePrice"]);
        Assert.Equal("EUR", row["Currency"]);
        Assert.Equal("2025-08-01", row["PriceVersion"]);
        Assert.Equal(3.3, row["ActiveParamsB"]);
        Assert.Equal(30.5, row["TotalParamsB"]);
        Assert.Equal(8, row["QuantBits"]);
        Assert.Equal(0.25, row["JoulesPerOutputToken"]);
        Assert.Equal(2, row["GpuCount"]);
        Assert.Equal("Qwen3 Coder 30B", row["DisplayName"]);
        Assert.False(row.ContainsKey("ApiKey"));

        var entry = (await admin.Get<ModelCatalogStore>().LoadAsync(Ct)).Models["qwen3-coder-30b"];
        Assert.Equal("http://10.0.0.5:8000/v1", entry.BaseUrl);
        Assert.Equal(Protocols.Anthropic, entry.Protocol);
        Assert.Equal(262144, entry.ContextWindow);
        Assert.False(entry.ToolUse);
        Assert.True(entry.Vision);
        Assert.Equal(new PriceCard(0.60m, 0.9m, 0.06m, 0.75m, "EUR", "2025-08-01"), entry.Prices);
        Assert.Equal(new EnergyProfile(3.3, 30.5, 8, 0.25, 2, EnergySources.Measured), entry.Energy);
        Assert.Equal("Qwen3 Coder 30B", entry.DisplayName);

        // A second set merges: only the output price changes.
        Assert.Equal(0, (await admin.RunAsync("models", "set", "qwen3-coder-30b", "--output-price", "1.20")).ExitCode);
        entry = (await admin.Get<ModelCatalogStore>().LoadAsync(Ct)).Models["qwen3-coder-30b"];
        Assert.Equal(new PriceCard(0.60m, 1.20m, 0.06m, 0.75m, "EUR", "2025-08-01"), entry.Prices);
        Assert.Equal("http://10.0.0.5:8000/v1", entry.BaseUrl);
        Assert.Equal(new EnergyProfile(3.3, 30.5, 8, 0.25, 2, EnergySources.Measured), entry.Energy);
    }

    [Fact]
    public async Task AliasesTiersAndDelete_AreReadBackThroughTheCatalog()
    {
        await using var admin = new AdminHarness(azurite);
        var store = admin.Get<ModelCatalogStore>();
        Assert.Equal(0, (await admin.RunAsync("models", "set", "glm-4.6", "--input-price", "0.5")).ExitCode);
        Assert.Equal(0, (await admin.RunAsync("models", "set", "gpt-oss-20b")).ExitCode);

        Assert.Equal(0, (await admin.RunAsync("models", "alias", "Coder", "glm-4.6")).ExitCode);
        Assert.Equal(0, (await admin.RunAsync("tiers", "set", "opus", "glm-4.6")).ExitCode);
        Assert.Equal(0, (await admin.RunAsync("tiers", "set", "sonnet", "glm-4.6")).ExitCode);
        var haiku = await admin.RunAsync("tiers", "set", "haiku", "gpt-oss-20b");
        Assert.Equal(0, haiku.ExitCode);
        Assert.Equal("", haiku.Stderr);

        var snapshot = await store.LoadAsync(Ct);
        Assert.Equal("glm-4.6", snapshot.Aliases["coder"]);
        Assert.Equal("glm-4.6", snapshot.Tiers["opus"]);
        Assert.Equal("glm-4.6", snapshot.Tiers["sonnet"]);
        Assert.Equal("gpt-oss-20b", snapshot.Tiers["haiku"]);
        Assert.Equal(RouteKind.Alias, ModelRouter.Resolve(snapshot, "coder").Kind);
        Assert.Equal("gpt-oss-20b", ModelRouter.Resolve(snapshot, "claude-haiku-4-5").Model.Id);

        var list = await admin.RunAsync("models", "list", "--format", "json");
        Assert.Equal(0, list.ExitCode);
        using (var json = JsonDocument.Parse(list.Stdout))
        {
            var root = json.RootElement;
            Assert.Equal("glm-4.6", root.GetProperty("tiers").GetProperty("opus").GetString());
            Assert.Equal("gpt-oss-20b", root.GetProperty("tiers").GetProperty("haiku").GetString());
            Assert.Equal("glm-4.6", root.GetProperty("aliases").GetProperty("Coder").GetString());
            Assert.Equal(["glm-4.6", "gpt-oss-20b"], root.GetProperty("models").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
            Assert.Equal("0.5", root.GetProperty("models")[0].GetProperty("prices").GetProperty("input").GetString());
            Assert.Equal(JsonValueKind.Null, root.GetProperty("default_upstream").ValueKind);
        }

        var table = await admin.RunAsync("models", "list");
        Assert.Equal(0, table.ExitCode);
        Assert.Contains("Coder -> glm-4.6", table.Stdout);
        Assert.Contains("haiku   -> gpt-oss-20b", table.Stdout);

        // Re-pointing a tier replaces it.
        Assert.Equal(0, (await admin.RunAsync("tiers", "set", "opus", "gpt-oss-20b")).ExitCode);
        Assert.Equal("gpt-oss-20b", (await store.LoadAsync(Ct)).Tiers["opus"]);

        Assert.Equal(0, (await admin.RunAsync("models", "unalias", "coder")).ExitCode);
        Assert.Empty((await store.LoadAsync(Ct)).Aliases);
        AdminHarness.AssertOneLineError(await admin.RunAsync("models", "unalias", "coder"), "no alias coder");

        var deleted = await admin.RunAsync("models", "delete", "GLM-4.6");
        Assert.Equal(0, deleted.ExitCode);
        Assert.Contains("tier sonnet", deleted.Stderr);   // a warning: the tier still points at it
        Assert.False((await store.LoadAsync(Ct)).Models.ContainsKey("glm-4.6"));
        AdminHarness.AssertOneLineError(await admin.RunAsync("models", "delete", "glm-4.6"), "no catalog entry");

        AdminHarness.AssertOneLineError(await admin.RunAsync("tiers", "set", "gigantic", "gpt-oss-20b"));
        AdminHarness.AssertOneLineError(await admin.RunAsync("tiers", "set", "opus"));
    }

    [Fact]
    public async Task SetDefault_UpdatesTheDefaultUpstreamThatEntriesInherit()
    {
        await using var admin = new AdminHarness(azurite);
        var store = admin.Get<ModelCatalogStore>();

        var result = await admin.RunAsync("models", "set-default", "--base-url", "http://10.1.1.1:8000/v1", "--flavor", "ollama", "--input-price", "0.10", "--output-price", "0.40", "--currency", "USD", "--context-window", "32768");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal(0, (await admin.RunAsync("models", "set", "local-model", "--vision", "true")).ExitCode);

        var snapshot = await store.LoadAsync(Ct);
        Assert.Equal("http://10.1.1.1:8000/v1", snapshot.DefaultUpstream.BaseUrl);
        Assert.Equal("ollama", snapshot.DefaultUpstream.Flavor);
        Assert.Equal(32768, snapshot.DefaultUpstream.ContextWindow);
        var entry = snapshot.Models["local-model"];
        Assert.Equal("http://10.1.1.1:8000/v1", entry.BaseUrl);
        Assert.Equal(0.40m, entry.Prices.OutputPerMTok);
        Assert.True(entry.Vision);

        AdminHarness.AssertOneLineError(await admin.RunAsync("models", "set-default"), "nothing to change");
        AdminHarness.AssertOneLineError(await admin.RunAsync("models", "set-default", "--display-name", "x"));
    }

    [Fact]
    public async Task List_NeverPrintsUpstreamKeys_OnlyWhetherOneIsSet()
    {
        Environment.SetEnvironmentVariable("MELIOUS_ADMIN_TEST_KEY", EnvSecret);
        await using var admin = new AdminHarness(azurite, new Dictionary<string, string?> { ["Melious:Upstream:ApiKey"] = ConfigSecret });
        Assert.Equal(0, (await admin.RunAsync("models", "list")).ExitCode);   // creates the tables
        var models = admin.Table(TableNames.Models);
        await models.UpsertEntityAsync(new TableEntity(ModelCatalogStore.UpstreamPartition, ModelCatalogStore.DefaultRow)
        {
            ["BaseUrl"] = "http://upstream.example/v1",
            ["ApiKeyRef"] = "config:Melious:Upstream:ApiKey",
        }, cancellationToken: Ct);
        await models.UpsertEntityAsync(new TableEntity(ModelCatalogStore.ModelPartition, "literal-model") { ["Id"] = "literal-model", ["ApiKey"] = LiteralSecret }, cancellationToken: Ct);
        await models.UpsertEntityAsync(new TableEntity(ModelCatalogStore.ModelPartition, "env-model") { ["Id"] = "env-model", ["ApiKeyRef"] = "env:MELIOUS_ADMIN_TEST_KEY" }, cancellationToken: Ct);
        await models.UpsertEntityAsync(new TableEntity(ModelCatalogStore.ModelPartition, "plain-model") { ["Id"] = "plain-model" }, cancellationToken: Ct);

        // The catalog does resolve the keys (so they exist to leak) …
        var snapshot = await admin.Get<ModelCatalogStore>().LoadAsync(Ct);
        Assert.Equal(LiteralSecret, snapshot.Models["literal-model"].ApiKey);
        Assert.Equal(EnvSecret, snapshot.Models["env-model"].ApiKey);
        Assert.Equal(ConfigSecret, snapshot.DefaultUpstream.ApiKey);

        // … but no output shows them.
        foreach (var args in new[] { new[] { "models", "list" }, ["models", "list", "--format", "json"], ["tiers", "list"] })
        {
            var result = await admin.RunAsync(args);
            Assert.Equal(0, result.ExitCode);
            foreach (var secret in new[] { LiteralSecret, ConfigSecret, EnvSecret, "MELIOUS_ADMIN_TEST_KEY" })
            {
                Assert.DoesNotContain(secret, result.Stdout);
                Assert.DoesNotContain(secret, result.Stderr);
            }
        }

        var json = await admin.RunAsync("models", "list", "--format", "json");
        using var document = JsonDocument.Parse(json.Stdout);
        var byId = document.RootElement.GetProperty("models").EnumerateArray().ToDictionary(m => m.GetProperty("id").GetString()!, m => m.GetProperty("api_key").GetString());
        Assert.Equal("literal", byId["literal-model"]);
        Assert.Equal("ref", byId["env-model"]);
        Assert.Equal("inherited", byId["plain-model"]);
        Assert.Equal("ref", document.RootElement.GetProperty("default_upstream").GetProperty("api_key").GetString());

        // Setting a reference on a row with a literal key blanks the literal, so the reference takes effect.
        var set = await admin.RunAsync("models", "set", "literal-model", "--api-key-ref", "env:MELIOUS_ADMIN_TEST_KEY");
        Assert.Equal(0, set.ExitCode);
        Assert.DoesNotContain(LiteralSecret, set.Stdout + set.Stderr);
        var row = (await models.GetEntityAsync<TableEntity>(ModelCatalogStore.ModelPartition, "literal-model", cancellationToken: Ct)).Value;
        Assert.Equal("", row["ApiKey"]);
        Assert.Equal(EnvSecret, (await admin.Get<ModelCatalogStore>().LoadAsync(Ct)).Models["literal-model"].ApiKey);
    }

    [Fact]
    public async Task List_OnAnEmptyCatalog_DoesNotSeedIt()
    {
        await using var admin = new AdminHarness(azurite, new Dictionary<string, string?>
        {
            ["Melious:Models:Main"] = "main-model",
            ["Melious:Upstream:BaseUrl"] = "http://127.0.0.1:9/v1",
        });

        var result = await admin.RunAsync("models", "list");

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("(none", result.Stdout);
        Assert.Empty(await admin.Get<ModelCatalogStore>().ListRawAsync(Ct));
    }

    [Theory]
    [InlineData("--input-price", "1,5")]
    [InlineData("--input-price", "-0.1")]
    [InlineData("--output-price", "1e-3")]
    [InlineData("--cache-read-price", "free")]
    [InlineData("--currency", "US")]
    [InlineData("--currency", "U5D")]
    [InlineData("--protocol", "grpc")]
    [InlineData("--flavor", "tgi")]
    [InlineData("--api-key-ref", "sk-live-123")]
    [InlineData("--base-url", "not a url")]
    [InlineData("--base-url", "http://user:pass@host/v1")]
    [InlineData("--context-window", "0")]
    [InlineData("--quant-bits", "99")]
    [InlineData("--tool-use", "maybe")]
    [InlineData("--active-params", "-3")]
    public async Task Set_WithAnInvalidValue_FailsWithOneLine_AndWritesNothing(string option, string value)
    {
        await using var admin = new AdminHarness(azurite);

        var result = await admin.RunAsync("models", "set", "m", option, value);

        AdminHarness.AssertOneLineError(result);
        Assert.Equal(0, (await admin.RunAsync("models", "list")).ExitCode);
        Assert.Empty(await admin.Get<ModelCatalogStore>().ListRawAsync(Ct));
    }
}

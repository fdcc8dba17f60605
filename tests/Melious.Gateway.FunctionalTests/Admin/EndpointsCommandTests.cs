using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Routing;
using Melious.Gateway.Storage;

namespace Melious.Gateway.FunctionalTests.Admin;

/// <summary><c>models endpoints add|remove|list</c> against Azurite, read back through the gateway's catalog.</summary>
public sealed class EndpointsCommandTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AddListRemove_BuildThePoolTheCatalogServes()
    {
        await using var admin = new AdminHarness(azurite);
        Assert.Equal(0, (await admin.RunAsync("models", "set", "qwen3-coder", "--base-url", "http://10.0.0.9:8000/v1")).ExitCode);

        var added = await admin.RunAsync("models", "endpoints", "add", "qwen3-coder", "http://10.0.0.5:8000/v1/");
        Assert.True(added.ExitCode == 0, added.ToString());
        Assert.Contains("no longer used", added.Stderr + added.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await admin.RunAsync("models", "endpoints", "add", "qwen3-coder", "http://10.0.0.6:8000/v1", "--weight", "2", "--api-key-ref", "env:WT13_TEST_KEY")).ExitCode);

        // The same URL again updates, never duplicates.
        Assert.Equal(0, (await admin.RunAsync("models", "endpoints", "add", "qwen3-coder", "http://10.0.0.5:8000/v1", "--weight", "3")).ExitCode);

        var snapshot = await admin.Get<ModelCatalogStore>().LoadAsync(Ct);
        var pool = snapshot.Models["qwen3-coder"].Pool;
        Assert.Equal(["http://10.0.0.5:8000/v1", "http://10.0.0.6:8000/v1"], pool.Select(e => e.BaseUrl).ToArray());
        Assert.Equal([3.0, 2.0], pool.Select(e => e.Weight).ToArray());

        var list = await admin.RunAsync("models", "endpoints", "list", "--format", "json");
        Assert.Equal(0, list.ExitCode);
        var json = JsonDocument.Parse(list.Stdout).RootElement;
        Assert.Equal(2, json.GetArrayLength());
        Assert.True(json[1].GetProperty("has_key_ref").GetBoolean());
        Assert.DoesNotContain("WT13_TEST_KEY", list.Stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await admin.RunAsync("models", "endpoints", "remove", "qwen3-coder", "http://10.0.0.5:8000/v1")).ExitCode);
        Assert.Equal(0, (await admin.RunAsync("models", "endpoints", "remove", "qwen3-coder", "http://10.0.0.6:8000/v1")).ExitCode);
        var missing = await admin.RunAsync("models", "endpoints", "remove", "qwen3-coder", "http://10.0.0.6:8000/v1");
        Assert.Equal(1, missing.ExitCode);

        // No endpoints left: back to the single URL.
        snapshot = await admin.Get<ModelCatalogStore>().LoadAsync(Ct);
        Assert.Equal("http://10.0.0.9:8000/v1", Assert.Single(snapshot.Models["qwen3-coder"].Pool).BaseUrl);
    }

    [Fact]
    public async Task DeleteModel_RemovesItsEndpoints_SoALaterSetOfTheSameNameHasNone()
    {
        await using var admin = new AdminHarness(azurite);
        Assert.Equal(0, (await admin.RunAsync("models", "endpoints", "add", "Qwen3-Coder", "http://10.0.0.5:8000/v1")).ExitCode);
        Assert.Equal(0, (await admin.RunAsync("models", "endpoints", "add", "Qwen3-Coder", "http://10.0.0.6:8000/v1")).ExitCode);
        Assert.Equal(0, (await admin.RunAsync("models", "endpoints", "add", "glm-4.6", "http://10.0.0.7:8000/v1")).ExitCode);

        var deleted = await admin.RunAsync("models", "delete", "qwen3-coder");
        Assert.True(deleted.ExitCode == 0, deleted.ToString());

        var list = await admin.RunAsync("models", "endpoints", "list", "qwen3-coder");
        Assert.Equal(0, list.ExitCode);
        Assert.Contains("qwen3-coder has no endpoints", list.Stdout, StringComparison.Ordinal);
        var all = JsonDocument.Parse((await admin.RunAsync("models", "endpoints", "list", "--format", "json")).Stdout).RootElement;
        Assert.Equal(["glm-4.6"], all.EnumerateArray().Select(e => e.GetProperty("model").GetString()));

        // The same name again starts from nothing: served from its own URL, not the old replicas.
        Assert.Equal(0, (await admin.RunAsync("models", "set", "qwen3-coder", "--base-url", "http://10.0.0.9:8000/v1")).ExitCode);
        var snapshot = await admin.Get<ModelCatalogStore>().LoadAsync(Ct);
        Assert.Empty(snapshot.Models["qwen3-coder"].Endpoints);
        Assert.Equal("http://10.0.0.9:8000/v1", Assert.Single(snapshot.Models["qwen3-coder"].Pool).BaseUrl);
        Assert.Single(snapshot.Models["glm-4.6"].Endpoints);
        Assert.Equal(0, JsonDocument.Parse((await admin.RunAsync("models", "endpoints", "list", "qwen3-coder", "--format", "json")).Stdout).RootElement.GetArrayLength());

        // The operator is told what went with the entry.
        Assert.Contains("Deleted model qwen3-coder and its 2 endpoints.", deleted.StdoutLines);
    }

    [Fact]
    public async Task DeleteModel_WithOnlyEndpointsLeftBehind_RemovesThem_AndWithNothingFails()
    {
        await using var admin = new AdminHarness(azurite);
        Assert.Equal(0, (await admin.RunAsync("models", "endpoints", "add", "qwen3-coder", "http://10.0.0.5:8000/v1")).ExitCode);
        await admin.Table(TableNames.Models).DeleteEntityAsync(ModelCatalogStore.ModelPartition, ModelCatalogStore.ModelRowKey("qwen3-coder"), cancellationToken: Ct);

        var deleted = await admin.RunAsync("models", "delete", "qwen3-coder");
        Assert.True(deleted.ExitCode == 0, deleted.ToString());
        Assert.Contains("Model qwen3-coder had no catalog entry; deleted its 1 endpoint left behind.", deleted.StdoutLines);
        Assert.DoesNotContain(await admin.RowsAsync(TableNames.Models), r => r.PartitionKey == ModelCatalogStore.EndpointPartition);

        AdminHarness.AssertOneLineError(await admin.RunAsync("models", "delete", "qwen3-coder"), "no catalog entry for model qwen3-coder");
    }

    [Fact]
    public async Task SetFallbacks_AreReadByTheCatalog_AndBadTriggersAreRefused()
    {
        await using var admin = new AdminHarness(azurite);
        Assert.Equal(0, (await admin.RunAsync("models", "set", "main", "--fallbacks", "backup, long", "--fallback-on", "rate_limit,context_overflow")).ExitCode);
        var entry = (await admin.Get<ModelCatalogStore>().LoadAsync(Ct)).Models["main"];
        Assert.Equal(["backup", "long"], entry.Fallbacks.ToArray());
        Assert.Equal(FallbackTriggers.RateLimit | FallbackTriggers.ContextOverflow, entry.FallbackOn);

        var bad = await admin.RunAsync("models", "set", "main", "--fallback-on", "sometimes");
        Assert.NotEqual(0, bad.ExitCode);
    }
}

using Azure.Data.Tables;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Admin;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;

namespace Melious.Gateway.FunctionalTests.Auth;

/// <summary>
/// <c>keys set-limits</c> racing <c>keys revoke</c> (the two store calls the CLI makes) against real Azurite: a
/// revoke is never undone, and the limits are always set. Found by review: set-limits wrote back the whole row it
/// had read, so a revoke that landed between its read and its write was reverted and the key worked again.
/// </summary>
public sealed class ApiKeyStoreTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SetLimits_RevokedBetweenItsReadAndItsWrite_KeyStaysRevoked_AndGetsTheLimits()
    {
        await using var direct = new AdminHarness(azurite);
        await using var proxy = await StorageProxy.StartAsync(azurite.Azurite);
        await using var proxied = new AdminHarness(azurite, new Dictionary<string, string?>
        {
            ["Melious:Storage:ConnectionString"] = proxy.ConnectionString,
            ["Melious:Storage:TablePrefix"] = direct.Prefix,
        });
        await direct.Table(TableNames.ApiKeys).CreateIfNotExistsAsync(Ct);
        var (_, key) = await direct.Get<ApiKeyStore>().CreateAsync("acme", "ci", new KeyLimits(RequestsPerMinute: 10, MonthlyBudget: 5m), Ct);

        // The first write of set-limits (its read has already answered) waits while the key is revoked directly.
        var revokedBeforeTheWrite = 0;
        proxy.BeforeForward = async request =>
        {
            if (request.Method is "PUT" or "PATCH" or "MERGE" && Interlocked.Exchange(ref revokedBeforeTheWrite, 1) == 0)
            {
                Assert.True(await direct.Get<ApiKeyStore>().RevokeAsync(key.KeyId, Ct));
            }
        };

        var updated = await proxied.Get<ApiKeyStore>().SetLimitsAsync(key.KeyId, new KeyLimits(RequestsPerMinute: 42, ClearBudget: true, AllowedModels: ["glm-4.6"]), Ct);

        Assert.Equal(1, revokedBeforeTheWrite);
        Assert.NotNull(updated);
        Assert.False(updated.Enabled);
        var stored = await direct.Get<ApiKeyStore>().FindByKeyIdAsync(key.KeyId, Ct);
        Assert.NotNull(stored);
        Assert.False(stored.Enabled, "set-limits re-enabled a key revoked between its read and its write");
        Assert.NotNull(stored.RevokedAt);
        Assert.Equal(42, stored.RequestsPerMinute);
        Assert.Null(stored.MonthlyBudget);
        Assert.Equal(["glm-4.6"], stored.AllowedModels);
        Assert.Equal("acme", stored.Account);
        Assert.Equal("ci", stored.Name);
    }

    [Fact]
    public async Task SetLimits_KeepsColumnsItDoesNotKnow()
    {
        await using var admin = new AdminHarness(azurite);
        var store = admin.Get<ApiKeyStore>();
        var table = admin.Table(TableNames.ApiKeys);
        await table.CreateIfNotExistsAsync(Ct);
        var (_, key) = await store.CreateAsync("acme", "ci", null, Ct);
        await table.UpdateEntityAsync(new TableEntity(ApiKeyStore.Partition, key.Hash) { ["Note"] = "added by a newer version" }, Azure.ETag.All, TableUpdateMode.Merge, Ct);

        await store.SetLimitsAsync(key.KeyId, new KeyLimits(MaxConcurrentStreams: 3), Ct);

        var row = (await table.GetEntityAsync<TableEntity>(ApiKeyStore.Partition, key.Hash, cancellationToken: Ct)).Value;
        Assert.Equal("added by a newer version", row.GetString("Note"));
        Assert.Equal(3, (await store.FindByKeyIdAsync(key.KeyId, Ct))!.MaxConcurrentStreams);
    }

    [Fact]
    public async Task SetLimits_RacingRevoke_ManyTimes_TheKeyAlwaysEndsRevokedWithTheLimits()
    {
        const int Iterations = 150;
        await using var admin = new AdminHarness(azurite);
        var store = admin.Get<ApiKeyStore>();
        await admin.Table(TableNames.ApiKeys).CreateIfNotExistsAsync(Ct);
        var lost = new List<string>();
        for (var i = 0; i < Iterations; i++)
        {
            var (_, key) = await store.CreateAsync("acme", $"race {i}", null, Ct);
            var limits = new KeyLimits(RequestsPerMinute: 100 + i, MonthlyBudget: 7.5m, TokensPerMinute: 5000);

            await Task.WhenAll(store.SetLimitsAsync(key.KeyId, limits, Ct), store.RevokeAsync(key.KeyId, Ct));

            var stored = (await store.FindByKeyIdAsync(key.KeyId, Ct))!;
            if (stored.Enabled || stored.RevokedAt is null || stored.RequestsPerMinute != 100 + i || stored.MonthlyBudget != 7.5m || stored.TokensPerMinute != 5000)
            {
                lost.Add($"#{i}: enabled {stored.Enabled}, revoked_at {stored.RevokedAt?.ToString("O") ?? "none"}, rpm {stored.RequestsPerMinute}, budget {stored.MonthlyBudget}, tpm {stored.TokensPerMinute}");
            }
        }

        Assert.True(lost.Count == 0, $"{lost.Count} of {Iterations} races ended wrong:\n{string.Join('\n', lost.Take(10))}");
    }
}

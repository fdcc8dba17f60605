using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Admin;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Limits;

/// <summary><c>melious-admin keys create|set-limits|list --tpm</c>: the tokens-per-minute limit stored with the key.</summary>
public sealed class TokensPerMinuteAdminTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Tpm_SetOnCreate_ChangedBySetLimits_ShownByList()
    {
        await using var admin = new AdminHarness(azurite);
        var created = await admin.RunAsync("keys", "create", "--account", "acme", "--name", "tpm", "--rpm", "60", "--tpm", "200000");
        Assert.Equal(0, created.ExitCode);
        Assert.Contains("tpm 200000", created.Stdout, StringComparison.Ordinal);
        var key = created.StdoutLines[^1];
        var store = admin.Get<ApiKeyStore>();
        var record = (await store.FindByHashAsync(ApiKeys.Hash(key), Ct))!;
        Assert.Equal(200_000, record.TokensPerMinute);
        Assert.Equal(60, record.RequestsPerMinute);

        var json = await admin.RunAsync("keys", "list", "--account", "acme", "--format", "json");
        Assert.Contains("\"tokens_per_minute\":200000", json.Stdout.Replace(" ", "", StringComparison.Ordinal), StringComparison.Ordinal);
        var table = await admin.RunAsync("keys", "list", "--account", "acme");
        Assert.Contains("TPM", table.StdoutLines[0], StringComparison.Ordinal);
        Assert.Contains("200000", table.Stdout, StringComparison.Ordinal);

        // set-limits changes only --tpm; 0 means unlimited.
        Assert.Equal(0, (await admin.RunAsync("keys", "set-limits", record.KeyId, "--tpm", "0")).ExitCode);
        record = (await store.FindByHashAsync(ApiKeys.Hash(key), Ct))!;
        Assert.Equal(0, record.TokensPerMinute);
        Assert.Equal(60, record.RequestsPerMinute);

        var bad = await admin.RunAsync("keys", "set-limits", record.KeyId, "--tpm", "-5");
        AdminHarness.AssertOneLineError(bad, "--tpm");
    }
}

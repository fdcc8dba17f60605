using System.Text.Json;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;

namespace Melious.Gateway.FunctionalTests.Admin;

public sealed class KeysCommandTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Create_PrintsTheKeyAloneOnTheLastLine_AndStoresOnlyItsHash()
    {
        await using var admin = new AdminHarness(azurite);

        var result = await admin.RunAsync("keys", "create", "--account", "acme", "--name", "ci runner", "--rpm", "60", "--concurrency", "4", "--budget", "250.50", "--budget-currency", "eur", "--models", "qwen*, glm-4.6");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal("", result.Stderr);
        Assert.True(result.StdoutLines.Length >= 2, result.ToString());
        var key = result.StdoutLines[^1];
        Assert.StartsWith(ApiKeys.Prefix, key);
        Assert.Equal(ApiKeys.Prefix.Length + 43, key.Length);
        Assert.Equal(key, result.Stdout.TrimEnd('\n').Split('\n')[^1]);   // what `tail -n1` gives
        Assert.Single(result.StdoutLines, l => l.Contains(ApiKeys.Prefix, StringComparison.Ordinal));

        var record = await admin.Get<ApiKeyStore>().FindByHashAsync(ApiKeys.Hash(key), Ct);
        Assert.NotNull(record);
        Assert.Equal("acme", record.Account);
        Assert.Equal("ci runner", record.Name);
        Assert.True(record.Enabled);
        Assert.Equal(60, record.RequestsPerMinute);
        Assert.Equal(4, record.MaxConcurrentStreams);
        Assert.Equal(250.50m, record.MonthlyBudget);
        Assert.Equal("EUR", record.BudgetCurrency);
        Assert.Equal(["qwen*", "glm-4.6"], record.AllowedModels);
        Assert.Contains(record.KeyId, result.Stdout);

        var rows = await admin.RowsAsync(TableNames.ApiKeys);
        var row = Assert.Single(rows);
        Assert.Equal(ApiKeys.Hash(key), row.RowKey);
        var secret = key[ApiKeys.Prefix.Length..];
        foreach (var (name, value) in row)
        {
            var text = Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "";
            Assert.DoesNotContain(secret, text);
            Assert.DoesNotContain(key, text);
        }
    }

    [Fact]
    public async Task List_ShowsIdsAndLimitsButNeverKeys_AndFiltersByAccount()
    {
        await using var admin = new AdminHarness(azurite);
        var first = await CreateAsync(admin, "acme", "alice", "--rpm", "10");
        var second = await CreateAsync(admin, "acme", "bob");
        var other = await CreateAsync(admin, "globex", "carol", "--budget", "5");

        var table = await admin.RunAsync("keys", "list");
        Assert.Equal(0, table.ExitCode);
        foreach (var key in new[] { first, second, other })
        {
            Assert.Contains(KeyId(key), table.Stdout);
            Assert.DoesNotContain(key, table.Stdout);
            Assert.DoesNotContain(ApiKeys.Hash(key), table.Stdout);
        }

        Assert.DoesNotContain(ApiKeys.Prefix, table.Stdout);

        var json = await admin.RunAsync("keys", "list", "--account", "acme", "--format", "json");
        Assert.Equal(0, json.ExitCode);
        Assert.DoesNotContain(ApiKeys.Prefix, json.Stdout);
        using var document = JsonDocument.Parse(json.Stdout);
        var keys = document.RootElement.EnumerateArray().ToList();
        Assert.Equal(2, keys.Count);
        Assert.All(keys, k => Assert.Equal("acme", k.GetProperty("account").GetString()));
        var alice = Assert.Single(keys, k => k.GetProperty("name").GetString() == "alice");
        Assert.Equal(KeyId(first), alice.GetProperty("key_id").GetString());
        Assert.Equal(10, alice.GetProperty("requests_per_minute").GetInt32());
        Assert.True(alice.GetProperty("enabled").GetBoolean());
        Assert.Equal(JsonValueKind.Null, alice.GetProperty("monthly_budget").ValueKind);

        var none = await admin.RunAsync("keys", "list", "--account", "nobody", "--format", "json");
        Assert.Equal(0, none.ExitCode);
        Assert.Equal(0, JsonDocument.Parse(none.Stdout).RootElement.GetArrayLength());
    }

    [Fact]
    public async Task Roles_DefaultToUser_AdminIsStored_ListShowsThem_AndOldRowsAreUsers()
    {
        await using var admin = new AdminHarness(azurite);
        var user = await CreateAsync(admin, "acme", "dev");
        var boss = await CreateAsync(admin, "finance", "cfo", "--role", "admin");
        var store = admin.Get<ApiKeyStore>();
        Assert.Equal(KeyRoles.User, (await store.FindByHashAsync(ApiKeys.Hash(user), Ct))!.Role);
        Assert.True((await store.FindByHashAsync(ApiKeys.Hash(boss), Ct))!.IsAdmin);

        var table = await admin.RunAsync("keys", "list");
        Assert.Contains("ROLE", table.Stdout);
        Assert.Contains(table.StdoutLines, l => l.Contains(KeyId(boss), StringComparison.Ordinal) && l.Contains(" admin ", StringComparison.Ordinal));
        Assert.Contains(table.StdoutLines, l => l.Contains(KeyId(user), StringComparison.Ordinal) && l.Contains(" user ", StringComparison.Ordinal));
        using var json = JsonDocument.Parse((await admin.RunAsync("keys", "list", "--format", "json")).Stdout);
        Assert.Equal("admin", Assert.Single(json.RootElement.EnumerateArray(), k => k.GetProperty("name").GetString() == "cfo").GetProperty("role").GetString());

        // A row written before roles existed has no Role column: it is a user.
        var rows = await admin.RowsAsync(TableNames.ApiKeys);
        var old = rows.Single(r => r.RowKey == ApiKeys.Hash(user));
        old.Remove("Role");
        await admin.Table(TableNames.ApiKeys).UpsertEntityAsync(old, Azure.Data.Tables.TableUpdateMode.Replace, Ct);
        Assert.Equal(KeyRoles.User, (await store.FindByHashAsync(ApiKeys.Hash(user), Ct))!.Role);

        AdminHarness.AssertOneLineError(await admin.RunAsync("keys", "create", "--account", "acme", "--name", "x", "--role", "root"));
    }

    [Fact]
    public async Task Revoke_DisablesTheKey_AndAnUnknownIdFails()
    {
        await using var admin = new AdminHarness(azurite);
        var key = await CreateAsync(admin, "acme", "laptop");
        var leaked = await CreateAsync(admin, "acme", "leaked");
        var store = admin.Get<ApiKeyStore>();

        var result = await admin.RunAsync("keys", "revoke", KeyId(key));
        Assert.Equal(0, result.ExitCode);
        Assert.Contains(KeyId(key), result.Stdout);
        var record = await store.FindByHashAsync(ApiKeys.Hash(key), Ct);
        Assert.NotNull(record);
        Assert.False(record.Enabled);
        Assert.NotNull(record.RevokedAt);

        // A leaked key can be revoked by pasting the key itself; it is hashed, never echoed.
        var byKey = await admin.RunAsync("keys", "revoke", leaked);
        Assert.Equal(0, byKey.ExitCode);
        Assert.DoesNotContain(leaked, byKey.Stdout + byKey.Stderr);
        Assert.False((await store.FindByHashAsync(ApiKeys.Hash(leaked), Ct))!.Enabled);

        var revokedAt = (await store.FindByHashAsync(ApiKeys.Hash(key), Ct))!.RevokedAt;
        var again = await admin.RunAsync("keys", "revoke", KeyId(key));
        Assert.Equal(0, again.ExitCode);
        Assert.Contains("already revoked", again.Stdout);
        Assert.Equal(revokedAt, (await store.FindByHashAsync(ApiKeys.Hash(key), Ct))!.RevokedAt);

        var list = await admin.RunAsync("keys", "list", "--format", "json");
        Assert.All(JsonDocument.Parse(list.Stdout).RootElement.EnumerateArray(), k => Assert.False(k.GetProperty("enabled").GetBoolean()));

        AdminHarness.AssertOneLineError(await admin.RunAsync("keys", "revoke", "0123456789abcdef"), "no key with id 0123456789abcdef");
        AdminHarness.AssertOneLineError(await admin.RunAsync("keys", "revoke", "not-a-key-id"), "KEYID must be the 16 hex digits shown by 'keys list', or the whole sk-mel- key (got 'not-a-key-id')");
        AdminHarness.AssertOneLineError(await admin.RunAsync("keys", "revoke"));
    }

    /// <summary>A key pasted as KEYID, however wrapped, is never echoed: used when it is recognisable, else masked.</summary>
    [Fact]
    public async Task KeyPastedAsKeyId_IsNeverEchoed()
    {
        await using var admin = new AdminHarness(azurite);
        var key = await CreateAsync(admin, "acme", "pasted");
        var secret = key["sk-mel-".Length..];

        // Copied from an Authorization header, or in quotes: still the key.
        var limits = await admin.RunAsync("keys", "set-limits", "Bearer " + key, "--rpm", "7");
        Assert.True(limits.ExitCode == 0, limits.ToString());
        Assert.Contains($"Key {KeyId(key)} ", limits.Stdout);
        var revoked = await admin.RunAsync("keys", "revoke", $"\"{key}\"");
        Assert.True(revoked.ExitCode == 0, revoked.ToString());
        Assert.False((await admin.Get<ApiKeyStore>().FindByHashAsync(ApiKeys.Hash(key), Ct))!.Enabled);
        Assert.DoesNotContain(secret, limits.Stdout + limits.Stderr + revoked.Stdout + revoked.Stderr);

        // Not recognisable as a key, but holding one (or too long to be sure it does not): masked.
        foreach (var pasted in new[] { "x-api-key: " + key, "token=" + key, key.Replace("sk-mel-", "sk_mel_", StringComparison.Ordinal) })
        {
            foreach (var args in new[] { new[] { "keys", "revoke", pasted }, ["keys", "set-limits", pasted, "--rpm", "1"] })
            {
                var result = await admin.RunAsync(args);
                AdminHarness.AssertOneLineError(result, "KEYID must be");
                Assert.DoesNotContain(secret[..12], result.Stderr);
                Assert.Contains("not shown", result.Stderr);
            }
        }
    }

    [Fact]
    public async Task SetLimits_ChangesOnlyTheGivenLimits_AndNoBudgetRemovesTheBudget()
    {
        await using var admin = new AdminHarness(azurite);
        var key = await CreateAsync(admin, "acme", "svc", "--rpm", "60", "--budget", "100", "--budget-currency", "EUR");
        var store = admin.Get<ApiKeyStore>();

        var result = await admin.RunAsync("keys", "set-limits", KeyId(key), "--concurrency", "3", "--models", "a*,b");
        Assert.Equal(0, result.ExitCode);
        var record = (await store.FindByHashAsync(ApiKeys.Hash(key), Ct))!;
        Assert.Equal(60, record.RequestsPerMinute);
        Assert.Equal(3, record.MaxConcurrentStreams);
        Assert.Equal(100m, record.MonthlyBudget);
        Assert.Equal("EUR", record.BudgetCurrency);
        Assert.Equal(["a*", "b"], record.AllowedModels);
        Assert.True(record.Enabled);

        Assert.Equal(0, (await admin.RunAsync("keys", "set-limits", KeyId(key), "--no-budget", "--rpm", "0", "--models", "")).ExitCode);
        record = (await store.FindByHashAsync(ApiKeys.Hash(key), Ct))!;
        Assert.Null(record.MonthlyBudget);
        Assert.Equal(0, record.RequestsPerMinute);
        Assert.Empty(record.AllowedModels);
        Assert.Equal(3, record.MaxConcurrentStreams);

        Assert.Equal(0, (await admin.RunAsync("keys", "set-limits", KeyId(key), "--budget", "12.345")).ExitCode);
        Assert.Equal(12.345m, (await store.FindByHashAsync(ApiKeys.Hash(key), Ct))!.MonthlyBudget);

        AdminHarness.AssertOneLineError(await admin.RunAsync("keys", "set-limits", "0123456789abcdef", "--rpm", "5"), "no key");
        AdminHarness.AssertOneLineError(await admin.RunAsync("keys", "set-limits", KeyId(key)), "nothing to change");
        AdminHarness.AssertOneLineError(await admin.RunAsync("keys", "set-limits", KeyId(key), "--budget", "1", "--no-budget"));
        AdminHarness.AssertOneLineError(await admin.RunAsync("keys", "set-limits", KeyId(key), "--budget", "1,5"), "--budget");
        AdminHarness.AssertOneLineError(await admin.RunAsync("keys", "set-limits", KeyId(key), "--rpm", "-1"), "--rpm");
        AdminHarness.AssertOneLineError(await admin.RunAsync("keys", "set-limits", KeyId(key), "--budget-currency", "EURO"), "--budget-currency");
        Assert.Equal(12.345m, (await store.FindByHashAsync(ApiKeys.Hash(key), Ct))!.MonthlyBudget);
    }

    [Theory]
    [InlineData("keys", "create", "--name", "x")]
    [InlineData("keys", "create", "--account", "acme")]
    [InlineData("keys", "create", "--account", "bad account!", "--name", "x")]
    [InlineData("keys", "create", "--account", "acme", "--name", "x", "--budget", "-5")]
    [InlineData("keys", "create", "--account", "acme", "--name", "x", "--rpm", "ten")]
    [InlineData("keys", "list", "--format", "xml")]
    public async Task InvalidArguments_FailWithOneLine_AndCreateNothing(params string[] args)
    {
        await using var admin = new AdminHarness(azurite);

        AdminHarness.AssertOneLineError(await admin.RunAsync(args));

        var list = await admin.RunAsync("keys", "list", "--format", "json");
        Assert.Equal(0, list.ExitCode);
        Assert.Equal(0, JsonDocument.Parse(list.Stdout).RootElement.GetArrayLength());
    }

    private static async Task<string> CreateAsync(AdminHarness admin, string account, string name, params string[] extra)
    {
        var result = await admin.RunAsync(["keys", "create", "--account", account, "--name", name, .. extra]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.StdoutLines[^1];
    }

    private static string KeyId(string key) => ApiKeys.KeyIdFromHash(ApiKeys.Hash(key));
}

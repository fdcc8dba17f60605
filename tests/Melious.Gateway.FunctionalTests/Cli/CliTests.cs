using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Cli;

/// <summary>
/// <c>melious login / status / models / logout</c> as a user runs them: a real process in a temporary HOME against
/// the self-host (Azurite, scripted upstream).
/// </summary>
public sealed class CliTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task Login_Status_Models_Logout_RoundTrip()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();

        // A URL pasted with /v1 and a trailing slash is stored as the root.
        var login = await box.RunAsync(["login", "--base-url", s.Gateway.BaseUrl + "/v1/", "--key-stdin"], s.Key + "\n");
        Assert.True(login.ExitCode == 0, login.Describe());
        Assert.Contains($"Logged in to {s.Gateway.BaseUrl} as account acme", login.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Key, login.Stdout + login.Stderr, StringComparison.Ordinal);
        Assert.True(File.Exists(box.ConfigFile), "no config file");
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(box.ConfigFile));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(box.ConfigFile)!));
        }

        var stored = JsonDocument.Parse(File.ReadAllText(box.ConfigFile)).RootElement;
        Assert.Equal(s.Gateway.BaseUrl, stored.GetProperty("base_url").GetString());
        Assert.Equal(s.Key, stored.GetProperty("api_key").GetString());

        var status = await box.RunAsync("status");
        Assert.True(status.ExitCode == 0, status.Describe());
        Assert.Contains($"Gateway:  {s.Gateway.BaseUrl}", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("Account:  acme", status.Stdout, StringComparison.Ordinal);
        Assert.Contains("Role:     user", status.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"opus\s+→ main-model \(131,072 context\)", status.Stdout);
        Assert.Matches(@"sonnet\s+→ secondary-model", status.Stdout);
        Assert.Matches(@"haiku\s+→ light-model", status.Stdout);
        Assert.Contains("main main-model, subagents secondary-model, small/background light-model, auto-compact window 131,072", status.Stdout, StringComparison.Ordinal);

        var models = await box.RunAsync("models");
        Assert.True(models.ExitCode == 0, models.Describe());
        Assert.Matches(@"(?m)^MODEL\s+RESOLVES TO\s+CONTEXT\s+MAX OUTPUT\s+CAPABILITIES$", models.Stdout);
        Assert.Matches(@"(?m)^claude-opus\s+main-model\s+131,072\s+\S+\s+tools", models.Stdout);

        var json = await box.RunAsync("models", "--json");
        Assert.True(json.ExitCode == 0, json.Describe());
        var list = JsonDocument.Parse(json.Stdout).RootElement;
        var opus = list.EnumerateArray().Single(m => m.GetProperty("id").GetString() == "claude-opus");
        Assert.Equal("main-model", opus.GetProperty("_meta").GetProperty("resolves_to").GetString());
        Assert.Equal(131072, opus.GetProperty("_meta").GetProperty("context_window").GetInt64());
        Assert.Contains(list.EnumerateArray(), m => m.GetProperty("id").GetString() == "light-model");

        // MELIOUS_API_KEY wins over the stored key (here: a well-formed key the gateway does not know).
        box.Environment["MELIOUS_API_KEY"] = "sk-mel-" + new string('Q', 43);
        var overridden = await box.RunAsync("status");
        Assert.Equal(1, overridden.ExitCode);
        Assert.Contains("the gateway refused the key (401): invalid API key: this key does not exist", overridden.Stderr, StringComparison.Ordinal);
        box.Environment.Remove("MELIOUS_API_KEY");

        var logout = await box.RunAsync("logout");
        Assert.True(logout.ExitCode == 0, logout.Describe());
        Assert.False(File.Exists(box.ConfigFile));
        var after = await box.RunAsync("status");
        Assert.Equal(1, after.ExitCode);
        Assert.Contains("not logged in: run `melious login`", after.Stderr, StringComparison.Ordinal);

        // MELIOUS_BASE_URL / MELIOUS_API_KEY work without a file.
        box.Environment["MELIOUS_BASE_URL"] = s.Gateway.BaseUrl;
        box.Environment["MELIOUS_API_KEY"] = s.Key;
        var fromEnv = await box.RunAsync("status");
        Assert.True(fromEnv.ExitCode == 0, fromEnv.Describe());
        Assert.Contains("(from MELIOUS_API_KEY)", fromEnv.Stdout, StringComparison.Ordinal);
    }

    /// <summary>An empty MELIOUS_BASE_URL is unset for login too: the stored URL is used, as status uses it.</summary>
    [Fact]
    public async Task Login_WithAnEmptyBaseUrlVariable_UsesTheStoredUrl()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);
        box.Environment["MELIOUS_BASE_URL"] = "";

        var status = await box.RunAsync("status");
        Assert.True(status.ExitCode == 0, status.Describe());
        var again = await box.RunAsync(["login", "--key-stdin"], s.Key + "\n");
        Assert.True(again.ExitCode == 0, again.Describe());
        Assert.Contains($"Logged in to {s.Gateway.BaseUrl} ", again.Stdout, StringComparison.Ordinal);
        Assert.Equal(s.Gateway.BaseUrl, JsonDocument.Parse(File.ReadAllText(box.ConfigFile)).RootElement.GetProperty("base_url").GetString());
    }

    [Theory]
    [InlineData("anthropic", "this is an Anthropic API key")]
    [InlineData("truncated", "the key looks truncated")]
    [InlineData("unknown", "this key does not exist")]
    public async Task Login_WithABadKey_ExplainsAndStoresNothing(string kind, string expected)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        var key = Auth.AuthMessageTests.KeyFor(kind, s.Key);
        var login = await box.RunAsync(["login", "--base-url", s.Gateway.BaseUrl, "--key-stdin"], key + "\n");
        Assert.Equal(1, login.ExitCode);
        Assert.Contains("the gateway refused the key (401)", login.Stderr, StringComparison.Ordinal);
        Assert.Contains(expected, login.Stderr, StringComparison.Ordinal);
        Assert.Contains("Nothing was stored.", login.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(box.ConfigFile));
    }

    [Fact]
    public async Task Login_UnreachableGateway_SaysSo()
    {
        using var box = new CliSandbox();
        var login = await box.RunAsync(["login", "--base-url", $"http://127.0.0.1:{Ports.Free()}", "--key-stdin"], "sk-mel-" + new string('a', 43) + "\n");
        Assert.Equal(1, login.ExitCode);
        Assert.Contains("cannot reach the gateway at http://127.0.0.1:", login.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(box.ConfigFile));
    }
}

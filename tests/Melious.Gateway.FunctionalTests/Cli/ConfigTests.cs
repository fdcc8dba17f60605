using System.Diagnostics;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Clients;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Cli;

/// <summary>
/// <c>melious config claude-code</c>: merges the env block into an existing settings file (other keys and env entries
/// kept), shows a diff and asks, covers the file in .gitignore, and <c>--remove</c> takes the entries out again. Claude
/// Code started with no variables at all, only the written settings, works against the gateway.
/// </summary>
public sealed class ConfigTests(AzuriteFixture azurite)
{
    [Theory]
    [InlineData("pinned")]
    [InlineData("latest")]
    public async Task Config_MergesAsksIgnoresAndRemoves_AndClaudeCodeRunsOnTheSettingsAlone(string version)
    {
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
            Sse.WriteAsync(context, Sse.TextAnswer([$"settings-only answer from {request.Model()}"], prompt: 2000)));
        using var box = new CliSandbox();
        box.UseClaude(version);
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);

        var settingsDir = Directory.CreateDirectory(Path.Combine(box.Project, ".claude")).FullName;
        var file = Path.Combine(settingsDir, "settings.local.json");
        File.WriteAllText(file, """
            {
              "permissions": { "allow": ["Bash(ls:*)"] },
              "env": { "MY_TEAM_VAR": "keep-me", "ANTHROPIC_MODEL": "old-model" }
            }
            """);
        File.WriteAllText(Path.Combine(box.Project, ".gitignore"), "node_modules/");
        var original = File.ReadAllText(file);

        // The diff first; "no" writes nothing.
        var declined = await box.RunAsync(["config", "claude-code", "--project", box.Project], "n\n");
        Assert.Equal(1, declined.ExitCode);
        Assert.Contains("~ ANTHROPIC_MODEL: \"old-model\" → \"main-model\"", declined.Stdout, StringComparison.Ordinal);
        Assert.Contains("+ ANTHROPIC_AUTH_TOKEN = sk-mel-… (50 characters)", declined.Stdout, StringComparison.Ordinal);
        Assert.Contains($"+ ANTHROPIC_BASE_URL = \"{s.Gateway.BaseUrl}\"", declined.Stdout, StringComparison.Ordinal);
        Assert.Contains("+ CLAUDE_CODE_AUTO_COMPACT_WINDOW = \"131072\"", declined.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("MY_TEAM_VAR", declined.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Key[10..], declined.Stdout + declined.Stderr, StringComparison.Ordinal);
        Assert.Equal(original, File.ReadAllText(file));

        var written = await box.RunAsync(["config", "claude-code", "--project", box.Project], "y\n");
        Assert.True(written.ExitCode == 0, written.Describe());
        var json = JsonDocument.Parse(File.ReadAllText(file)).RootElement;
        Assert.Equal("Bash(ls:*)", json.GetProperty("permissions").GetProperty("allow")[0].GetString());
        var env = json.GetProperty("env");
        Assert.Equal("keep-me", env.GetProperty("MY_TEAM_VAR").GetString());
        Assert.Equal(s.Key, env.GetProperty("ANTHROPIC_AUTH_TOKEN").GetString());
        Assert.Equal("", env.GetProperty("ANTHROPIC_API_KEY").GetString());
        Assert.Equal("main-model", env.GetProperty("ANTHROPIC_MODEL").GetString());
        Assert.Equal("light-model", env.GetProperty("ANTHROPIC_DEFAULT_HAIKU_MODEL").GetString());
        Assert.Equal("secondary-model", env.GetProperty("CLAUDE_CODE_SUBAGENT_MODEL").GetString());
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }
        var gitignore = File.ReadAllText(Path.Combine(box.Project, ".gitignore"));
        Assert.Equal("node_modules/\n# Claude Code settings with a Melious key (melious config claude-code)\n.claude/settings.local.json\n", gitignore);

        // Idempotent: nothing to change, .gitignore untouched.
        var again = await box.RunAsync(["config", "claude-code", "--project", box.Project]);
        Assert.True(again.ExitCode == 0, again.Describe());
        Assert.Contains("is already up to date", again.Stdout, StringComparison.Ordinal);
        Assert.Equal(gitignore, File.ReadAllText(Path.Combine(box.Project, ".gitignore")));

        // Claude Code with no variables but HOME and PATH: the settings file alone points it at the gateway.
        var info = new ProcessStartInfo(CliSandbox.ClaudePath(version)) { WorkingDirectory = box.Project };
        foreach (var arg in new[] { "-p", "hello", "--output-format", "json" })
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment.Clear();
        info.Environment["HOME"] = box.Home;
        info.Environment["PATH"] = box.PathVariable;
        var run = await ClientProcess.RunAsync(info, TimeSpan.FromSeconds(120), TestContext.Current.CancellationToken);
        Assert.True(run.ExitCode == 0 && !run.TimedOut, run.Describe());
        Assert.Contains("settings-only answer from main-model", run.Stdout, StringComparison.Ordinal);
        Assert.NotEmpty(s.Upstream.Requests);
        Assert.All(s.Upstream.Requests, r => Assert.Contains(r.Model(), new[] { "main-model", "light-model" }));

        // --remove: only melious's entries go.
        var removed = await box.RunAsync(["config", "claude-code", "--project", box.Project, "--remove", "--yes"]);
        Assert.True(removed.ExitCode == 0, removed.Describe());
        Assert.Contains("- ANTHROPIC_AUTH_TOKEN = sk-mel-…", removed.Stdout, StringComparison.Ordinal);
        var after = JsonDocument.Parse(File.ReadAllText(file)).RootElement;
        Assert.Equal("Bash(ls:*)", after.GetProperty("permissions").GetProperty("allow")[0].GetString());
        Assert.Equal(["MY_TEAM_VAR"], after.GetProperty("env").EnumerateObject().Select(p => p.Name));
    }

    [Theory]
    [InlineData(null, "# Claude Code settings with a Melious key (melious config claude-code)\n.claude/settings.local.json\n")]
    [InlineData("dist\n.claude/\n", null)]
    [InlineData("**/settings.local.json", null)]
    public async Task Config_GitIgnore_IsCreatedOrLeftAloneWhenAlreadyCovering(string? existing, string? expected)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);
        var gitignore = Path.Combine(box.Project, ".gitignore");
        if (existing is not null)
        {
            File.WriteAllText(gitignore, existing);
        }

        var run = await box.RunAsync("config", "claude-code", "--yes");
        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.True(File.Exists(Path.Combine(box.Project, ".claude", "settings.local.json")));
        Assert.Equal(expected ?? existing, File.ReadAllText(gitignore));
        Assert.Equal(expected is not null, run.Stdout.Contains("Added .claude/settings.local.json to", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ConfigUser_WritesTheUserSettings_WithoutGitignore()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);
        var run = await box.RunAsync("config", "claude-code", "--user", "--yes", "--model", "light-model");
        Assert.True(run.ExitCode == 0, run.Describe());
        var file = Path.Combine(box.Home, ".claude", "settings.json");
        var env = JsonDocument.Parse(File.ReadAllText(file)).RootElement.GetProperty("env");
        Assert.Equal("light-model", env.GetProperty("ANTHROPIC_MODEL").GetString());
        Assert.Equal("main-model", env.GetProperty("ANTHROPIC_DEFAULT_OPUS_MODEL").GetString());
        Assert.False(File.Exists(Path.Combine(box.Project, ".gitignore")));

        // doctor accepts the deliberate --model (it resolves) and does not offer to undo it.
        box.UseClaude("pinned");
        var doctor = await box.RunAsync("doctor");
        Assert.True(doctor.ExitCode == 0, doctor.Describe());
        Assert.Contains($"✓ settings: {file}: its env block agrees with the gateway (written by melious config claude-code)", doctor.Stdout, StringComparison.Ordinal);
        Assert.Contains($"✓ ANTHROPIC_MODEL (in {file}): light-model resolves", doctor.Stdout, StringComparison.Ordinal);

        // The chosen model is retired: doctor flags it, and --fix puts the tier's model (and its window) back.
        var edited = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(file))!;
        edited["env"]!["ANTHROPIC_MODEL"] = "retired-model-x";
        File.WriteAllText(file, edited.ToJsonString());
        var retired = await box.RunAsync("doctor");
        Assert.Equal(1, retired.ExitCode);
        Assert.Contains($"✗ ANTHROPIC_MODEL (in {file}): retired-model-x does not resolve", retired.Stdout, StringComparison.Ordinal);
        var repaired = await box.RunAsync("doctor", "--fix", "--yes");
        Assert.True(repaired.ExitCode == 0, repaired.Describe());
        var fixedEnv = JsonDocument.Parse(File.ReadAllText(file)).RootElement.GetProperty("env");
        Assert.Equal("main-model", fixedEnv.GetProperty("ANTHROPIC_MODEL").GetString());
        Assert.Equal("131072", fixedEnv.GetProperty("CLAUDE_CODE_AUTO_COMPACT_WINDOW").GetString());
        Assert.True(File.Exists(DoctorTests.BackupOf(repaired, file)));

        var unknown = await box.RunAsync("config", "claude-code", "--user", "--yes", "--model", "no-such-model-x");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("does not serve model no-such-model-x", unknown.Stderr, StringComparison.Ordinal);
    }
}

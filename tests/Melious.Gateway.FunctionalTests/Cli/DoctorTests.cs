using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Clients;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Cli;

/// <summary>
/// <c>melious doctor</c>: each misconfiguration set up for real in a temporary HOME and project, detected with its
/// fix line; a clean setup passes; <c>--fix</c> repairs settings files with a backup.
/// </summary>
public sealed class DoctorTests(AzuriteFixture azurite)
{
    /// <summary>Case → the ✗ line's start and a piece of its fix line.</summary>
    public static TheoryData<string, string, string> Cases => new()
    {
        { "base-url-v1", "✗ ANTHROPIC_BASE_URL: ends in /v1", "fix: export ANTHROPIC_BASE_URL=http://127.0.0.1:" },
        { "base-url-elsewhere", "✗ ANTHROPIC_BASE_URL: points to https://api.anthropic.com, not the gateway", "fix: export ANTHROPIC_BASE_URL=http://127.0.0.1:" },
        { "api-key-anthropic", "✗ ANTHROPIC_API_KEY: holds an Anthropic API key (sk-ant-…)", "fix: unset ANTHROPIC_API_KEY" },
        { "api-key-other", "✗ ANTHROPIC_API_KEY: is set", "fix: unset ANTHROPIC_API_KEY" },
        { "token-no-prefix", "✗ ANTHROPIC_AUTH_TOKEN: the key is missing its sk-mel- prefix", "fix: unset ANTHROPIC_AUTH_TOKEN" },
        { "token-wrong-length", "✗ ANTHROPIC_AUTH_TOKEN: the key looks truncated", "fix: unset ANTHROPIC_AUTH_TOKEN" },
        { "stored-key-wrong-length", "✗ key format: MELIOUS_API_KEY: the key is too long", "fix: set MELIOUS_API_KEY to the whole key" },
        { "claude-credentials", "✗ claude login: cached Claude credentials in", "fix: run `claude /logout` once, or delete" },
        { "project-settings", "✗ settings: {project}/.claude/settings.json overrides the environment: ANTHROPIC_BASE_URL", "fix: `melious doctor --fix`" },
        { "local-settings", "✗ settings: {project}/.claude/settings.local.json overrides the environment: ANTHROPIC_API_KEY", "fix: `melious doctor --fix`" },
        { "settings-provider", "✗ settings: {project}/.claude/settings.local.json sets CLAUDE_CODE_USE_BEDROCK, CLAUDE_CODE_OAUTH_TOKEN: Claude Code would use another provider", "fix: `melious doctor --fix` removes them" },
        { "user-settings", "✗ settings: {home}/.claude/settings.json overrides the environment: ANTHROPIC_DEFAULT_HAIKU_MODEL", "--user`" },
        { "model-exported-unknown", "✗ ANTHROPIC_DEFAULT_HAIKU_MODEL (exported in this shell): retired-model-x does not resolve: the gateway has no model, alias or tier by that name", "fix: run `melious models` and export ANTHROPIC_DEFAULT_HAIKU_MODEL=" },
        { "model-settings-unknown", "✗ ANTHROPIC_MODEL (in {project}/.claude/settings.local.json): retired-model-x does not resolve", "fix: run `melious models` and set a listed model there, or `melious doctor --fix`" },
        { "revoked-key", "✗ key: the gateway refused the key (403): this API key has been revoked", "fix: the key was revoked" },
        { "gateway-down", "✗ gateway: http://127.0.0.1:", "fix: check the URL" },
        { "claude-broken", "✗ claude: {bin}/claude does not answer --version", "fix: reinstall: `npm install -g @anthropic-ai/claude-code`" },
        { "no-claude", "✗ claude: Claude Code is not installed", "fix: run `melious tools install claude-code`" },
        { "not-logged-in", "✗ melious login: no gateway URL or key configured", "fix: run `melious login`" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task EachMisconfiguration_IsDetected_WithItsFix(string kind, string problem, string fix)
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        if (kind == "claude-broken")
        {
            var broken = Path.Combine(box.Bin, "claude");
            File.WriteAllText(broken, "#!/bin/sh\necho 'Error: Cannot find module' >&2\nexit 1\n");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(broken, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }
        else if (kind != "no-claude")
        {
            box.UseClaude("pinned");
        }

        if (kind != "not-logged-in")
        {
            await box.LoginAsync(s.Gateway.BaseUrl, s.Key);
        }

        var claudeDir = Directory.CreateDirectory(Path.Combine(box.Home, ".claude")).FullName;
        var projectClaude = Directory.CreateDirectory(Path.Combine(box.Project, ".claude")).FullName;
        switch (kind)
        {
            case "base-url-v1": box.Environment["ANTHROPIC_BASE_URL"] = s.Gateway.BaseUrl + "/v1"; break;
            case "base-url-elsewhere": box.Environment["ANTHROPIC_BASE_URL"] = "https://api.anthropic.com"; break;
            case "api-key-anthropic": box.Environment["ANTHROPIC_API_KEY"] = "sk-ant-api03-" + new string('x', 80); break;
            case "api-key-other": box.Environment["ANTHROPIC_API_KEY"] = s.Key; break;
            case "token-no-prefix": box.Environment["ANTHROPIC_AUTH_TOKEN"] = s.Key["sk-mel-".Length..]; break;
            case "token-wrong-length": box.Environment["ANTHROPIC_AUTH_TOKEN"] = s.Key[..40]; break;
            case "stored-key-wrong-length": box.Environment["MELIOUS_API_KEY"] = s.Key + "zz"; break;
            case "claude-credentials": File.WriteAllText(Path.Combine(claudeDir, ".credentials.json"), """{"claudeAiOauth":{"accessToken":"x"}}"""); break;
            case "project-settings": File.WriteAllText(Path.Combine(projectClaude, "settings.json"), """{"env":{"ANTHROPIC_BASE_URL":"https://api.anthropic.com"}}"""); break;
            case "local-settings": File.WriteAllText(Path.Combine(projectClaude, "settings.local.json"), """{"env":{"ANTHROPIC_API_KEY":"sk-ant-api03-old"}}"""); break;
            case "settings-provider": File.WriteAllText(Path.Combine(projectClaude, "settings.local.json"), """{"env":{"CLAUDE_CODE_USE_BEDROCK":"1","CLAUDE_CODE_OAUTH_TOKEN":"sk-ant-oat01-xyz","MY_VAR":"kept"}}"""); break;
            case "user-settings": File.WriteAllText(Path.Combine(claudeDir, "settings.json"), """{"model":"opus","env":{"ANTHROPIC_DEFAULT_HAIKU_MODEL":"claude-haiku-4-5"}}"""); break;
            case "model-exported-unknown": box.Environment["ANTHROPIC_DEFAULT_HAIKU_MODEL"] = "retired-model-x"; break;
            case "model-settings-unknown": File.WriteAllText(Path.Combine(projectClaude, "settings.local.json"), """{"env":{"ANTHROPIC_MODEL":"retired-model-x"}}"""); break;
            case "revoked-key":
                await s.Gateway.Services.GetRequiredService<ApiKeyStore>().RevokeAsync(ApiKeys.KeyIdFromHash(ApiKeys.Hash(s.Key)), TestContext.Current.CancellationToken);
                s.Gateway.Services.GetRequiredService<ApiKeyAuthenticator>().Clear();
                break;
            case "gateway-down": box.Environment["MELIOUS_BASE_URL"] = $"http://127.0.0.1:{Ports.Free()}"; break;
        }

        var run = await box.RunAsync("doctor");
        var expectedProblem = problem.Replace("{project}", box.Project, StringComparison.Ordinal).Replace("{home}", box.Home, StringComparison.Ordinal).Replace("{bin}", box.Bin, StringComparison.Ordinal);
        Assert.Equal(1, run.ExitCode);
        var lines = run.Stdout.Split('\n');
        var index = Array.FindIndex(lines, l => l.StartsWith(expectedProblem, StringComparison.Ordinal));
        Assert.True(index >= 0, $"no line starting with \"{expectedProblem}\":\n{run.Stdout}");
        Assert.True(index + 1 < lines.Length && lines[index + 1].TrimStart().StartsWith("fix:", StringComparison.Ordinal) && lines[index + 1].Contains(fix, StringComparison.Ordinal),
            $"the fix line after \"{lines[index]}\" does not contain \"{fix}\":\n{run.Stdout}");

        // Only this problem (and what it causes) is reported.
        var failures = lines.Count(l => l.StartsWith('✗'));
        Assert.True(failures == 1 || kind is "not-logged-in" or "stored-key-wrong-length" || (kind == "model-settings-unknown" && failures == 2), $"{failures} problems for one misconfiguration:\n{run.Stdout}");
        Assert.DoesNotContain(s.Key[10..], run.Stdout + run.Stderr, StringComparison.Ordinal);

        if (kind is "project-settings" or "local-settings" or "user-settings" or "model-settings-unknown" or "settings-provider")
        {
            var file = kind switch
            {
                "project-settings" => Path.Combine(projectClaude, "settings.json"),
                "local-settings" or "model-settings-unknown" or "settings-provider" => Path.Combine(projectClaude, "settings.local.json"),
                _ => Path.Combine(claudeDir, "settings.json"),
            };
            var before = File.ReadAllText(file);

            // Asked first: "no" changes nothing.
            var declined = await box.RunAsync(["doctor", "--fix"], "n\n");
            Assert.Equal(1, declined.ExitCode);
            Assert.Equal(before, File.ReadAllText(file));

            var fixedRun = await box.RunAsync(["doctor", "--fix"], "y\n");
            Assert.True(fixedRun.ExitCode == 0, fixedRun.Describe());
            Assert.Equal(before, File.ReadAllText(BackupOf(fixedRun, file)));
            Assert.False(File.Exists(file + ".bak"));
            var again = await box.RunAsync("doctor");
            Assert.True(again.ExitCode == 0, again.Describe());
            if (kind == "user-settings")
            {
                Assert.Contains("\"model\": \"opus\"", File.ReadAllText(file), StringComparison.Ordinal);
            }

            if (kind == "settings-provider")
            {
                var fixedText = File.ReadAllText(file);
                Assert.DoesNotContain("CLAUDE_CODE_USE_BEDROCK", fixedText, StringComparison.Ordinal);
                Assert.DoesNotContain("CLAUDE_CODE_OAUTH_TOKEN", fixedText, StringComparison.Ordinal);
                Assert.Contains("\"MY_VAR\": \"kept\"", fixedText, StringComparison.Ordinal);
            }
        }
    }

    /// <summary>
    /// The project's shared settings.json (normally committed) sets ANTHROPIC_AUTH_TOKEN, and the git-ignored
    /// settings.local.json holds a stale key: --fix takes the token out of the shared file instead of writing the
    /// user's key into it, and keeps its backups (old keys included) outside the project, readable by the owner only.
    /// </summary>
    [Fact]
    public async Task Fix_NeverWritesTheKeyIntoTheSharedSettings_NorLeavesBackupsInTheProject()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        box.UseClaude("pinned");
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);
        var projectClaude = Directory.CreateDirectory(Path.Combine(box.Project, ".claude")).FullName;
        var shared = Path.Combine(projectClaude, "settings.json");
        var local = Path.Combine(projectClaude, "settings.local.json");
        var oldKey = "sk-mel-" + new string('O', 43);
        File.WriteAllText(shared, """{"permissions":{"allow":["Bash(ls)"]},"env":{"ANTHROPIC_BASE_URL":"https://api.anthropic.com","ANTHROPIC_AUTH_TOKEN":"KEY"}}""".Replace("KEY", oldKey, StringComparison.Ordinal));
        File.WriteAllText(local, """{"env":{"ANTHROPIC_AUTH_TOKEN":"KEY"}}""".Replace("KEY", oldKey, StringComparison.Ordinal));

        var run = await box.RunAsync("doctor");
        Assert.Equal(1, run.ExitCode);
        Assert.Contains($"✗ settings: {shared} sets ANTHROPIC_AUTH_TOKEN: this file is shared with the project", run.Stdout, StringComparison.Ordinal);
        Assert.Contains($"✗ settings: {shared} overrides the environment: ANTHROPIC_BASE_URL has a different value", run.Stdout, StringComparison.Ordinal);
        Assert.Contains($"✗ settings: {local} overrides the environment: ANTHROPIC_AUTH_TOKEN", run.Stdout, StringComparison.Ordinal);

        var fixedRun = await box.RunAsync("doctor", "--fix", "--yes");
        Assert.True(fixedRun.ExitCode == 0, fixedRun.Describe());
        Assert.Contains("  - ANTHROPIC_AUTH_TOKEN = sk-mel-… (50 characters)", fixedRun.Stdout, StringComparison.Ordinal);
        var sharedText = File.ReadAllText(shared);
        Assert.DoesNotContain(s.Key["sk-mel-".Length..], sharedText, StringComparison.Ordinal);
        Assert.DoesNotContain("ANTHROPIC_AUTH_TOKEN", sharedText, StringComparison.Ordinal);
        Assert.Contains(s.Gateway.BaseUrl, sharedText, StringComparison.Ordinal);
        Assert.Contains("Bash(ls)", sharedText, StringComparison.Ordinal);
        Assert.Contains(s.Key, File.ReadAllText(local), StringComparison.Ordinal);

        // No copy in the project: every file there other than the git-ignored settings.local.json is key-free.
        foreach (var file in Directory.EnumerateFiles(box.Project, "*", SearchOption.AllDirectories).Where(f => f != local))
        {
            var text = File.ReadAllText(file);
            Assert.False(text.Contains(s.Key["sk-mel-".Length..], StringComparison.Ordinal) || text.Contains(oldKey, StringComparison.Ordinal), $"{file} holds a key");
        }

        foreach (var original in new[] { shared, local })
        {
            var backup = BackupOf(fixedRun, original);
            Assert.StartsWith(Path.Combine(box.Home, ".config", "melious", "backups") + Path.DirectorySeparatorChar, backup, StringComparison.Ordinal);
            Assert.Contains(oldKey, File.ReadAllText(backup), StringComparison.Ordinal);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(backup));
            }
        }

        var again = await box.RunAsync("doctor");
        Assert.True(again.ExitCode == 0, again.Describe());
    }

    /// <summary>The backup path <c>doctor --fix</c> reported for a file ("Fixed FILE (backup: COPY).").</summary>
    internal static string BackupOf(ProcessResult run, string file)
    {
        var prefix = $"Fixed {file} (backup: ";
        var line = run.Stdout.Split('\n').Select(l => l.Trim()).SingleOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        Assert.True(line is not null, $"no \"{prefix}\" line:\n{run.Stdout}");
        return line[prefix.Length..^2];
    }

    [Fact]
    public async Task CleanSetup_Passes()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        box.UseClaude("pinned");
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);
        var run = await box.RunAsync("doctor");
        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.DoesNotContain("✗", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("✓ key: accepted: account acme", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("✓ ANTHROPIC_DEFAULT_HAIKU_MODEL: light-model resolves", run.Stdout, StringComparison.Ordinal);
        Assert.Contains("✓ CLAUDE_CODE_SUBAGENT_MODEL: secondary-model resolves", run.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"✓ claude: 2\.1\.197 \(Claude Code\) at ", run.Stdout);
        Assert.EndsWith("All checks passed.", run.Stdout.TrimEnd(), StringComparison.Ordinal);

        // A model pinned by hand that the gateway routes to a tier resolves too (to the tier's model).
        box.Environment["ANTHROPIC_DEFAULT_HAIKU_MODEL"] = "claude-haiku-4-5-20251001";
        var routed = await box.RunAsync("doctor");
        Assert.True(routed.ExitCode == 0, routed.Describe());
        Assert.Contains("✓ ANTHROPIC_DEFAULT_HAIKU_MODEL (exported in this shell): claude-haiku-4-5-20251001 resolves to light-model", routed.Stdout, StringComparison.Ordinal);
    }
}

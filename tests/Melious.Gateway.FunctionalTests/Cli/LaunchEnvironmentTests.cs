using System.Diagnostics;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Cli;

/// <summary>
/// <c>melious launch claude-code</c> with a stand-in <c>claude</c> (a shell script on PATH) that records what it got:
/// the exact environment (every variable set, the flags overriding the tiers, the auto-compact window derived from the
/// main model, inherited <c>ANTHROPIC_*</c> and provider switches removed and named once, other variables kept), the
/// arguments after <c>--</c>, the exit code passed through (also 128+N when a signal ends claude), SIGTERM,
/// SIGHUP, SIGQUIT and SIGINT sent to melious reaching claude, and melious waiting for a claude that outlives them.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class LaunchEnvironmentTests(AzuriteFixture azurite)
{
    private const string FakeClaude = """
        #!/bin/sh
        if [ "$1" = "--version" ]; then echo "0.0.1 (Claude Code)"; exit 0; fi
        env > "$FAKE_DIR/env"
        for a in "$@"; do printf '%s\n' "$a"; done > "$FAKE_DIR/args"
        case "$FAKE_MODE" in
          exit) exit 42 ;;
          killself) kill -KILL $$ ;;
          wait)
            trap 'echo TERM >> "$FAKE_DIR/signals"; exit 77' TERM
            trap 'echo HUP >> "$FAKE_DIR/signals"; exit 78' HUP
            trap 'echo INT >> "$FAKE_DIR/signals"; exit 79' INT
            trap 'echo QUIT >> "$FAKE_DIR/signals"; exit 80' QUIT
            echo ready > "$FAKE_DIR/ready"
            i=0; while [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
            exit 3 ;;
          linger)
            trap 'echo INT >> "$FAKE_DIR/signals"' INT
            trap 'echo TERM >> "$FAKE_DIR/signals"; sleep 4; exit 77' TERM
            echo ready > "$FAKE_DIR/ready"
            i=0; while [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
            exit 3 ;;
        esac
        exit 0
        """;

    [Fact]
    public async Task Launch_SetsExactlyTheGatewayEnvironment_FlagsOverride_ExitCodePassesThrough()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var store = s.Catalog();
        var windowModel = CatalogKit.Unique("window-model");
        await store.UpsertModelAsync(windowModel, new Dictionary<string, object?> { ["ContextWindow"] = 65536L }, TestContext.Current.CancellationToken);
        await s.AwaitCatalogAsync(windowModel, m => CatalogKit.ContextWindow(m) == 65536);

        using var box = new CliSandbox();
        var dir = UseFakeClaude(box);
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);

        // The parent shell: variables that would override the launch, a provider switch, and one of the user's own.
        box.Environment["ANTHROPIC_API_KEY"] = "sk-ant-api03-ParentShellSecretParentShellSecret-AAAA";
        box.Environment["ANTHROPIC_SMALL_FAST_MODEL"] = "claude-3-5-haiku-20241022";
        box.Environment["ANTHROPIC_CUSTOM_HEADERS"] = "x-team: parent";
        box.Environment["CLAUDE_CODE_USE_BEDROCK"] = "1";
        box.Environment["ANTHROPIC_AUTH_TOKEN"] = s.Key; // the same value melious sets: not worth a warning
        box.Environment["MY_OWN_VARIABLE"] = "kept";
        box.Environment["FAKE_MODE"] = "exit";

        var run = await box.RunAsync(["launch", "claude-code", "--model", windowModel, "--small-model", "secondary-model", "--subagent-model", "light-model", "--", "-p", "hello world", "--verbose"]);
        Assert.Equal(42, run.ExitCode);
        var env = ReadEnv(Path.Combine(dir, "env"));
        var expected = new Dictionary<string, string>
        {
            ["ANTHROPIC_BASE_URL"] = s.Gateway.BaseUrl,
            ["ANTHROPIC_AUTH_TOKEN"] = s.Key,
            ["ANTHROPIC_API_KEY"] = "",
            ["ANTHROPIC_MODEL"] = windowModel,
            ["ANTHROPIC_SMALL_FAST_MODEL"] = "secondary-model",
            ["ANTHROPIC_DEFAULT_OPUS_MODEL"] = "main-model",
            ["ANTHROPIC_DEFAULT_SONNET_MODEL"] = "secondary-model",
            ["ANTHROPIC_DEFAULT_HAIKU_MODEL"] = "secondary-model",
            ["CLAUDE_CODE_SUBAGENT_MODEL"] = "light-model",
            ["API_TIMEOUT_MS"] = "3000000",
            ["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1",
            ["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] = "65536",
        };
        Assert.Equal(expected.OrderBy(e => e.Key), env.Where(e => e.Key.StartsWith("ANTHROPIC_", StringComparison.Ordinal) || e.Key.StartsWith("CLAUDE_CODE_", StringComparison.Ordinal) || e.Key == "API_TIMEOUT_MS").OrderBy(e => e.Key));
        Assert.Equal("kept", env["MY_OWN_VARIABLE"]);
        Assert.Equal(box.Home, env["HOME"]);
        Assert.Equal(["-p", "hello world", "--verbose"], File.ReadAllLines(Path.Combine(dir, "args")));

        // Told once, by name, never the values.
        var notes = run.Stderr.Split('\n').Where(l => l.StartsWith("melious: not passing", StringComparison.Ordinal)).ToList();
        Assert.Equal(["melious: not passing ANTHROPIC_API_KEY, ANTHROPIC_CUSTOM_HEADERS, ANTHROPIC_SMALL_FAST_MODEL, CLAUDE_CODE_USE_BEDROCK from your shell to Claude Code (the gateway settings replace them; your shell is unchanged)"], notes);
        Assert.DoesNotContain("ParentShellSecret", run.Stdout + run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(s.Key[10..], run.Stdout + run.Stderr, StringComparison.Ordinal);

        // Defaults from the tiers; nothing inherited to mention.
        box.Environment.Remove("ANTHROPIC_API_KEY");
        box.Environment.Remove("ANTHROPIC_SMALL_FAST_MODEL");
        box.Environment.Remove("ANTHROPIC_CUSTOM_HEADERS");
        box.Environment.Remove("CLAUDE_CODE_USE_BEDROCK");
        box.Environment["FAKE_MODE"] = "none";
        var plain = await box.RunAsync(["launch", "claude-code"]);
        Assert.True(plain.ExitCode == 0, plain.Describe());
        Assert.DoesNotContain("not passing", plain.Stderr, StringComparison.Ordinal);
        env = ReadEnv(Path.Combine(dir, "env"));
        Assert.Equal("main-model", env["ANTHROPIC_MODEL"]);
        Assert.Equal("light-model", env["ANTHROPIC_SMALL_FAST_MODEL"]);
        Assert.Equal("light-model", env["ANTHROPIC_DEFAULT_HAIKU_MODEL"]);
        Assert.Equal("secondary-model", env["CLAUDE_CODE_SUBAGENT_MODEL"]);
        Assert.Equal("131072", env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"]);
        Assert.Empty(File.ReadAllLines(Path.Combine(dir, "args")));

        // A claude ended by a signal: 128 + its number, like a shell reports it.
        box.Environment["FAKE_MODE"] = "killself";
        var killed = await box.RunAsync(["launch", "claude-code"]);
        Assert.Equal(128 + 9, killed.ExitCode);
    }

    [Fact]
    public async Task Launch_WarnsAboutSettingsThatWouldUndoIt_AndSaysWhatToDoWithoutClaude()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);

        // No claude anywhere (nor an npm prefix holding one).
        box.Environment["npm_config_prefix"] = Path.Combine(box.Home, "empty-prefix");
        var missing = await box.RunAsync(["launch", "claude-code"]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Equal("error: Claude Code is not installed: run `melious tools install claude-code`", missing.Stderr.Trim());

        // Settings that win over the environment: one entry that differs is named, one that agrees is not, and a
        // provider switch (which would send Claude Code elsewhere) is named too.
        var dir = UseFakeClaude(box);
        box.Environment["FAKE_MODE"] = "none";
        var settings = Directory.CreateDirectory(Path.Combine(box.Project, ".claude")).FullName;
        File.WriteAllText(Path.Combine(settings, "settings.local.json"), """{"env":{"ANTHROPIC_BASE_URL":"https://api.anthropic.com","ANTHROPIC_DEFAULT_SONNET_MODEL":"secondary-model","CLAUDE_CODE_USE_VERTEX":"1"}}""");
        var run = await box.RunAsync(["launch", "claude-code"]);
        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.Equal(
            [$"melious: warning: {Path.Combine(settings, "settings.local.json")} sets ANTHROPIC_BASE_URL, CLAUDE_CODE_USE_VERTEX and Claude Code lets settings win; run `melious doctor --fix`"],
            run.Stderr.Split('\n').Where(l => l.Contains("warning", StringComparison.Ordinal)));
        Assert.True(File.Exists(Path.Combine(dir, "env")), "claude was not started");
    }

    [Theory]
    [InlineData("TERM", 77)]
    [InlineData("HUP", 78)]
    [InlineData("QUIT", 80)]
    [InlineData("INT", 79)]
    public async Task SignalsSentToMelious_ReachClaude_AndItsExitCodeIsMelious(string name, int exitCode)
    {
        // A signal this test process was started ignoring (nohup ignores HUP; a background job of a shell without job
        // control ignores INT and QUIT) is ignored by every process it starts, melious and the stand-in claude too:
        // nothing could be forwarded, and the run would wait out its bound.
        if (InheritedIgnoredSignals().Contains(name))
        {
            Assert.Skip($"SIG{name} is ignored by this test run (inherited SIG_IGN), so no child process can receive it");
        }

        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        var dir = UseFakeClaude(box);
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);
        box.Environment["FAKE_MODE"] = "wait";

        // stdin is a pipe, not a terminal: nothing else would deliver a SIGINT to claude, so melious forwards it.
        using var process = box.Start(["launch", "claude-code"]);
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        try
        {
            var ready = Path.Combine(dir, "ready");
            for (var i = 0; i < 1200 && !File.Exists(ready) && !process.HasExited; i++)
            {
                await Task.Delay(100, TestContext.Current.CancellationToken);
            }

            if (!File.Exists(ready))
            {
                Assert.Fail($"claude did not start: {await stderr}");
            }

            using (var kill = Process.Start("kill", ["-s", name, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync(TestContext.Current.CancellationToken);
                Assert.Equal(0, kill.ExitCode);
            }

            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            bounded.CancelAfter(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(bounded.Token);
            Assert.True(process.ExitCode == exitCode, $"exit {process.ExitCode}\n{await stdout}{await stderr}");
            Assert.Equal([name], File.ReadAllLines(Path.Combine(dir, "signals")));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>
    /// A claude that keeps running after SIGINT (as Claude Code does when Ctrl-C interrupts a turn) and takes its time
    /// to end after SIGTERM: melious waits for it, however long, and exits with its code.
    /// </summary>
    [Fact]
    public async Task ClaudeOutlivingTheSignal_MeliousKeepsWaiting_AndExitsWithClaudesCode()
    {
        var ignored = InheritedIgnoredSignals();
        if (ignored.Contains("INT") || ignored.Contains("TERM"))
        {
            Assert.Skip("SIGINT or SIGTERM is ignored by this test run (inherited SIG_IGN), so no child process can receive it");
        }

        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        var dir = UseFakeClaude(box);
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);
        box.Environment["FAKE_MODE"] = "linger";
        var signals = Path.Combine(dir, "signals");

        using var process = box.Start(["launch", "claude-code"]);
        var stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        try
        {
            var ready = Path.Combine(dir, "ready");
            for (var i = 0; i < 1200 && !File.Exists(ready) && !process.HasExited; i++)
            {
                await Task.Delay(100, TestContext.Current.CancellationToken);
            }

            if (!File.Exists(ready))
            {
                Assert.Fail($"claude did not start: {await stderr}");
            }

            // Ctrl-C: claude notes it and carries on, and so does melious (no exit 130 two seconds later).
            await SignalAsync(process, "INT");
            await Task.Delay(TimeSpan.FromSeconds(3), TestContext.Current.CancellationToken);
            if (process.HasExited)
            {
                Assert.Fail($"melious exited ({process.ExitCode}) while claude was still running\n{await stdout}{await stderr}");
            }

            Assert.Equal(["INT"], File.ReadAllLines(signals));

            // SIGTERM reaches claude at once; claude needs 4 s to end, and melious waits for it.
            await SignalAsync(process, "TERM");
            for (var i = 0; i < 50 && File.ReadAllLines(signals).Length < 2; i++)
            {
                await Task.Delay(100, TestContext.Current.CancellationToken);
            }

            Assert.Equal(["INT", "TERM"], File.ReadAllLines(signals));
            await Task.Delay(TimeSpan.FromSeconds(2.5), TestContext.Current.CancellationToken);
            if (process.HasExited)
            {
                Assert.Fail($"melious exited ({process.ExitCode}) before claude did\n{await stdout}{await stderr}");
            }

            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
            bounded.CancelAfter(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(bounded.Token);
            Assert.True(process.ExitCode == 77, $"exit {process.ExitCode}\n{await stdout}{await stderr}");
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    private static async Task SignalAsync(Process process, string name)
    {
        using var kill = Process.Start("kill", ["-s", name, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync(TestContext.Current.CancellationToken);
        Assert.Equal(0, kill.ExitCode);
    }

    /// <summary>The signals this process ignores (the SigIgn mask of /proc/self/status), as kill(1) names them.</summary>
    private static HashSet<string> InheritedIgnoredSignals()
    {
        if (!File.Exists("/proc/self/status"))
        {
            return []; // not Linux: no such record, nothing known to be ignored
        }

        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        var mask = line is null ? 0UL : ulong.Parse(line["SigIgn:".Length..].Trim(), System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
        (string Name, int Number)[] known = [("HUP", 1), ("INT", 2), ("QUIT", 3), ("TERM", 15)];
        return known.Where(k => (mask & (1UL << (k.Number - 1))) != 0).Select(k => k.Name).ToHashSet();
    }

    /// <summary>Puts the stand-in claude first on PATH; returns the directory it writes its records to.</summary>
    private static string UseFakeClaude(CliSandbox box)
    {
        var path = Path.Combine(box.Bin, "claude");
        File.WriteAllText(path, FakeClaude.Replace("\r\n", "\n", StringComparison.Ordinal) + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var dir = Directory.CreateDirectory(Path.Combine(box.Home, "fake-claude")).FullName;
        box.Environment["FAKE_DIR"] = dir;
        return dir;
    }

    private static Dictionary<string, string> ReadEnv(string path) => File.ReadAllLines(path)
        .Where(l => l.Contains('=', StringComparison.Ordinal))
        .Select(l => (Name: l[..l.IndexOf('=', StringComparison.Ordinal)], Value: l[(l.IndexOf('=', StringComparison.Ordinal) + 1)..]))
        .ToDictionary(e => e.Name, e => e.Value, StringComparer.Ordinal);
}

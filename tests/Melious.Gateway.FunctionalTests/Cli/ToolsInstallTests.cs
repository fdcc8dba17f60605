namespace Melious.Gateway.FunctionalTests.Cli;

/// <summary>
/// <c>melious tools install claude-code</c>, every path, as real processes in a temporary HOME: an existing
/// <c>claude</c> on PATH; one in npm's global prefix (the real npm, pointed at a temporary prefix with
/// <c>npm_config_prefix</c>); none, so <c>npm install -g @anthropic-ai/claude-code</c> runs (a recording <c>npm</c>
/// shim first on PATH simulates the install, nothing is downloaded); a failing install; npm missing; Node.js too old.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class ToolsInstallTests
{
    private static readonly string[] Install = ["tools", "install", "claude-code"];

    /// <summary>An <c>npm</c> that logs each call (arguments joined by <c>|</c>, one call a line) and fakes the two calls melious makes.</summary>
    private const string NpmShim = """
        #!/bin/sh
        ( for a in "$@"; do printf '%s|' "$a"; done; echo ) >> "$SHIM_LOG"
        case "$1" in
          prefix) echo "$npm_config_prefix" ;;
          install)
            if [ -n "$SHIM_FAIL" ]; then echo "npm ERR! code EACCES" >&2; exit 243; fi
            mkdir -p "$npm_config_prefix/bin"
            printf '#!/bin/sh\necho "9.9.9 (Claude Code)"\n' > "$npm_config_prefix/bin/claude"
            chmod +x "$npm_config_prefix/bin/claude"
            echo "added 1 package in 1s" ;;
          *) exit 1 ;;
        esac
        """;

    [Fact]
    public async Task ClaudeOnPath_IsReportedWithItsVersion_AndNpmIsNotRun()
    {
        using var box = new CliSandbox();
        box.UseClaude("pinned");
        var log = UseNpmShim(box, Path.Combine(box.Home, "prefix"));

        var run = await box.RunAsync(Install);
        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.Equal($"Claude Code is installed: 2.1.197 (Claude Code) at {Path.Combine(box.Bin, "claude")}", run.Stdout.Trim());
        Assert.False(File.Exists(log), "npm was run although claude is on PATH");
    }

    [Fact]
    public async Task ClaudeInNpmGlobalPrefix_NotOnPath_IsFoundThroughTheRealNpm()
    {
        using var box = new CliSandbox();
        var prefix = Path.Combine(box.Home, "npm-global");
        var bin = Directory.CreateDirectory(Path.Combine(prefix, "bin")).FullName;
        File.CreateSymbolicLink(Path.Combine(bin, "claude"), Path.GetFullPath(CliSandbox.ClaudePath("pinned")));

        // The system npm (on the sandbox's PATH), told its global prefix the way users do; offline, so a wrong turn
        // into `npm install` fails instead of downloading.
        Assert.NotNull(FindOn(box.PathVariable, "npm"));
        box.Environment["npm_config_prefix"] = prefix;
        box.Environment["npm_config_offline"] = "true";
        var run = await box.RunAsync(Install);
        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.Equal($"Claude Code is installed: 2.1.197 (Claude Code) at {Path.Combine(bin, "claude")}", run.Stdout.Trim());
    }

    [Fact]
    public async Task NoClaude_RunsNpmInstallGlobal_ThenReportsTheInstalledVersion()
    {
        using var box = new CliSandbox();
        var prefix = Path.Combine(box.Home, "npm-global");
        var log = UseNpmShim(box, prefix);

        var run = await box.RunAsync(Install);
        Assert.True(run.ExitCode == 0, run.Describe());
        Assert.Equal(
            ["prefix|-g|", "install|-g|@anthropic-ai/claude-code|", "prefix|-g|"],
            File.ReadAllLines(log));
        Assert.Contains($"Installing Claude Code: {Path.Combine(box.Bin, "npm")} install -g @anthropic-ai/claude-code", run.Stdout, StringComparison.Ordinal);

        // npm's own output reaches the user (inherited stdout).
        Assert.Contains("added 1 package", run.Stdout, StringComparison.Ordinal);
        Assert.Contains($"Installed: 9.9.9 (Claude Code) at {Path.Combine(prefix, "bin", "claude")}", run.Stdout, StringComparison.Ordinal);

        // Once installed, a second run finds it and runs no install.
        var again = await box.RunAsync(Install);
        Assert.True(again.ExitCode == 0, again.Describe());
        Assert.Contains("Claude Code is installed: 9.9.9 (Claude Code)", again.Stdout, StringComparison.Ordinal);
        Assert.Single(File.ReadAllLines(log), l => l.StartsWith("install|", StringComparison.Ordinal));
    }

    [Fact]
    public async Task NpmInstallFails_PassesItsExitCode_AndSaysWhatToDo()
    {
        using var box = new CliSandbox();
        var log = UseNpmShim(box, Path.Combine(box.Home, "npm-global"));
        box.Environment["SHIM_FAIL"] = "1";

        var run = await box.RunAsync(Install);
        Assert.Equal(243, run.ExitCode);
        Assert.Contains("npm ERR! code EACCES", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("error: npm install failed (exit 243)", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("npm config set prefix ~/.npm-global", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("install|-g|@anthropic-ai/claude-code|", File.ReadAllLines(log));
    }

    [Fact]
    public async Task NoNpm_SaysToInstallNode_AndFails()
    {
        using var box = new CliSandbox();

        // A PATH with neither claude, npm nor node (the sandbox's empty bin directory only).
        box.Environment["PATH"] = box.Bin;
        var run = await box.RunAsync(Install);
        Assert.Equal(1, run.ExitCode);
        Assert.Equal("", run.Stdout);
        Assert.Equal(
            "error: npm was not found. Install Node.js 18 or newer (https://nodejs.org), then run `melious tools install claude-code` again (it runs `npm install -g @anthropic-ai/claude-code`).",
            run.Stderr.Trim());
    }

    [Fact]
    public async Task NodeTooOld_SaysSo_AndDoesNotRunTheInstall()
    {
        using var box = new CliSandbox();
        var log = UseNpmShim(box, Path.Combine(box.Home, "npm-global"));
        WriteScript(Path.Combine(box.Bin, "node"), "#!/bin/sh\necho v16.20.2\n");

        var run = await box.RunAsync(Install);
        Assert.Equal(1, run.ExitCode);
        Assert.Contains("error: Node.js v16.20.2 is too old. Claude Code needs Node.js 18 or newer", run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(File.ReadAllLines(log), l => l.StartsWith("install|", StringComparison.Ordinal));
    }

    /// <summary>Puts the recording npm first on PATH with <paramref name="prefix"/> as its global prefix; returns its log file.</summary>
    private static string UseNpmShim(CliSandbox box, string prefix)
    {
        WriteScript(Path.Combine(box.Bin, "npm"), NpmShim.Replace("\r\n", "\n", StringComparison.Ordinal) + "\n");
        var log = Path.Combine(box.Home, "npm-calls.log");
        box.Environment["SHIM_LOG"] = log;
        box.Environment["npm_config_prefix"] = prefix;
        return log;
    }

    private static void WriteScript(string path, string content)
    {
        File.WriteAllText(path, content);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
    }

    private static string? FindOn(string path, string name) =>
        path.Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
}

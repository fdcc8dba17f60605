using System.CommandLine;
using System.CommandLine.Invocation;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Melious.Cli;

/// <summary>
/// <c>melious</c>: login, logout, status, models, usage, tools install claude-code, launch claude-code, config claude-code,
/// doctor. Output on stdout, errors as one line on stderr, exit code 0 on success.
/// </summary>
public static class MeliousCli
{
    private static TextWriter Out => Console.Out;

    private static TextWriter Err => Console.Error;

    public static async Task<int> RunAsync(string[] args)
    {
        Console.OutputEncoding = Encoding.UTF8;
        var root = new RootCommand("melious: use a Melious gateway — sign in, launch Claude Code with every model slot pinned, write its settings, diagnose a broken setup.")
        {
            Login(), Logout(), Status(), Models(), UsageCommand(), Tools(), Launch(), Config(), DoctorCommand(),
        };
        var parsed = root.Parse(args);
        if (parsed.Action is ParseErrorAction)
        {
            Err.WriteLine($"error: {string.Join("; ", parsed.Errors.Select(e => e.Message).Distinct())} (see --help)");
            return 2;
        }

        try
        {
            // No termination handler of System.CommandLine: it would cancel the command on SIGINT/SIGTERM and return
            // 130/143 after 2 s while a launched claude still runs. Outside a launch, the signals end melious as they
            // end any program; during one, ClaudeCode.RunAttachedAsync handles them and waits for the child.
            return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
        }
        catch (Exception ex)
        {
            return Fail(ex);
        }
        finally
        {
            await Out.FlushAsync();
        }
    }

    private static int Fail(Exception ex)
    {
        switch (ex)
        {
            case CliException cli:
                Err.WriteLine("error: " + cli.Message);
                return cli.ExitCode;
            case GatewayException gateway:
                Err.WriteLine("error: " + gateway.Message);
                return 1;
            case OperationCanceledException:
                Err.WriteLine("error: cancelled");
                return 130;
            case IOException or UnauthorizedAccessException:
                Err.WriteLine("error: " + ex.Message);
                return 1;
            default:
                Err.WriteLine($"error: {ex.GetType().Name}: {ex.Message}");
                return 1;
        }
    }

    private static Func<ParseResult, CancellationToken, Task<int>> Guard(Func<ParseResult, CancellationToken, Task<int>> body) => async (result, cancellationToken) =>
    {
        try
        {
            return await body(result, cancellationToken);
        }
        catch (Exception ex)
        {
            return Fail(ex);
        }
    };

    private static Command Login()
    {
        var baseUrl = new Option<string?>("--base-url") { Description = "The gateway's root URL (no /v1). Default: MELIOUS_BASE_URL, the stored URL, or asked." };
        var keyStdin = new Option<bool>("--key-stdin") { Description = "Read the key from stdin (one line) instead of asking for it." };
        var command = new Command("login", "Store the gateway URL and your key (checked against the gateway first) in your user config file.") { baseUrl, keyStdin };
        command.SetAction(Guard(async (result, cancellationToken) =>
        {
            // An empty MELIOUS_BASE_URL counts as unset, as everywhere else (UserConfig.Load).
            var url = result.GetValue(baseUrl)
                ?? (Environment.GetEnvironmentVariable(UserConfig.BaseUrlVariable) is { } fromEnvironment && !string.IsNullOrWhiteSpace(fromEnvironment) ? fromEnvironment : null)
                ?? UserConfig.ReadFile()?.BaseUrl
                ?? Ask("Gateway URL: ");
            if (string.IsNullOrWhiteSpace(url))
            {
                throw new CliException("no gateway URL: pass --base-url");
            }

            var normalized = UserConfig.NormalizeBaseUrl(url);
            if (normalized != url.Trim().TrimEnd('/'))
            {
                Err.WriteLine($"note: using {normalized} (the gateway root; clients add /v1 themselves)");
            }

            string key;
            if (result.GetValue(keyStdin))
            {
                key = (Console.In.ReadLine() ?? "").Trim();
            }
            else if (Console.IsInputRedirected)
            {
                throw new CliException("stdin is not a terminal: pipe the key with --key-stdin");
            }
            else
            {
                key = ReadSecret("API key (sk-mel-…, input hidden): ");
            }

            if (key.Length == 0)
            {
                throw new CliException("no key given");
            }

            if (Melious.Gateway.Auth.KeyFormat.Problem(key) is { } problem)
            {
                Err.WriteLine($"warning: {problem}; asking the gateway anyway");
            }

            using var gateway = new GatewayClient(normalized, key);
            try
            {
                await gateway.ModelsAsync(cancellationToken);
            }
            catch (GatewayException ex)
            {
                throw new CliException($"{ex.Message}. Nothing was stored.");
            }

            UserConfig.Save(new ConfigFile { BaseUrl = normalized, ApiKey = key });
            var who = "";
            try
            {
                var me = await gateway.WhoAmIAsync(cancellationToken);
                who = $" as account {me.Account} (key {me.KeyId} \"{me.KeyName}\", role {me.Role})";
            }
            catch (GatewayException)
            {
                // An older gateway without /v1/me.
            }

            Out.WriteLine($"Logged in to {normalized}{who}.");
            Out.WriteLine($"Stored in {UserConfig.FilePath}{(OperatingSystem.IsWindows() ? "" : " (mode 0600)")}. Next: melious launch claude-code");
            if (Environment.GetEnvironmentVariable(UserConfig.ApiKeyVariable) is { Length: > 0 })
            {
                Err.WriteLine($"note: {UserConfig.ApiKeyVariable} is set and takes precedence over the stored key");
            }

            return 0;
        }));
        return command;
    }

    private static Command Logout()
    {
        var command = new Command("logout", "Delete the stored URL and key.");
        command.SetAction(Guard((_, _) =>
        {
            Out.WriteLine(UserConfig.Delete() ? $"Logged out: removed {UserConfig.FilePath}." : "Not logged in (no config file).");
            if (Environment.GetEnvironmentVariable(UserConfig.ApiKeyVariable) is { Length: > 0 })
            {
                Err.WriteLine($"note: {UserConfig.ApiKeyVariable} is still set in this shell");
            }

            return Task.FromResult(0);
        }));
        return command;
    }

    private static Command Status()
    {
        var command = new Command("status", "The gateway, your key's account and role, and the model each Claude Code slot resolves to.");
        command.SetAction(Guard(async (_, cancellationToken) =>
        {
            var config = UserConfig.Load();
            var (url, key) = config.Require();
            using var gateway = new GatewayClient(url, key);
            Out.WriteLine($"Gateway:  {url}{(config.BaseUrlSource == Source.Environment ? $" (from {UserConfig.BaseUrlVariable})" : "")}");
            try
            {
                var me = await gateway.WhoAmIAsync(cancellationToken);
                Out.WriteLine($"Account:  {me.Account}");
                Out.WriteLine($"Key:      {me.KeyId} \"{me.KeyName}\"{(config.ApiKeySource == Source.Environment ? $" (from {UserConfig.ApiKeyVariable})" : "")}");
                Out.WriteLine($"Role:     {me.Role}");
            }
            catch (GatewayException ex) when (ex.Status == System.Net.HttpStatusCode.NotFound)
            {
                Out.WriteLine("Account:  (this gateway has no /v1/me)");
            }

            var models = await gateway.ModelsAsync(cancellationToken);
            Out.WriteLine("Tiers:");
            foreach (var tier in new[] { "opus", "sonnet", "haiku" })
            {
                var entry = models.FirstOrDefault(m => m.Id == "claude-" + tier);
                Out.WriteLine(entry is null
                    ? $"  {tier,-7} (not configured)"
                    : $"  {tier,-7} → {entry.Meta?.ResolvesTo ?? entry.Id} ({Tokens(entry.Meta?.ContextWindow ?? entry.MaxInputTokens)} context)");
            }

            var pinned = await ClaudeEnvironment.ResolveAsync(gateway, null, null, null, cancellationToken);
            Out.WriteLine($"Claude Code (melious launch): main {pinned.Main}, subagents {pinned.Subagent}, small/background {pinned.SmallFast}, auto-compact window {Tokens(pinned.MainContextWindow)}");
            return 0;
        }));
        return command;
    }

    private static Command Models()
    {
        var json = new Option<bool>("--json") { Description = "Print the list as JSON." };
        var command = new Command("models", "The gateway's models with context window, max output and capabilities.") { json };
        command.SetAction(Guard(async (result, cancellationToken) =>
        {
            var (url, key) = UserConfig.Load().Require();
            using var gateway = new GatewayClient(url, key);
            var models = await gateway.ModelsAsync(cancellationToken);
            if (result.GetValue(json))
            {
                Out.WriteLine(JsonSerializer.Serialize(models, CliJson.Default.ListGatewayModel));
                return 0;
            }

            var rows = models.Select(m => new[]
            {
                m.Id,
                m.Meta?.ResolvesTo ?? "",
                Tokens(m.Meta?.ContextWindow ?? m.MaxInputTokens),
                Tokens(m.Meta?.MaxOutputTokens ?? m.MaxTokens),
                Capabilities(m.Meta?.Capabilities),
            }).ToList();
            WriteTable(["MODEL", "RESOLVES TO", "CONTEXT", "MAX OUTPUT", "CAPABILITIES"], rows);
            return 0;
        }));
        return command;
    }

    private static Command UsageCommand()
    {
        var from = new Option<string?>("--from") { Description = "First UTC day, YYYY-MM-DD (default: the first day of this month)." };
        var to = new Option<string?>("--to") { Description = "Last UTC day, inclusive, YYYY-MM-DD (default: today)." };
        var by = new Option<string>("--by") { Description = "One row per UTC day, model or session.", DefaultValueFactory = _ => "day" };
        by.AcceptOnlyFromAmong("day", "model", "session");
        var json = new Option<bool>("--json") { Description = "Print the rows and totals as JSON." };
        var command = new Command("usage", "Your own usage: requests, tokens, cost (exact, per currency), energy and emissions, by UTC day, model or session.") { from, to, by, json };
        command.SetAction(Guard(async (result, cancellationToken) =>
        {
            var (start, end) = UsageReport.Range(result.GetValue(from), result.GetValue(to), DateTimeOffset.UtcNow);
            var (url, key) = UserConfig.Load().Require();
            using var gateway = new GatewayClient(url, key);
            var usage = await UsageReport.ReadAsync(gateway, start, end, result.GetValue(by) ?? "day", cancellationToken);
            if (result.GetValue(json))
            {
                Out.WriteLine(JsonSerializer.Serialize(usage, CliJson.Default.UsageOutput));
            }
            else
            {
                UsageReport.Write(Out, usage);
            }

            return 0;
        }));
        return command;
    }

    private static Command Tools()
    {
        var install = new Command("install", "Install a tool.");
        var claude = new Command("claude-code", $"Find Claude Code (PATH, npm's global prefix) or install it with `npm install -g {ClaudeCode.NpmPackage}` (Node 18+).");
        claude.SetAction(Guard((_, _) =>
        {
            if (ClaudeCode.Locate() is { } found)
            {
                Out.WriteLine($"Claude Code is installed: {ClaudeCode.Version(found) ?? "version unknown"} at {found}");
                return Task.FromResult(0);
            }

            var npm = ClaudeCode.FindOnPath("npm");
            if (npm is null)
            {
                throw new CliException($"npm was not found. Install Node.js 18 or newer (https://nodejs.org), then run `melious tools install claude-code` again (it runs `npm install -g {ClaudeCode.NpmPackage}`).");
            }

            if (ClaudeCode.NodeProblem() is { } node)
            {
                throw new CliException($"{node}. Claude Code needs Node.js 18 or newer: install it (https://nodejs.org), then run `melious tools install claude-code` again.");
            }

            Out.WriteLine($"Installing Claude Code: {npm} install -g {ClaudeCode.NpmPackage}");
            var info = new ProcessStartInfo(npm);
            foreach (var arg in new[] { "install", "-g", ClaudeCode.NpmPackage })
            {
                info.ArgumentList.Add(arg);
            }

            return RunInstallAsync(info);
        }));
        install.Subcommands.Add(claude);
        return new Command("tools", "Install the tools melious launches.") { install };
    }

    private static async Task<int> RunInstallAsync(ProcessStartInfo info)
    {
        var code = await ClaudeCode.RunAttachedAsync(info);
        if (code != 0)
        {
            throw new CliException($"npm install failed (exit {code}); if it is a permissions error, set an npm prefix you own (`npm config set prefix ~/.npm-global` and add ~/.npm-global/bin to PATH) and retry", code);
        }

        Out.WriteLine(ClaudeCode.Locate() is { } found ? $"Installed: {ClaudeCode.Version(found) ?? "?"} at {found}" : "Installed, but `claude` is not on PATH: add npm's global bin directory (`npm prefix -g`/bin) to PATH.");
        return 0;
    }

    private static Command Launch()
    {
        var model = new Option<string?>("--model") { Description = "Main model (default: the gateway's opus tier)." };
        var small = new Option<string?>("--small-model") { Description = "Haiku / small-fast slot for background calls (default: the haiku tier)." };
        var subagent = new Option<string?>("--subagent-model") { Description = "Model for subagents (default: the sonnet tier)." };
        var rest = new Argument<string[]>("claude-args") { Description = "Arguments for claude (after --).", Arity = ArgumentArity.ZeroOrMore };
        var claude = new Command("claude-code", "Start Claude Code against the gateway, with every model slot pinned; the variables are set for that process only.")
        {
            model, small, subagent, rest,
        };
        claude.TreatUnmatchedTokensAsErrors = false;
        claude.SetAction(Guard(async (result, cancellationToken) =>
        {
            var (url, key) = UserConfig.Load().Require();
            var path = ClaudeCode.Locate() ?? throw new CliException("Claude Code is not installed: run `melious tools install claude-code`");
            PinnedModels pinned;
            using (var gateway = new GatewayClient(url, key))
            {
                pinned = await ClaudeEnvironment.ResolveAsync(gateway, result.GetValue(model), result.GetValue(small), result.GetValue(subagent), cancellationToken);
            }

            var env = ClaudeEnvironment.Build(url, key, pinned);
            var info = new ProcessStartInfo(path);
            foreach (var arg in (result.GetValue(rest) ?? []).Concat(result.UnmatchedTokens))
            {
                info.ArgumentList.Add(arg);
            }

            var overridden = ClaudeEnvironment.Scrub(info.Environment, env);
            if (overridden.Count > 0)
            {
                Err.WriteLine($"melious: not passing {string.Join(", ", overridden)} from your shell to Claude Code (the gateway settings replace {(overridden.Count == 1 ? "it" : "them")}; your shell is unchanged)");
            }

            WarnAboutSettings(Directory.GetCurrentDirectory(), env);
            return await ClaudeCode.RunAttachedAsync(info);
        }));
        return new Command("launch", "Launch a tool against the gateway.") { claude };
    }

    /// <summary>Claude Code's settings files win over the environment: say so when one would undo the launch.</summary>
    private static void WarnAboutSettings(string project, List<KeyValuePair<string, string>> env)
    {
        var wanted = env.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        foreach (var path in new[] { ClaudeSettings.UserFile, ClaudeSettings.ProjectSharedFile(project), ClaudeSettings.ProjectLocalFile(project) })
        {
            try
            {
                var wrong = ClaudeSettings.Load(path).Env()
                    .Where(e => (wanted.TryGetValue(e.Key, out var v) && v != e.Value) || (ClaudeEnvironment.ProviderSwitches.Contains(e.Key, StringComparer.Ordinal) && e.Value.Length > 0))
                    .Select(e => e.Key).ToList();
                if (wrong.Count > 0)
                {
                    Err.WriteLine($"melious: warning: {path} sets {string.Join(", ", wrong)} and Claude Code lets settings win; run `melious doctor --fix`");
                }
            }
            catch (CliException)
            {
            }
        }
    }

    private static Command Config()
    {
        var project = new Option<string?>("--project") { Description = "Project directory: writes DIR/.claude/settings.local.json (default: the current directory)." };
        var user = new Option<bool>("--user") { Description = "Write ~/.claude/settings.json instead (every project)." };
        var yes = new Option<bool>("--yes", "-y") { Description = "Write without asking." };
        var remove = new Option<bool>("--remove") { Description = "Take the entries out again." };
        var model = new Option<string?>("--model") { Description = "Main model (default: the gateway's opus tier)." };
        var small = new Option<string?>("--small-model") { Description = "Haiku / small-fast slot (default: the haiku tier)." };
        var subagent = new Option<string?>("--subagent-model") { Description = "Subagent model (default: the sonnet tier)." };
        var claude = new Command("claude-code", "Write the gateway's env block into Claude Code's settings (merged; a diff is shown first).")
        {
            project, user, yes, remove, model, small, subagent,
        };
        claude.SetAction(Guard(async (result, cancellationToken) =>
        {
            if (result.GetValue(user) && result.GetValue(project) is not null)
            {
                throw new CliException("--project and --user exclude each other");
            }

            var directory = Path.GetFullPath(result.GetValue(project) ?? Directory.GetCurrentDirectory());
            var path = result.GetValue(user) ? ClaudeSettings.UserFile : ClaudeSettings.ProjectLocalFile(directory);
            var settings = ClaudeSettings.Load(path);
            List<EnvChange> changes;
            if (result.GetValue(remove))
            {
                changes = settings.Plan(ClaudeEnvironment.Names.Select(n => new KeyValuePair<string, string?>(n, null)));
            }
            else
            {
                var (url, key) = UserConfig.Load().Require();
                using var gateway = new GatewayClient(url, key);
                var pinned = await ClaudeEnvironment.ResolveAsync(gateway, result.GetValue(model), result.GetValue(small), result.GetValue(subagent), cancellationToken);
                var env = ClaudeEnvironment.Build(url, key, pinned);
                changes = settings.Plan(env.Select(p => new KeyValuePair<string, string?>(p.Key, p.Value)));
            }

            if (changes.Count == 0)
            {
                Out.WriteLine($"{path} is already up to date.");
            }
            else
            {
                Out.WriteLine($"{(settings.Exists ? "Changes to" : "New file")} {path} (env):");
                foreach (var change in changes)
                {
                    Out.WriteLine(change.ToString());
                }

                if (!result.GetValue(yes) && !Confirm("Write these changes?"))
                {
                    Out.WriteLine("Nothing written.");
                    return 1;
                }

                settings.Apply(changes, backup: false);
                Out.WriteLine($"Wrote {path}.");
            }

            if (!result.GetValue(user) && !result.GetValue(remove) && ClaudeSettings.EnsureGitIgnored(directory) is { } note)
            {
                Out.WriteLine(note[..1].ToUpperInvariant() + note[1..] + " (the file holds your key).");
            }

            return 0;
        }));
        return new Command("config", "Write a tool's settings to use the gateway.") { claude };
    }

    private static Command DoctorCommand()
    {
        var fix = new Option<bool>("--fix") { Description = "Repair what can be repaired safely (settings files, with a backup in melious's config directory), after asking." };
        var yes = new Option<bool>("--yes", "-y") { Description = "With --fix: do not ask." };
        var project = new Option<string?>("--project") { Description = "Project directory whose .claude/ settings are checked (default: the current directory)." };
        var command = new Command("doctor", "Check the setup (environment, settings files, credentials, gateway, key, models, claude) and say how to fix each problem.") { fix, yes, project };
        command.SetAction(Guard(async (result, cancellationToken) =>
        {
            var doctor = new Doctor(Out);
            var directory = Path.GetFullPath(result.GetValue(project) ?? Directory.GetCurrentDirectory());
            await doctor.RunAsync(directory, cancellationToken);
            var repaired = new HashSet<string>(StringComparer.Ordinal);
            if (result.GetValue(fix) && doctor.Repairs.Count > 0)
            {
                foreach (var (file, changes) in doctor.Repairs)
                {
                    Out.WriteLine($"Repair {file.Path}:");
                    foreach (var change in changes)
                    {
                        Out.WriteLine(change.ToString());
                    }

                    if (result.GetValue(yes) || Confirm($"Rewrite {file.Path} (a copy goes to {ClaudeSettings.BackupDirectory})?"))
                    {
                        var copy = file.Apply(changes, backup: true);
                        repaired.Add(file.Path);
                        Out.WriteLine($"Fixed {file.Path}{(copy is null ? "" : $" (backup: {copy})")}.");
                    }
                }
            }

            var failed = doctor.Checks.Count(c => !c.Ok && (c.SettingsFile is null || !repaired.Contains(c.SettingsFile)));
            Out.WriteLine(failed == 0 ? "All checks passed." : $"{failed} problem{(failed == 1 ? "" : "s")} found.");
            return failed == 0 ? 0 : 1;
        }));
        return command;
    }

    private static string? Ask(string prompt)
    {
        Err.Write(prompt);
        return Console.In.ReadLine()?.Trim();
    }

    private static bool Confirm(string question)
    {
        var answer = Ask(question + " [y/N] ");
        return answer is not null && (answer.Equals("y", StringComparison.OrdinalIgnoreCase) || answer.Equals("yes", StringComparison.OrdinalIgnoreCase));
    }

    private static string ReadSecret(string prompt)
    {
        Err.Write(prompt);
        var key = new StringBuilder();
        while (true)
        {
            var info = Console.ReadKey(intercept: true);
            if (info.Key == ConsoleKey.Enter)
            {
                break;
            }

            if (info.Key == ConsoleKey.Backspace)
            {
                if (key.Length > 0)
                {
                    key.Length--;
                }
            }
            else if (info.KeyChar != '\0' && !char.IsControl(info.KeyChar))
            {
                key.Append(info.KeyChar);
            }
        }

        Err.WriteLine();
        return key.ToString().Trim();
    }

    private static string Tokens(long? tokens) => tokens switch
    {
        null or 0 => "?",
        >= 1_000_000 and var t when t % 1_000_000 == 0 => $"{t / 1_000_000}M",
        >= 1000 and var t when t % 1000 == 0 => $"{t / 1000}k",
        var t => t.Value.ToString("N0", CultureInfo.InvariantCulture),
    };

    private static string Capabilities(GatewayCapabilities? c) => c is null
        ? ""
        : string.Join(",", new[] { c.ToolUse ? "tools" : null, c.Vision ? "vision" : null, c.Thinking ? "thinking" : null }.Where(x => x is not null));

    private static void WriteTable(string[] headers, List<string[]> rows)
    {
        var widths = headers.Select((h, i) => rows.Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        Out.WriteLine(string.Join("  ", headers.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var row in rows)
        {
            Out.WriteLine(string.Join("  ", row.Select((v, i) => v.PadRight(widths[i]))).TrimEnd());
        }
    }
}

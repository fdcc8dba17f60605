using System.Net;

namespace Melious.Cli;

/// <summary>One line of <c>melious doctor</c>: what was checked, whether it passed, and how to fix it.</summary>
/// <param name="SettingsFile">The settings file whose repair by <c>--fix</c> also clears this problem.</param>
public sealed record Check(string Name, bool Ok, string Detail, string? Fix = null, string? SettingsFile = null);

/// <summary>
/// <c>melious doctor</c>: the failures the docs list under "When it breaks" (a base URL with <c>/v1</c> or pointing
/// elsewhere, a non-empty <c>ANTHROPIC_API_KEY</c>, a malformed token, cached <c>claude login</c> credentials,
/// settings files overriding the environment), then the gateway, the key, every pinned model and the claude version.
/// </summary>
public sealed class Doctor(TextWriter output)
{
    public List<Check> Checks { get; } = [];

    /// <summary>Settings files whose env block disagrees with what melious would set, with the changes that fix them.</summary>
    public List<(ClaudeSettings File, List<EnvChange> Changes)> Repairs { get; } = [];

    /// <summary>(settings file, variable) pairs whose model does not resolve.</summary>
    private readonly HashSet<(string Path, string Name)> _unresolved = [];

    public async Task RunAsync(string project, CancellationToken cancellationToken)
    {
        var config = UserConfig.Load();
        if (config.BaseUrl is null || config.ApiKey is null)
        {
            Add(new Check("melious login", false, "no gateway URL or key configured", "run `melious login` (or set MELIOUS_BASE_URL and MELIOUS_API_KEY)"));
        }
        else
        {
            Add(new Check("melious login", true, $"{config.BaseUrl} (from {(config.BaseUrlSource == Source.Environment ? UserConfig.BaseUrlVariable : UserConfig.FilePath)})"));
        }

        CheckEnvironment(config);
        CheckKeyFormat(config);
        CheckCredentials();

        Dictionary<string, string>? expected = null;
        if (config.BaseUrl is not null && config.ApiKey is not null)
        {
            expected = await CheckGatewayAsync(config.BaseUrl, config.ApiKey, project, cancellationToken);
        }

        CheckSettingsFiles(project, config, expected);
        CheckClaude();
    }

    private void Add(Check check)
    {
        Checks.Add(check);
        output.WriteLine($"{(check.Ok ? "✓" : "✗")} {check.Name}: {check.Detail}");
        if (!check.Ok && check.Fix is not null)
        {
            output.WriteLine($"    fix: {check.Fix}");
        }
    }

    private void CheckEnvironment(UserConfig config)
    {
        var baseUrl = Environment.GetEnvironmentVariable(ClaudeEnvironment.BaseUrl);
        if (string.IsNullOrEmpty(baseUrl))
        {
            Add(new Check(ClaudeEnvironment.BaseUrl, true, "not set in this shell (melious launch sets it)"));
        }
        else if (baseUrl.TrimEnd('/').EndsWith("/v1", StringComparison.OrdinalIgnoreCase))
        {
            Add(new Check(ClaudeEnvironment.BaseUrl, false, $"ends in /v1 ({baseUrl}): Claude Code appends /v1 itself, so every request 404s",
                $"export {ClaudeEnvironment.BaseUrl}={baseUrl.TrimEnd('/')[..^3].TrimEnd('/')}  (or unset it and use `melious launch claude-code`)"));
        }
        else if (config.BaseUrl is not null && !string.Equals(baseUrl.TrimEnd('/'), config.BaseUrl, StringComparison.OrdinalIgnoreCase))
        {
            Add(new Check(ClaudeEnvironment.BaseUrl, false, $"points to {baseUrl}, not the gateway you logged in to ({config.BaseUrl})",
                $"export {ClaudeEnvironment.BaseUrl}={config.BaseUrl}  (or unset it and use `melious launch claude-code`)"));
        }
        else
        {
            Add(new Check(ClaudeEnvironment.BaseUrl, true, baseUrl));
        }

        var apiKey = Environment.GetEnvironmentVariable(ClaudeEnvironment.ApiKey);
        if (string.IsNullOrEmpty(apiKey))
        {
            Add(new Check(ClaudeEnvironment.ApiKey, true, "empty or unset"));
        }
        else
        {
            var what = apiKey.StartsWith("sk-ant-", StringComparison.Ordinal)
                ? "holds an Anthropic API key (sk-ant-…): Claude Code sends it as x-api-key and it may be billed by Anthropic or refused by the gateway"
                : "is set: Claude Code sends it as x-api-key next to the gateway key";
            Add(new Check(ClaudeEnvironment.ApiKey, false, what, $"unset {ClaudeEnvironment.ApiKey}  (or export {ClaudeEnvironment.ApiKey}=\"\"; melious launch already blanks it)"));
        }
    }

    private void CheckKeyFormat(UserConfig config)
    {
        if (config.ApiKey is { } key)
        {
            var problem = Melious.Gateway.Auth.KeyFormat.Problem(key);
            var source = config.ApiKeySource == Source.Environment ? UserConfig.ApiKeyVariable : "the stored key";
            Add(problem is null
                ? new Check("key format", true, $"{source} is a well-formed sk-mel- key")
                : new Check("key format", false, $"{source}: {problem}", config.ApiKeySource == Source.Environment
                    ? $"set {UserConfig.ApiKeyVariable} to the whole key, or unset it and run `melious login`"
                    : "copy the whole key again and run `melious login`"));
        }

        var token = Environment.GetEnvironmentVariable(ClaudeEnvironment.AuthToken);
        if (!string.IsNullOrEmpty(token))
        {
            var problem = Melious.Gateway.Auth.KeyFormat.Problem(token);
            Add(problem is null
                ? new Check(ClaudeEnvironment.AuthToken, true, "a well-formed sk-mel- key")
                : new Check(ClaudeEnvironment.AuthToken, false, problem, $"unset {ClaudeEnvironment.AuthToken} and use `melious launch claude-code`, or export the whole sk-mel- key"));
        }
    }

    private void CheckCredentials()
    {
        var file = Path.Combine(UserConfig.Home, ".claude", ".credentials.json");
        if (File.Exists(file))
        {
            Add(new Check("claude login", false, $"cached Claude credentials in {file}: a subscription login can take precedence over the gateway key",
                $"run `claude /logout` once, or delete {file}"));
        }
        else if (OperatingSystem.IsMacOS())
        {
            Add(new Check("claude login", true, "no credentials file (on macOS a `claude login` lives in the Keychain as \"Claude Code-credentials\"; `claude /logout` removes it)"));
        }
        else
        {
            Add(new Check("claude login", true, "no cached credentials"));
        }
    }

    private async Task<Dictionary<string, string>?> CheckGatewayAsync(string baseUrl, string key, string project, CancellationToken cancellationToken)
    {
        using var gateway = new GatewayClient(baseUrl, key);
        var (reachable, detail) = await gateway.PingAsync(cancellationToken);
        if (!reachable)
        {
            Add(new Check("gateway", false, $"{baseUrl} is not reachable: {detail}", "check the URL (`melious login --base-url …`), VPN or proxy, and that the gateway is running"));
            return null;
        }

        Add(new Check("gateway", true, $"{baseUrl} answers ({detail})"));
        try
        {
            var me = await gateway.WhoAmIAsync(cancellationToken);
            Add(new Check("key", true, $"accepted: account {me.Account}, key {me.KeyId} \"{me.KeyName}\", role {me.Role}"));
        }
        catch (GatewayException ex) when (ex.Status == HttpStatusCode.NotFound)
        {
            // An older gateway without /v1/me: the model list is authenticated too.
            if (!await KeyWorksAsync(gateway, cancellationToken))
            {
                return null;
            }
        }
        catch (GatewayException ex)
        {
            var fix = ex.Status == HttpStatusCode.Forbidden ? "the key was revoked: ask your administrator for a new one, then `melious login`" : "run `melious login` with a valid key";
            Add(new Check("key", false, ex.Message, fix));
            return null;
        }

        PinnedModels pinned;
        List<GatewayModel> listed;
        try
        {
            listed = await gateway.ModelsAsync(cancellationToken);
            pinned = await ClaudeEnvironment.ResolveAsync(gateway, null, null, null, cancellationToken);
        }
        catch (Exception ex) when (ex is GatewayException or CliException)
        {
            Add(new Check("models", false, ex.Message, "ask your administrator to configure the gateway's tiers"));
            return null;
        }

        // The slots melious pins, then any model pinned elsewhere that Claude Code would use instead: exported in
        // this shell (plain `claude`), or in a settings file's env block (which wins over every variable).
        var env = ClaudeEnvironment.Build(baseUrl, key, pinned);
        var ours = env.Where(p => p.Key.EndsWith("_MODEL", StringComparison.Ordinal)).ToList();
        foreach (var (name, model) in ours)
        {
            await CheckModelAsync(gateway, listed, name, model, "run `melious models` and pick a listed model", cancellationToken);
        }

        foreach (var (name, _) in ours)
        {
            if (Environment.GetEnvironmentVariable(name) is { Length: > 0 } exported)
            {
                await CheckModelAsync(gateway, listed, $"{name} (exported in this shell)", exported,
                    $"run `melious models` and export {name}=<a listed model>, or unset it and use `melious launch claude-code`", cancellationToken);
            }
        }

        foreach (var path in SettingsFiles(project))
        {
            Dictionary<string, string> fileEnv;
            try
            {
                fileEnv = ClaudeSettings.Load(path).Env();
            }
            catch (CliException)
            {
                continue; // reported by the settings check
            }

            foreach (var (name, _) in ours)
            {
                if (fileEnv.TryGetValue(name, out var value) && value.Length > 0)
                {
                    if (!await CheckModelAsync(gateway, listed, $"{name} (in {path})", value,
                        $"run `melious models` and set a listed model there, or `melious doctor --fix`", cancellationToken, path))
                    {
                        _unresolved.Add((path, name));
                    }
                }
            }
        }

        return env.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
    }

    /// <summary>
    /// A model "resolves" when the gateway knows the name: a tier, alias or catalog model it lists (or the model a
    /// tier points to), or a name it routes to a tier (<c>GET /v1/models/{id}</c> answers 200). Any other name the
    /// gateway would pass unchanged to its default upstream, which serves only what that upstream happens to have.
    /// </summary>
    private async Task<bool> CheckModelAsync(GatewayClient gateway, List<GatewayModel> listed, string name, string model, string fix, CancellationToken cancellationToken, string? settingsFile = null)
    {
        var entry = listed.FirstOrDefault(m => m.Id == model) ?? listed.FirstOrDefault(m => m.Meta?.ResolvesTo == model);
        if (entry is null)
        {
            try
            {
                entry = await gateway.ModelAsync(model, cancellationToken);
            }
            catch (GatewayException ex) when (ex.Status == HttpStatusCode.NotFound)
            {
                Add(new Check(name, false, $"{model} does not resolve: the gateway has no model, alias or tier by that name and would pass it unchanged to its default upstream", fix, settingsFile));
                return false;
            }
            catch (GatewayException ex)
            {
                Add(new Check(name, false, $"{model}: {ex.Message}", fix, settingsFile));
                return false;
            }
        }

        var context = entry.Meta?.ContextWindow ?? entry.MaxInputTokens;
        var target = entry.Meta?.ResolvesTo is { } to && to != model ? $" to {to}" : "";
        Add(new Check(name, true, $"{model} resolves{target} ({(context is > 0 ? $"{context} tokens of context" : "context window unknown")})"));
        return true;
    }

    private static IEnumerable<string> SettingsFiles(string project) =>
        new[] { ClaudeSettings.UserFile, ClaudeSettings.ProjectSharedFile(project), ClaudeSettings.ProjectLocalFile(project) }.Distinct().Where(File.Exists);

    private async Task<bool> KeyWorksAsync(GatewayClient gateway, CancellationToken cancellationToken)
    {
        try
        {
            await gateway.ModelsAsync(cancellationToken);
            Add(new Check("key", true, "accepted"));
            return true;
        }
        catch (GatewayException ex)
        {
            Add(new Check("key", false, ex.Message, "run `melious login` with a valid key"));
            return false;
        }
    }

    private void CheckSettingsFiles(string project, UserConfig config, Dictionary<string, string>? expected)
    {
        // Without the gateway, the URL and key are still known.
        expected ??= new Dictionary<string, string>(StringComparer.Ordinal);
        if (config.BaseUrl is not null)
        {
            expected.TryAdd(ClaudeEnvironment.BaseUrl, config.BaseUrl);
        }

        if (config.ApiKey is not null)
        {
            expected.TryAdd(ClaudeEnvironment.AuthToken, config.ApiKey);
        }

        expected.TryAdd(ClaudeEnvironment.ApiKey, "");
        foreach (var path in SettingsFiles(project))
        {
            ClaudeSettings settings;
            try
            {
                settings = ClaudeSettings.Load(path);
            }
            catch (CliException ex)
            {
                Add(new Check("settings", false, ex.Message, $"fix the JSON in {path}"));
                continue;
            }

            var env = settings.Env();

            // A file `melious config claude-code` wrote (this gateway and key) may pin other models on purpose
            // (--model, --small-model, --subagent-model, and the window that follows the main model): those are
            // judged by whether they resolve (above), not by whether they equal the tiers.
            var chosen = config.BaseUrl is not null && config.ApiKey is not null
                && env.GetValueOrDefault(ClaudeEnvironment.BaseUrl) == config.BaseUrl && env.GetValueOrDefault(ClaudeEnvironment.AuthToken) == config.ApiKey;
            bool Chosen(string name) => chosen && (name.EndsWith("_MODEL", StringComparison.Ordinal) || name == ClaudeEnvironment.AutoCompactWindow);
            var mainReset = _unresolved.Contains((path, "ANTHROPIC_MODEL"));
            var wrong = env.Where(e => expected.TryGetValue(e.Key, out var want) && want != e.Value)
                .Where(e => !Chosen(e.Key) || _unresolved.Contains((path, e.Key)) || (mainReset && e.Key == ClaudeEnvironment.AutoCompactWindow))
                .Select(e => e.Key).ToList();

            // The project's settings.json is shared (normally committed): a key must never be written there, and one
            // found there is taken out (melious launch, or the git-ignored settings.local.json, provides it).
            var shared = path == ClaudeSettings.ProjectSharedFile(project) && path != ClaudeSettings.UserFile;
            var keyInShared = shared && env.TryGetValue(ClaudeEnvironment.AuthToken, out var token) && token.Length > 0;
            if (shared)
            {
                wrong.Remove(ClaudeEnvironment.AuthToken);
            }

            // Provider switches and a subscription token: Claude Code would go to Bedrock, Vertex, Foundry or the
            // claude.ai login instead (melious launch strips them from the shell, but settings win).
            var switches = env.Where(e => ClaudeEnvironment.ProviderSwitches.Contains(e.Key, StringComparer.Ordinal) && e.Value.Length > 0).Select(e => e.Key).ToList();
            if (wrong.Count == 0 && !keyInShared && switches.Count == 0)
            {
                Add(new Check("settings", true, $"{path}: its env block agrees with the gateway{(chosen ? " (written by melious config claude-code)" : "")}"));
                continue;
            }

            var changes = wrong.Select(name => new EnvChange(name, env[name], expected[name])).ToList();
            if (keyInShared)
            {
                changes.Add(new EnvChange(ClaudeEnvironment.AuthToken, env[ClaudeEnvironment.AuthToken], null));
            }

            changes.AddRange(switches.Select(name => new EnvChange(name, env[name], null)));
            Repairs.Add((settings, changes));
            if (switches.Count > 0)
            {
                Add(new Check("settings", false, $"{path} sets {string.Join(", ", switches)}: Claude Code would use another provider or login instead of the gateway (settings win over melious launch)",
                    $"`melious doctor --fix` removes {(switches.Count == 1 ? "it" : "them")} (with a backup), or delete {(switches.Count == 1 ? "it" : "them")} from that file", path));
            }

            if (wrong.Count > 0)
            {
                Add(new Check("settings", false, $"{path} overrides the environment: {string.Join(", ", wrong)} {(wrong.Count == 1 ? "has a different value" : "have different values")} (settings win over exported variables and over melious launch)",
                    $"`melious doctor --fix` rewrites them (with a backup), or `melious config claude-code{(path == ClaudeSettings.UserFile ? " --user" : "")}`", path));
            }

            if (keyInShared)
            {
                Add(new Check("settings", false, $"{path} sets {ClaudeEnvironment.AuthToken}: this file is shared with the project (normally committed), so it must not hold a key, and it overrides the key melious launch sets",
                    $"`melious doctor --fix` removes the entry (it never writes a key into this file); `melious config claude-code` puts the key in the git-ignored settings.local.json if you want one in a file", path));
            }
        }
    }

    private void CheckClaude()
    {
        var claude = ClaudeCode.Locate();
        if (claude is null)
        {
            Add(new Check("claude", false, "Claude Code is not installed (not on PATH nor in npm's global prefix)", "run `melious tools install claude-code`"));
            return;
        }

        var version = ClaudeCode.Version(claude);
        Add(version is null
            ? new Check("claude", false, $"{claude} does not answer --version", "reinstall: `npm install -g @anthropic-ai/claude-code`")
            : new Check("claude", true, $"{version} at {claude}"));
    }
}

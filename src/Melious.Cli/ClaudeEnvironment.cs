namespace Melious.Cli;

/// <summary>The models pinned for each Claude Code slot, and the main model's context window.</summary>
public sealed record PinnedModels(string Main, string Opus, string Sonnet, string Haiku, string SmallFast, string Subagent, long? MainContextWindow);

/// <summary>
/// The environment Claude Code gets from <c>melious launch claude-code</c> and <c>melious config claude-code</c>:
/// the gateway root and key (as <c>ANTHROPIC_AUTH_TOKEN</c>, with <c>ANTHROPIC_API_KEY=""</c>), every model slot
/// pinned to a model the gateway serves, a long timeout, no nonessential traffic, and an auto-compact window that
/// fits the main model.
/// </summary>
public static class ClaudeEnvironment
{
    public const string BaseUrl = "ANTHROPIC_BASE_URL";
    public const string AuthToken = "ANTHROPIC_AUTH_TOKEN";
    public const string ApiKey = "ANTHROPIC_API_KEY";
    public const string AutoCompactWindow = "CLAUDE_CODE_AUTO_COMPACT_WINDOW";

    /// <summary>Every variable melious sets, in the order it writes them.</summary>
    public static readonly string[] Names =
    [
        BaseUrl, AuthToken, ApiKey,
        "ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL",
        "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL",
        "CLAUDE_CODE_SUBAGENT_MODEL",
        "API_TIMEOUT_MS", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", AutoCompactWindow,
    ];

    /// <summary>Inherited variables that would send Claude Code elsewhere or authenticate it otherwise.</summary>
    public static readonly string[] ProviderSwitches = ["CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY", "CLAUDE_CODE_OAUTH_TOKEN"];

    /// <summary>Chooses the model for each slot: the flags, else the gateway's tiers (opus → main, sonnet → subagents, haiku → small/background).</summary>
    public static async Task<PinnedModels> ResolveAsync(GatewayClient gateway, string? model, string? smallModel, string? subagentModel, CancellationToken cancellationToken)
    {
        var models = await gateway.ModelsAsync(cancellationToken);
        var fallback = models.FirstOrDefault(m => !m.Id.StartsWith("claude-", StringComparison.Ordinal))?.Id;
        string? Tier(string name) => models.FirstOrDefault(m => m.Id == "claude-" + name) is { } m ? m.Meta?.ResolvesTo ?? m.Id : null;
        var opus = Tier("opus") ?? Tier("sonnet") ?? fallback ?? throw new CliException("the gateway lists no models");
        var sonnet = Tier("sonnet") ?? opus;
        var haiku = Tier("haiku") ?? sonnet;
        var main = model ?? opus;
        var small = smallModel ?? haiku;
        var subagent = subagentModel ?? sonnet;

        var entry = models.FirstOrDefault(m => m.Id == main) ?? models.FirstOrDefault(m => m.Meta?.ResolvesTo == main);
        if (entry is null)
        {
            try
            {
                entry = await gateway.ModelAsync(main, cancellationToken);
            }
            catch (GatewayException ex) when (ex.Status == System.Net.HttpStatusCode.NotFound)
            {
                throw new CliException($"the gateway does not serve model {main} (see `melious models`)");
            }
        }

        var window = entry.Meta?.ContextWindow is > 0 ? entry.Meta.ContextWindow : entry.MaxInputTokens;
        return new PinnedModels(main, opus, sonnet, small, small, subagent, window);
    }

    /// <summary>The variables, in <see cref="Names"/> order (the auto-compact window only when the context window is known).</summary>
    public static List<KeyValuePair<string, string>> Build(string baseUrl, string key, PinnedModels models)
    {
        var env = new List<KeyValuePair<string, string>>
        {
            new(BaseUrl, baseUrl),
            new(AuthToken, key),
            new(ApiKey, ""),
            new("ANTHROPIC_MODEL", models.Main),
            new("ANTHROPIC_SMALL_FAST_MODEL", models.SmallFast),
            new("ANTHROPIC_DEFAULT_OPUS_MODEL", models.Opus),
            new("ANTHROPIC_DEFAULT_SONNET_MODEL", models.Sonnet),
            new("ANTHROPIC_DEFAULT_HAIKU_MODEL", models.Haiku),
            new("CLAUDE_CODE_SUBAGENT_MODEL", models.Subagent),
            new("API_TIMEOUT_MS", "3000000"),
            new("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        };
        if (models.MainContextWindow is { } window and > 0)
        {
            env.Add(new(AutoCompactWindow, window.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }

        return env;
    }

    /// <summary>
    /// Inherited variables the child must not see: every <c>ANTHROPIC_*</c> variable and the provider switches. Returns
    /// the names (never the values) whose value differs from what melious sets, to tell the user.
    /// </summary>
    public static List<string> Scrub(IDictionary<string, string?> childEnvironment, IReadOnlyList<KeyValuePair<string, string>> ours)
    {
        var wanted = ours.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        var overridden = new List<string>();
        foreach (var name in childEnvironment.Keys.ToList())
        {
            var managed = wanted.ContainsKey(name);
            if (!managed && !name.StartsWith("ANTHROPIC_", StringComparison.Ordinal) && !ProviderSwitches.Contains(name, StringComparer.Ordinal))
            {
                continue;
            }

            var value = childEnvironment[name];
            if (!(managed && value == wanted[name]) && !string.IsNullOrEmpty(value))
            {
                overridden.Add(name);
            }

            childEnvironment.Remove(name);
        }

        foreach (var (name, value) in ours)
        {
            childEnvironment[name] = value;
        }

        overridden.Sort(StringComparer.Ordinal);
        return overridden;
    }

    /// <summary>A value as it may be shown: the key is masked.</summary>
    public static string Show(string name, string? value) =>
        value is null ? "(unset)" : name == AuthToken || name == ApiKey ? Mask(value) : $"\"{value}\"";

    public static string Mask(string value) => value.Length == 0
        ? "\"\""
        : value.StartsWith("sk-", StringComparison.Ordinal) && value.Length > 10 ? $"{value[..7]}… ({value.Length} characters)" : $"({value.Length} characters)";
}

using System.Collections.Frozen;

namespace Melious.Gateway.Routing;

/// <summary>An immutable view of the <c>models</c> table: catalog, aliases, tier map and the default upstream.</summary>
public sealed class CatalogSnapshot
{
    public CatalogSnapshot(
        IEnumerable<ModelEntry> models,
        IReadOnlyDictionary<string, string> aliases,
        IReadOnlyDictionary<string, string> tiers,
        ModelEntry defaultUpstream,
        DateTimeOffset loadedAt,
        bool fromStorage,
        string? discoveryPrefix = null)
    {
        Models = models.ToFrozenDictionary(m => m.Id, StringComparer.OrdinalIgnoreCase);
        Aliases = aliases.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        Tiers = tiers.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        DefaultUpstream = defaultUpstream;
        LoadedAt = loadedAt;
        FromStorage = fromStorage;
        DiscoveryAliases = DiscoveryAliasesOf(Models.Values, discoveryPrefix).ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>
    /// <c>claude-melious-&lt;slug&gt;</c> → catalog model id, one per catalog model (see <c>Melious:Models:DiscoveryPrefix</c>):
    /// what Claude Code's gateway model discovery lists, and what <c>/v1/messages</c> resolves back to the model.
    /// </summary>
    public FrozenDictionary<string, string> DiscoveryAliases { get; }

    /// <summary>
    /// The slug is the id's last path segment (<c>Qwen/Qwen3-Coder-480B-A35B-Instruct</c> → <c>qwen3-coder-480b-a35b-instruct</c>),
    /// lower case, anything but letters, digits and dots turned into single dashes; the whole id when two models share it.
    /// </summary>
    internal static Dictionary<string, string> DiscoveryAliasesOf(IEnumerable<ModelEntry> models, string? prefix)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (string.IsNullOrWhiteSpace(prefix))
        {
            return result;
        }

        var ordered = models.Select(m => m.Id).Order(StringComparer.OrdinalIgnoreCase).ToList();
        var shortSlugs = ordered.GroupBy(id => Slug(LastSegment(id)), StringComparer.OrdinalIgnoreCase).ToDictionary(g => g.Key, g => g.Count(), StringComparer.OrdinalIgnoreCase);
        foreach (var id in ordered)
        {
            var slug = Slug(LastSegment(id));
            if (shortSlugs[slug] > 1)
            {
                slug = Slug(id);
            }

            if (slug.Length > 0)
            {
                result.TryAdd(prefix + slug, id);
            }
        }

        return result;

        static string LastSegment(string id) => id[(id.LastIndexOf('/') + 1)..];
    }

    internal static string Slug(string id)
    {
        var builder = new System.Text.StringBuilder(id.Length);
        foreach (var c in id.ToLowerInvariant())
        {
            if (char.IsAsciiLetterOrDigit(c) || c == '.')
            {
                builder.Append(c);
            }
            else if (builder.Length > 0 && builder[^1] != '-')
            {
                builder.Append('-');
            }
        }

        return builder.ToString().TrimEnd('-');
    }

    public FrozenDictionary<string, ModelEntry> Models { get; }

    /// <summary>Alias id → catalog model id.</summary>
    public FrozenDictionary<string, string> Aliases { get; }

    /// <summary><c>opus</c>/<c>sonnet</c>/<c>haiku</c> → upstream model id.</summary>
    public FrozenDictionary<string, string> Tiers { get; }

    /// <summary>Template for names without a catalog entry: base URL, protocol, key and default limits/prices.</summary>
    public ModelEntry DefaultUpstream { get; }

    public DateTimeOffset LoadedAt { get; }

    /// <summary>False when the gateway could not read storage and built this from configuration.</summary>
    public bool FromStorage { get; }

    public static readonly string[] TierNames = ["opus", "sonnet", "haiku"];

    /// <summary>Returns the catalog entry for <paramref name="id"/>, or the default upstream serving that id as-is.</summary>
    public ModelEntry EntryOrPassThrough(string id) =>
        Models.TryGetValue(id, out var entry) ? entry : DefaultUpstream with { Id = id, InCatalog = false, DisplayName = null };
}

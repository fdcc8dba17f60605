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
        bool fromStorage)
    {
        Models = models.ToFrozenDictionary(m => m.Id, StringComparer.OrdinalIgnoreCase);
        Aliases = aliases.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        Tiers = tiers.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
        DefaultUpstream = defaultUpstream;
        LoadedAt = loadedAt;
        FromStorage = fromStorage;
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

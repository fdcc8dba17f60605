namespace Melious.Gateway.Routing;

/// <summary>
/// Resolves a client model name, case-insensitively: (1) an exact catalog id, explicit alias or discovery alias
/// (<c>claude-melious-&lt;model&gt;</c>, see <see cref="CatalogSnapshot.DiscoveryAliases"/>); (2) a name
/// containing <c>opus</c>, <c>sonnet</c> or <c>haiku</c> goes to that tier's model; (3) anything else is sent
/// unchanged to the default upstream. A leading <c>anthropic/</c> and a trailing <c>[1m]</c>-style suffix are
/// ignored for matching. The requested string itself is kept for every response.
/// </summary>
public sealed class ModelRouter(ModelCatalog catalog)
{
    public ModelRoute Resolve(string requestedModel) => Resolve(catalog.Current, requestedModel);

    /// <summary>A fallback target: the catalog entry for <paramref name="modelId"/>, or the default upstream serving it as-is.</summary>
    public ModelEntry EntryFor(string modelId) => catalog.Current.EntryOrPassThrough(modelId);

    public static ModelRoute Resolve(CatalogSnapshot snapshot, string requestedModel)
    {
        var name = Normalize(requestedModel);

        if (snapshot.Models.TryGetValue(name, out var exact))
        {
            return new ModelRoute(requestedModel, exact, RouteKind.Exact);
        }

        if (snapshot.Aliases.TryGetValue(name, out var aliasTarget))
        {
            return new ModelRoute(requestedModel, snapshot.EntryOrPassThrough(aliasTarget), RouteKind.Alias);
        }

        if (snapshot.DiscoveryAliases.TryGetValue(name, out var discovered))
        {
            return new ModelRoute(requestedModel, snapshot.EntryOrPassThrough(discovered), RouteKind.Alias);
        }

        if (TierOf(name) is { } tier && snapshot.Tiers.TryGetValue(tier, out var tierModel))
        {
            return new ModelRoute(requestedModel, snapshot.EntryOrPassThrough(tierModel), RouteKind.Tier);
        }

        return new ModelRoute(requestedModel, snapshot.EntryOrPassThrough(requestedModel), RouteKind.PassThrough);
    }

    /// <summary>The tier a name belongs to by substring, or null.</summary>
    public static string? TierOf(string name)
    {
        foreach (var tier in CatalogSnapshot.TierNames)
        {
            if (name.Contains(tier, StringComparison.OrdinalIgnoreCase))
            {
                return tier;
            }
        }

        return null;
    }

    internal static string Normalize(string name)
    {
        var span = name.AsSpan().Trim();
        if (span.StartsWith("anthropic/", StringComparison.OrdinalIgnoreCase))
        {
            span = span["anthropic/".Length..];
        }

        if (span.EndsWith(']') && span.LastIndexOf('[') is var open and > 0)
        {
            span = span[..open];
        }

        return span.Length == name.Length ? name : span.ToString();
    }
}

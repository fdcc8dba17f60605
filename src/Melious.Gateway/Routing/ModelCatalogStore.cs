using System.Globalization;
using Azure;
using Azure.Data.Tables;
using Melious.Gateway.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Routing;

/// <summary>
/// Reads and writes the <c>models</c> table. Layout (PartitionKey / RowKey):
/// <list type="bullet">
/// <item><c>model</c> / lower-cased model id: one catalog entry per upstream model.</item>
/// <item><c>tier</c> / <c>opus</c>|<c>sonnet</c>|<c>haiku</c>: property <c>Model</c> names the upstream model.</item>
/// <item><c>alias</c> / lower-cased alias: property <c>Model</c> names the catalog model.</item>
/// <item><c>endpoint</c> / model row key + <c>|</c> + hash of the base URL: one replica of a catalog model
/// (<c>Model</c>, <c>BaseUrl</c>, optional <c>Weight</c> and <c>ApiKeyRef</c>). A model with endpoint rows is served
/// by that pool and its own <c>BaseUrl</c> is not used; a model without any keeps its single URL.</item>
/// <item><c>upstream</c> / <c>default</c>: the default upstream for names without an entry, and the defaults
/// that catalog entries inherit when they leave a field empty.</item>
/// </list>
/// Prices are invariant decimal strings per million tokens. Upstream keys should be stored as a reference
/// (<c>ApiKeyRef</c> = <c>config:Melious:Upstream:ApiKey</c> or <c>env:NAME</c>), not as the key itself.
/// </summary>
public sealed partial class ModelCatalogStore(StorageClients storage, IOptions<GatewayOptions> options, IConfiguration configuration, ILogger<ModelCatalogStore> logger)
{
    public const string ModelPartition = "model";
    public const string TierPartition = "tier";
    public const string AliasPartition = "alias";
    public const string UpstreamPartition = "upstream";
    public const string EndpointPartition = "endpoint";
    public const string DefaultRow = "default";

    private TableClient Table => storage.Table(TableNames.Models);

    public async Task<CatalogSnapshot> LoadAsync(CancellationToken cancellationToken)
    {
        var entities = new List<TableEntity>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(cancellationToken: cancellationToken))
        {
            entities.Add(entity);
        }

        if (entities.Count == 0 && options.Value.Catalog.SeedWhenEmpty)
        {
            await SeedAsync(cancellationToken);
            entities.Clear();
            await foreach (var entity in Table.QueryAsync<TableEntity>(cancellationToken: cancellationToken))
            {
                entities.Add(entity);
            }
        }

        return Build(entities, fromStorage: true);
    }

    /// <summary>A snapshot built from configuration alone, for when storage cannot be read at start.</summary>
    public CatalogSnapshot FromConfiguration() => Build(SeedEntities(), fromStorage: false);

    public async Task SeedAsync(CancellationToken cancellationToken)
    {
        foreach (var entity in SeedEntities())
        {
            try
            {
                await Table.AddEntityAsync(entity, cancellationToken);
            }
            catch (RequestFailedException ex) when (ex.Status == 409)
            {
                // Another instance seeded it first.
            }
        }

        Log.Seeded(logger, options.Value.Upstream.BaseUrl ?? DefaultBaseUrl);
    }

    public const string DefaultBaseUrl = "http://127.0.0.1:11434/v1";

    internal IEnumerable<TableEntity> SeedEntities()
    {
        var o = options.Value;
        var upstream = new TableEntity(UpstreamPartition, DefaultRow)
        {
            ["BaseUrl"] = string.IsNullOrWhiteSpace(o.Upstream.BaseUrl) ? DefaultBaseUrl : o.Upstream.BaseUrl.TrimEnd('/'),
            ["Protocol"] = o.Upstream.Protocol,
            ["Flavor"] = o.Upstream.Flavor,
            ["ContextWindow"] = o.Models.ContextWindow,
            ["MaxOutputTokens"] = o.Models.MaxOutputTokens,
            ["InputPrice"] = o.Models.InputPrice,
            ["OutputPrice"] = o.Models.OutputPrice,
            ["CacheReadPrice"] = o.Models.CacheReadPrice,
            ["CacheWritePrice"] = o.Models.CacheWritePrice,
            ["Currency"] = o.Models.Currency,
            ["PriceVersion"] = "seed",
        };
        if (!string.IsNullOrEmpty(o.Upstream.ApiKey))
        {
            // Store where the key is, never the key.
            upstream["ApiKeyRef"] = "config:Melious:Upstream:ApiKey";
        }

        yield return upstream;

        var main = Blank(o.Models.Main);
        var secondary = Blank(o.Models.Secondary) ?? main;
        var lightweight = Blank(o.Models.Lightweight) ?? secondary;
        var tiers = new[] { ("opus", main), ("sonnet", secondary), ("haiku", lightweight) };
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (tier, model) in tiers)
        {
            if (model is null)
            {
                continue;
            }

            yield return new TableEntity(TierPartition, tier) { ["Model"] = model };
            if (seen.Add(model))
            {
                var entry = new TableEntity(ModelPartition, ModelRowKey(model)) { ["Id"] = model };
                if (KnownModels.Guess(model) is { } energy)
                {
                    entry["ActiveParamsB"] = energy.ActiveParamsB;
                    entry["TotalParamsB"] = energy.TotalParamsB;
                    entry["QuantBits"] = energy.QuantBits;
                    entry["EnergySource"] = EnergySources.KnownModel;
                }

                yield return entry;
            }
        }

        static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
    }

    public static string ModelRowKey(string modelId) => KeyEncoding.Encode(modelId.ToLowerInvariant());

    internal CatalogSnapshot Build(IEnumerable<TableEntity> entities, bool fromStorage)
    {
        var list = entities as IReadOnlyCollection<TableEntity> ?? entities.ToList();
        var upstreamEntity = list.FirstOrDefault(e => e.PartitionKey == UpstreamPartition && e.RowKey == DefaultRow);
        var fallbackBase = options.Value.Upstream.BaseUrl is { Length: > 0 } b ? b.TrimEnd('/') : DefaultBaseUrl;
        var defaultUpstream = new ModelEntry
        {
            Id = "",
            BaseUrl = fallbackBase,
            Protocol = NormalizeProtocol(options.Value.Upstream.Protocol),
            Flavor = options.Value.Upstream.Flavor,
            ApiKey = Hosting.KeyVaultReferences.IsUnresolved(options.Value.Upstream.ApiKey) ? null : options.Value.Upstream.ApiKey,
            ContextWindow = options.Value.Models.ContextWindow,
            MaxOutputTokens = options.Value.Models.MaxOutputTokens,
            InCatalog = false,
        };
        if (upstreamEntity is not null)
        {
            defaultUpstream = ReadEntry(upstreamEntity, defaultUpstream) with { Id = "", InCatalog = false };
        }

        var endpoints = new Dictionary<string, List<UpstreamEndpoint>>(StringComparer.OrdinalIgnoreCase);
        foreach (var entity in list.Where(e => e.PartitionKey == EndpointPartition))
        {
            if (EntityValues.String(entity, "Model") is not { Length: > 0 } model || EntityValues.String(entity, "BaseUrl") is not { Length: > 0 } url)
            {
                continue;
            }

            var weight = EntityValues.Double(entity, "Weight") is double w && w > 0 ? w : 1;
            if (!endpoints.TryGetValue(model, out var pool))
            {
                endpoints[model] = pool = [];
            }

            pool.Add(new UpstreamEndpoint(url.TrimEnd('/'), weight, ResolveKey(entity)));
        }

        var models = new List<ModelEntry>();
        var aliases = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var tiers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var entity in list)
        {
            switch (entity.PartitionKey)
            {
                case ModelPartition:
                    var id = EntityValues.String(entity, "Id") ?? entity.RowKey;
                    var entry = ReadEntry(entity, defaultUpstream) with { Id = id, InCatalog = true };
                    if (endpoints.TryGetValue(id, out var pool))
                    {
                        // Ordered by URL so every instance sees the same pool whatever order the table returned.
                        entry = entry with
                        {
                            Endpoints = pool.Select(p => p with { ApiKey = p.ApiKey ?? entry.ApiKey }).OrderBy(p => p.BaseUrl, StringComparer.Ordinal).ToArray(),
                        };
                    }

                    models.Add(entry);
                    break;
                case AliasPartition when EntityValues.String(entity, "Model") is { Length: > 0 } target:
                    aliases[EntityValues.String(entity, "Alias") ?? entity.RowKey] = target;
                    break;
                case TierPartition when EntityValues.String(entity, "Model") is { Length: > 0 } target:
                    tiers[entity.RowKey.ToLowerInvariant()] = target;
                    break;
            }
        }

        return new CatalogSnapshot(models, aliases, tiers, defaultUpstream, DateTimeOffset.UtcNow, fromStorage, options.Value.Models.DiscoveryPrefix);
    }

    /// <summary>Reads an entry; every field the entity leaves empty is inherited from <paramref name="defaults"/>.</summary>
    private ModelEntry ReadEntry(TableEntity e, ModelEntry defaults)
    {
        var active = EntityValues.Double(e, "ActiveParamsB");
        var total = EntityValues.Double(e, "TotalParamsB");
        var energy = active is > 0 ? new EnergyProfile(
            active.Value,
            total is > 0 ? total.Value : active.Value,
            (int)(EntityValues.Long(e, "QuantBits") ?? 16),
            EntityValues.Double(e, "JoulesPerOutputToken"),
            (int?)EntityValues.Long(e, "GpuCount"),
            EnergySourceOf(e)) : defaults.Energy;

        var prices = defaults.Prices;
        if (HasAny(e, "InputPrice", "OutputPrice", "CacheReadPrice", "CacheWritePrice", "Currency"))
        {
            prices = new PriceCard(
                EntityValues.Decimal(e, "InputPrice") ?? defaults.Prices.InputPerMTok,
                EntityValues.Decimal(e, "OutputPrice") ?? defaults.Prices.OutputPerMTok,
                EntityValues.Decimal(e, "CacheReadPrice") ?? defaults.Prices.CacheReadPerMTok,
                EntityValues.Decimal(e, "CacheWritePrice") ?? defaults.Prices.CacheWritePerMTok,
                (EntityValues.String(e, "Currency") ?? defaults.Prices.Currency).ToUpperInvariant(),
                EntityValues.String(e, "PriceVersion") ?? defaults.Prices.Version);
        }

        prices = prices with { WebSearchPerRequest = EntityValues.Decimal(e, "WebSearchPrice") ?? defaults.Prices.WebSearchPerRequest };

        return defaults with
        {
            BaseUrl = (EntityValues.String(e, "BaseUrl") is { Length: > 0 } url ? url : defaults.BaseUrl).TrimEnd('/'),
            Protocol = EntityValues.String(e, "Protocol") is { Length: > 0 } protocol ? NormalizeProtocol(protocol) : defaults.Protocol,
            Flavor = EntityValues.String(e, "Flavor") is { Length: > 0 } flavor ? flavor.ToLowerInvariant() : defaults.Flavor,
            ApiKey = ResolveKey(e) ?? defaults.ApiKey,
            ContextWindow = EntityValues.Long(e, "ContextWindow") is long cw && cw > 0 ? cw : defaults.ContextWindow,
            MaxOutputTokens = EntityValues.Long(e, "MaxOutputTokens") is long mo && mo > 0 ? mo : defaults.MaxOutputTokens,
            ToolUse = EntityValues.Bool(e, "ToolUse") ?? defaults.ToolUse,
            Vision = EntityValues.Bool(e, "Vision") ?? defaults.Vision,
            Thinking = EntityValues.Bool(e, "Thinking") ?? defaults.Thinking,
            Betas = EntityValues.String(e, "Betas") is { Length: > 0 } betas ? betas.Trim() : defaults.Betas,
            Reasoning = EntityValues.String(e, "Reasoning") is { Length: > 0 } reasoning ? reasoning.ToLowerInvariant() : defaults.Reasoning,
            Prices = prices,
            Energy = energy,
            DisplayName = EntityValues.String(e, "DisplayName"),
            Fallbacks = EntityValues.String(e, "Fallbacks") is { Length: > 0 } fallbacks
                ? fallbacks.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                : [],
            FallbackOn = FallbackTriggerNames.Parse(EntityValues.String(e, "FallbackOn")),
        };
    }

    /// <summary>
    /// <c>measured</c> with a measured J/token, else what the row says (<c>known-model</c> when seeding pre-filled it),
    /// else <c>catalog</c>: parameters an operator entered.
    /// </summary>
    private static string EnergySourceOf(TableEntity e) =>
        EntityValues.Double(e, "JoulesPerOutputToken") is > 0 ? EnergySources.Measured
        : EntityValues.String(e, "EnergySource") is { } source && EnergySources.IsValid(source) ? source
        : EnergySources.Catalog;

    private static bool HasAny(TableEntity e, params string[] names) => names.Any(e.ContainsKey);

    private string? ResolveKey(TableEntity e)
    {
        if (EntityValues.String(e, "ApiKey") is { Length: > 0 } literal)
        {
            return literal;
        }

        var reference = EntityValues.String(e, "ApiKeyRef");
        if (string.IsNullOrWhiteSpace(reference))
        {
            return null;
        }

        if (reference.StartsWith("config:", StringComparison.OrdinalIgnoreCase))
        {
            return configuration[reference["config:".Length..]] is { Length: > 0 } value && !Hosting.KeyVaultReferences.IsUnresolved(value) ? value : null;
        }

        if (reference.StartsWith("env:", StringComparison.OrdinalIgnoreCase))
        {
            return Environment.GetEnvironmentVariable(reference["env:".Length..]) is { Length: > 0 } value && !Hosting.KeyVaultReferences.IsUnresolved(value) ? value : null;
        }

        Log.UnknownKeyReference(logger, e.RowKey);
        return null;
    }

    internal static string NormalizeProtocol(string? protocol) =>
        string.Equals(protocol, Protocols.Anthropic, StringComparison.OrdinalIgnoreCase) ? Protocols.Anthropic : Protocols.OpenAI;

    // ---- Admin operations -------------------------------------------------------------------------------

    public async Task<IReadOnlyList<TableEntity>> ListRawAsync(CancellationToken cancellationToken)
    {
        var list = new List<TableEntity>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(cancellationToken: cancellationToken))
        {
            list.Add(entity);
        }

        return list;
    }

    /// <summary>Creates or merges a catalog entry; only the given properties change.</summary>
    public Task UpsertModelAsync(string modelId, IDictionary<string, object?> properties, CancellationToken cancellationToken)
    {
        var entity = new TableEntity(ModelPartition, ModelRowKey(modelId)) { ["Id"] = modelId };
        foreach (var (key, value) in properties)
        {
            entity[key] = value is decimal d ? d.ToString(CultureInfo.InvariantCulture) : value;
        }

        return Table.UpsertEntityAsync(entity, TableUpdateMode.Merge, cancellationToken);
    }

    public Task UpsertDefaultUpstreamAsync(IDictionary<string, object?> properties, CancellationToken cancellationToken)
    {
        var entity = new TableEntity(UpstreamPartition, DefaultRow);
        foreach (var (key, value) in properties)
        {
            entity[key] = value is decimal d ? d.ToString(CultureInfo.InvariantCulture) : value;
        }

        return Table.UpsertEntityAsync(entity, TableUpdateMode.Merge, cancellationToken);
    }

    public Task SetTierAsync(string tier, string modelId, CancellationToken cancellationToken)
    {
        var normalized = tier.ToLowerInvariant();
        if (!CatalogSnapshot.TierNames.Contains(normalized))
        {
            throw new ArgumentException("tier must be opus, sonnet or haiku", nameof(tier));
        }

        return Table.UpsertEntityAsync(new TableEntity(TierPartition, normalized) { ["Model"] = modelId }, TableUpdateMode.Replace, cancellationToken);
    }

    public Task SetAliasAsync(string alias, string modelId, CancellationToken cancellationToken) =>
        Table.UpsertEntityAsync(new TableEntity(AliasPartition, ModelRowKey(alias)) { ["Alias"] = alias, ["Model"] = modelId }, TableUpdateMode.Replace, cancellationToken);

    /// <summary>
    /// Removes a catalog entry and its endpoint rows. The pool is matched by model name, so endpoints left behind
    /// would serve a later entry of the same name again; they go first, so an interrupted delete leaves the entry
    /// (and a second delete finishes it), never orphaned replicas.
    /// </summary>
    public async Task<(bool EntryDeleted, int EndpointsDeleted)> DeleteModelAsync(string modelId, CancellationToken cancellationToken)
    {
        var endpoints = new List<TableEntity>();
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {EndpointPartition}");
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            if (string.Equals(EntityValues.String(entity, "Model"), modelId, StringComparison.OrdinalIgnoreCase))
            {
                endpoints.Add(entity);
            }
        }

        var endpointsDeleted = 0;
        foreach (var endpoint in endpoints)
        {
            var removed = await Table.DeleteEntityAsync(EndpointPartition, endpoint.RowKey, ETag.All, cancellationToken);
            endpointsDeleted += removed.Status == 404 ? 0 : 1;
        }

        var response = await Table.DeleteEntityAsync(ModelPartition, ModelRowKey(modelId), ETag.All, cancellationToken);
        return (response.Status != 404, endpointsDeleted);
    }

    /// <summary>The row key of one endpoint of a model: stable for the same model and base URL.</summary>
    public static string EndpointRowKey(string modelId, string baseUrl)
    {
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(baseUrl.TrimEnd('/').ToLowerInvariant()));
        return ModelRowKey(modelId) + "|" + Convert.ToHexStringLower(hash.AsSpan(0, 8));
    }

    /// <summary>Adds (or updates) one endpoint of <paramref name="modelId"/>.</summary>
    public Task UpsertEndpointAsync(string modelId, string baseUrl, double? weight, string? apiKeyRef, CancellationToken cancellationToken)
    {
        var url = baseUrl.TrimEnd('/');
        var entity = new TableEntity(EndpointPartition, EndpointRowKey(modelId, url)) { ["Model"] = modelId, ["BaseUrl"] = url };
        if (weight is { } w)
        {
            entity["Weight"] = w;
        }

        if (!string.IsNullOrWhiteSpace(apiKeyRef))
        {
            entity["ApiKeyRef"] = apiKeyRef;
        }

        return Table.UpsertEntityAsync(entity, TableUpdateMode.Replace, cancellationToken);
    }

    public async Task<bool> DeleteEndpointAsync(string modelId, string baseUrl, CancellationToken cancellationToken)
    {
        var response = await Table.DeleteEntityAsync(EndpointPartition, EndpointRowKey(modelId, baseUrl), ETag.All, cancellationToken);
        return response.Status != 404;
    }

    public async Task<bool> DeleteAliasAsync(string alias, CancellationToken cancellationToken)
    {
        var response = await Table.DeleteEntityAsync(AliasPartition, ModelRowKey(alias), ETag.All, cancellationToken);
        return response.Status != 404;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Seeded the empty model catalog with the default upstream {BaseUrl}")]
        public static partial void Seeded(ILogger logger, string baseUrl);

        [LoggerMessage(2, LogLevel.Warning, "Catalog entry {RowKey} has an ApiKeyRef that is neither config: nor env:")]
        public static partial void UnknownKeyReference(ILogger logger, string rowKey);
    }
}

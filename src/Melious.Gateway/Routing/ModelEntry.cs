namespace Melious.Gateway.Routing;

/// <summary>
/// One upstream model as the catalog describes it: where it lives, how to talk to it, its limits,
/// capabilities, prices and energy parameters. Immutable; a catalog refresh builds new instances.
/// </summary>
public sealed record ModelEntry
{
    /// <summary>The model id sent upstream.</summary>
    public required string Id { get; init; }

    public required string BaseUrl { get; init; }

    /// <summary><see cref="Protocols.OpenAI"/> or <see cref="Protocols.Anthropic"/>.</summary>
    public string Protocol { get; init; } = Protocols.OpenAI;

    /// <summary>Server family (<c>vllm</c>, <c>sglang</c>, <c>ollama</c>, <c>llamacpp</c>, <c>openai</c>).</summary>
    public string Flavor { get; init; } = "vllm";

    /// <summary>The resolved upstream credential. Never logged, never sent to a client.</summary>
    public string? ApiKey { get; init; }

    public long ContextWindow { get; init; } = 131_072;

    public long MaxOutputTokens { get; init; } = 32_768;

    public bool ToolUse { get; init; } = true;

    public bool Vision { get; init; }

    public bool Thinking { get; init; } = true;

    public PriceCard Prices { get; init; } = PriceCard.Free;

    /// <summary>Null when the catalog has no energy parameters: the impact is then reported as unknown.</summary>
    public EnergyProfile? Energy { get; init; }

    public string? DisplayName { get; init; }

    /// <summary>
    /// How reasoning arrives from an OpenAI-compatible upstream: <c>auto</c> (null; inline tags recognised for Ollama and
    /// llama.cpp), <c>think-tags</c> (inline <c>&lt;think&gt;…&lt;/think&gt;</c>) or <c>field</c> (never split content).
    /// </summary>
    public string? Reasoning { get; init; }

    /// <summary>
    /// <c>anthropic-beta</c> values passed to an Anthropic-native upstream: null or <c>*</c> all (default), <c>none</c> none,
    /// else a comma-separated allow-list (see <see cref="Upstream.BetaFilter"/>).
    /// </summary>
    public string? Betas { get; init; }

    /// <summary>False for names that passed through to the default upstream without a catalog entry.</summary>
    public bool InCatalog { get; init; } = true;

    /// <summary>
    /// The replicas from the catalog's <c>endpoint</c> rows; empty for a single-URL entry, which is served from
    /// <see cref="BaseUrl"/> with <see cref="ApiKey"/> (see <see cref="Pool"/>).
    /// </summary>
    public IReadOnlyList<UpstreamEndpoint> Endpoints { get; init; } = [];

    /// <summary>The endpoints requests for this model go to: the pool, or the single base URL.</summary>
    /// <remarks>Not cached in a field: <c>with</c> copies fields, so a cached list would outlive a changed base URL.</remarks>
    public IReadOnlyList<UpstreamEndpoint> Pool => Endpoints.Count > 0 ? Endpoints : [new UpstreamEndpoint(BaseUrl, 1, ApiKey)];

    /// <summary>Catalog model ids to try, in order, when this model fails before the first byte (see <see cref="FallbackOn"/>).</summary>
    public IReadOnlyList<string> Fallbacks { get; init; } = [];

    /// <summary>Which failures move a request to the next fallback.</summary>
    public FallbackTriggers FallbackOn { get; init; } = FallbackTriggers.All;
}

public static class Protocols
{
    public const string OpenAI = "openai";
    public const string Anthropic = "anthropic";
}

/// <summary>Prices per million tokens, in <see cref="Currency"/> (ISO 4217).</summary>
public sealed record PriceCard(decimal InputPerMTok, decimal OutputPerMTok, decimal CacheReadPerMTok, decimal CacheWritePerMTok, string Currency, string? Version)
{
    public static PriceCard Free { get; } = new(0m, 0m, 0m, 0m, "USD", null);

    /// <summary>Price of one web search (catalog <c>WebSearchPrice</c>); null: <c>Melious:Search:PricePerSearch</c>.</summary>
    public decimal? WebSearchPerRequest { get; init; }
}

/// <summary>
/// Energy parameters of a served model: active and total parameters (billions) and weight quantization bits.
/// Optional measured override: joules per output token across the whole deployment and its GPU count.
/// <see cref="Source"/> says where the figures came from (<see cref="EnergySources"/>).
/// </summary>
public sealed record EnergyProfile(double ActiveParamsB, double TotalParamsB, int QuantBits = 16, double? JoulesPerOutputToken = null, int? GpuCount = null, string Source = EnergySources.Catalog);

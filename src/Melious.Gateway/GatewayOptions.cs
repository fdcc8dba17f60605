namespace Melious.Gateway;

/// <summary>
/// All gateway settings, bound from the <c>Melious</c> configuration section. Environment variables use
/// double underscores: <c>Melious__Upstream__BaseUrl</c>, <c>Melious__Storage__ConnectionString</c>, …
/// </summary>
public sealed class GatewayOptions
{
    public const string SectionName = "Melious";

    public UpstreamOptions Upstream { get; set; } = new();

    public TierModelOptions Models { get; set; } = new();

    public StorageOptions Storage { get; set; } = new();

    public LimitsOptions Limits { get; set; } = new();

    public RateLimitOptions RateLimits { get; set; } = new();

    public StreamingOptions Streaming { get; set; } = new();

    public AuthOptions Auth { get; set; } = new();

    public CatalogOptions Catalog { get; set; } = new();

    public UsageOptions Usage { get; set; } = new();

    public EnergyOptions Energy { get; set; } = new();

    public DashboardOptions Dashboard { get; set; } = new();

    public PoolOptions Pools { get; set; } = new();

    /// <summary>The web search provider behind the <c>web_search</c> server tool (docs/web-search.md).</summary>
    public Search.SearchOptions Search { get; set; } = new();

    /// <summary>
    /// How often the process hands the C heap's free pages back to the OS (Linux/glibc only; zero: never). See
    /// <see cref="Hosting.NativeHeapTrimmer"/>.
    /// </summary>
    public TimeSpan NativeHeapTrimInterval { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>The usage dashboard at <c>/dashboard</c>.</summary>
public sealed class DashboardOptions
{
    /// <summary>
    /// Signs the dashboard's session cookies (HMAC-SHA256). Give every instance the same value (an app setting
    /// from Key Vault in Azure) so sessions survive restarts and work on every instance; at least 32 characters.
    /// When empty, each process makes a random one (sessions then end on restart) and logs a warning.
    /// </summary>
    public string? SessionSecret { get; set; }

    /// <summary>How long a sign-in lasts.</summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(8);
}

/// <summary>The default upstream, used to seed an empty catalog and for model names that pass through.</summary>
public sealed class UpstreamOptions
{
    /// <summary>For <c>openai</c>, the base that <c>/chat/completions</c> is appended to (e.g. <c>http://127.0.0.1:11434/v1</c>);
    /// for <c>anthropic</c>, the base that <c>/v1/messages</c> is appended to.</summary>
    public string? BaseUrl { get; set; }

    public string? ApiKey { get; set; }

    /// <summary><c>openai</c> (Chat Completions, default) or <c>anthropic</c> (native Messages, passed through).</summary>
    public string Protocol { get; set; } = "openai";

    /// <summary>Server family, which picks the non-standard request extras: <c>vllm</c> (default), <c>sglang</c>,
    /// <c>ollama</c>, <c>llamacpp</c> or <c>openai</c> (strictly standard).</summary>
    public string Flavor { get; set; } = "vllm";
}

/// <summary>Upstream model ids for the three tiers, plus the limits given to seeded catalog entries.</summary>
public sealed class TierModelOptions
{
    /// <summary>Model for names containing <c>opus</c>.</summary>
    public string? Main { get; set; }

    /// <summary>Model for names containing <c>sonnet</c>.</summary>
    public string? Secondary { get; set; }

    /// <summary>Model for names containing <c>haiku</c>.</summary>
    public string? Lightweight { get; set; }

    public long ContextWindow { get; set; } = 131_072;

    public long MaxOutputTokens { get; set; } = 32_768;

    /// <summary>Seed prices per million tokens (decimal strings) and currency.</summary>
    public string InputPrice { get; set; } = "0";

    public string OutputPrice { get; set; } = "0";

    public string CacheReadPrice { get; set; } = "0";

    public string CacheWritePrice { get; set; } = "0";

    public string Currency { get; set; } = "USD";

    /// <summary>
    /// Prefix of the <c>claude-</c>… alias each catalog model gets in <c>GET /v1/models</c>, so that Claude Code's gateway
    /// model discovery (<c>CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1</c>, which keeps ids containing <c>claude</c> or
    /// <c>anthropic</c>) lists it: <c>claude-melious-qwen3-coder-480b</c>. Empty turns the aliases off.
    /// </summary>
    public string DiscoveryPrefix { get; set; } = "claude-melious-";
}

/// <summary>
/// Storage for keys, the catalog and usage. Either a connection string (Azurite: <c>UseDevelopmentStorage=true</c>)
/// or identity-based: service URIs (or an account name) plus Azure.Identity credentials.
/// </summary>
public sealed class StorageOptions
{
    public string? ConnectionString { get; set; }

    public string? TableServiceUri { get; set; }

    public string? QueueServiceUri { get; set; }

    /// <summary>Shorthand for the public-cloud service URIs of this account.</summary>
    public string? AccountName { get; set; }

    /// <summary>Client id of a user-assigned managed identity. Without it DefaultAzureCredential is used.</summary>
    public string? ClientId { get; set; }

    /// <summary>Prefix applied to every table name (lets several environments or tests share one account).</summary>
    public string TablePrefix { get; set; } = "";

    /// <summary>Create tables and queues on start (disable when infrastructure owns them and the identity may not).</summary>
    public bool CreateIfMissing { get; set; } = true;

    /// <summary>How long one storage request may wait for an answer before it is retried (3 retries); 0 or less = the default.</summary>
    public TimeSpan NetworkTimeout { get; set; } = Storage.StorageClients.DefaultNetworkTimeout;

    public bool UsesIdentity =>
        !string.IsNullOrWhiteSpace(TableServiceUri) || !string.IsNullOrWhiteSpace(QueueServiceUri) || !string.IsNullOrWhiteSpace(AccountName);
}

public sealed class LimitsOptions
{
    /// <summary>Largest accepted request body (Anthropic's own limit is 32 MB); larger gets 413 request_too_large.</summary>
    public long MaxBodyBytes { get; set; } = 32L * 1024 * 1024;

    public int MaxJsonDepth { get; set; } = 128;

    public int MaxMessages { get; set; } = 100_000;

    public int MaxTools { get; set; } = 1_000;

    public int MaxStopSequences { get; set; } = 64;
}

public sealed class StreamingOptions
{
    /// <summary>A <c>ping</c> event is sent after this much silence towards the client.</summary>
    public TimeSpan PingInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>The upstream may be silent this long mid-response before the request fails (no total timeout exists).</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long to wait for upstream response headers (prompt processing happens before them on some servers).</summary>
    public TimeSpan HeadersTimeout { get; set; } = TimeSpan.FromMinutes(10);

    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Retries before the first upstream byte, on connection failure, 429 or 503.</summary>
    public int MaxRetries { get; set; } = 2;

    /// <summary>A <c>retry-after</c> longer than this is not waited out: the 429/529 goes to the client, who retries.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(5);

    public TimeSpan PooledConnectionIdleTimeout { get; set; } = TimeSpan.FromMinutes(2);
}

public sealed class AuthOptions
{
    /// <summary>How long a key lookup is trusted. Revocations take effect within this time (keep it under 60 s).</summary>
    public TimeSpan CacheTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long an unknown key is remembered as unknown.</summary>
    public TimeSpan NegativeCacheTtl { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>While storage is unreachable, a previously valid key keeps working this long past its TTL.</summary>
    public TimeSpan StaleIfErrorFor { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long a monthly-spend figure read from the usage ledger is reused.</summary>
    public TimeSpan BudgetCacheTtl { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class CatalogOptions
{
    /// <summary>How often the model table is re-read. Changes apply within twice this (default 15 s → 30 s).</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Seed the <c>models</c> table from <c>Melious:Upstream</c> and <c>Melious:Models</c> when it is empty.</summary>
    public bool SeedWhenEmpty { get; set; } = true;
}

public sealed class UsageOptions
{
    public string QueueName { get; set; } = "usage-events";

    public string PoisonQueueName { get; set; } = "usage-events-poison";

    /// <summary>Run the queue consumer in this process (self-host). Functions use the queue trigger instead.</summary>
    public bool RunConsumer { get; set; } = true;

    /// <summary>Publish usage events at all (turn off only for benchmarks of the bare proxy path).</summary>
    public bool Publish { get; set; } = true;

    /// <summary>Events held in memory while the queue is slow or down. Beyond this they are spooled or logged.</summary>
    public int BufferCapacity { get; set; } = 100_000;

    /// <summary>Directory for events that could not be delivered; resent on start and while healthy. Empty: no spool.</summary>
    public string? SpoolDirectory { get; set; }

    /// <summary>Events packed into one queue message at most (the message stays under 64 KiB).</summary>
    public int MaxEventsPerMessage { get; set; } = 32;

    public int SenderConcurrency { get; set; } = 4;

    /// <summary>How long a queue message waits for more events to join it before it is sent.</summary>
    public TimeSpan BatchDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    public int MaxDequeueCount { get; set; } = 5;

    public TimeSpan ConsumerPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan ConsumerVisibilityTimeout { get; set; } = TimeSpan.FromMinutes(2);

    public int ConsumerBatchSize { get; set; } = 16;

    public TimeSpan MaxSendBackoff { get; set; } = TimeSpan.FromSeconds(10);
}

public sealed class EnergyOptions
{
    /// <summary>Azure region the models run in; picks grid intensity, PUE and water factors.</summary>
    public string Region { get; set; } = "westeurope";

    /// <summary>Override of the region's grid carbon intensity (gCO2e/kWh, location-based).</summary>
    public double? GridGco2ePerKwh { get; set; }

    /// <summary>Override of the data-centre PUE.</summary>
    public double? Pue { get; set; }
}

/// <summary>Upstream pools: balancing, session affinity and per-endpoint health (see docs/scaling-out.md).</summary>
public sealed class PoolOptions
{
    /// <summary><c>session</c>: a Claude Code session (else the key) stays on one endpoint while it is healthy; <c>none</c>: least outstanding only.</summary>
    public string Affinity { get; set; } = "session";

    /// <summary>Bounded-load factor: an affinity endpoint is skipped while it has more than this times its fair share of the requests in flight.</summary>
    public double LoadFactor { get; set; } = 1.25;

    /// <summary>Failure ratio over <see cref="SamplingDuration"/> that opens an endpoint's circuit.</summary>
    public double FailureRatio { get; set; } = 0.5;

    /// <summary>Calls within <see cref="SamplingDuration"/> before the ratio counts (Polly's minimum is 2).</summary>
    public int MinimumThroughput { get; set; } = 2;

    public TimeSpan SamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Cool-down of an open circuit when the upstream gave no <c>retry-after</c> (then one half-open probe).</summary>
    public TimeSpan BreakDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Upper bound of a cool-down taken from <c>retry-after</c>.</summary>
    public TimeSpan MaxBreakDuration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Active health probe interval; off (null) by default: passive health is enough for most pools.</summary>
    public TimeSpan? ProbeInterval { get; set; }

    /// <summary>Path probed below each endpoint's base URL (<c>/models</c> for OpenAI-style base URLs ending in <c>/v1</c>).</summary>
    public string ProbePath { get; set; } = "/models";
}

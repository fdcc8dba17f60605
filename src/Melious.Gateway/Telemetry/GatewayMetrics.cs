using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Melious.Gateway.Telemetry;

/// <summary>
/// The gateway's OpenTelemetry instruments, named per the GenAI semantic conventions, plus Melious counters. Plain
/// <see cref="System.Diagnostics"/> APIs: the core references no OpenTelemetry package, each host picks an exporter
/// (Azure Monitor for the Functions app, OTLP for the self-host when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set).
/// Attributes carry model names, endpoints, the account and the public key id: never a key, a prompt or a completion.
/// </summary>
public sealed class GatewayMetrics
{
    public const string MeterName = "Melious.Gateway";
    public const string ActivitySourceName = "Melious.Gateway";

    /// <summary>One span per <c>/v1/messages</c> request, and a <c>chat</c> child span per upstream attempt.</summary>
    public static readonly ActivitySource ActivitySource = new(ActivitySourceName, typeof(GatewayMetrics).Assembly.GetName().Version?.ToString());

    private readonly Histogram<long> _tokens;
    private readonly Histogram<double> _ttft;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _fallbacks;
    private readonly Counter<long> _circuitOpens;
    private readonly Counter<long> _limitRejections;

    public GatewayMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _tokens = meter.CreateHistogram(
            "gen_ai.client.token.usage",
            unit: "{token}",
            description: "Tokens per request by gen_ai.token.type: input (all input, cached included), output, and the cache_read and cache_creation parts of the input.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] });
        _ttft = meter.CreateHistogram(
            "gen_ai.server.time_to_first_token",
            unit: "s",
            description: "Time from the request's arrival to the first output token sent to the client.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0] });
        _duration = meter.CreateHistogram(
            "gen_ai.server.request.duration",
            unit: "s",
            description: "Duration of a /v1/messages request, with error.type when it failed.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] });
        _fallbacks = meter.CreateCounter<long>("melious.gateway.fallbacks", "{fallback}", "Requests moved to a fallback model before their first byte.");
        _circuitOpens = meter.CreateCounter<long>("melious.gateway.circuit.opens", "{open}", "Times an upstream endpoint's circuit opened in this process.");
        _limitRejections = meter.CreateCounter<long>("melious.gateway.limit.rejections", "{request}", "Requests refused by a per-key limit (melious.limit: rpm, tpm, concurrency, budget).");
    }

    /// <summary>Records one finished request (called once per request, where its usage event is published).</summary>
    public void RecordRequest(in RequestMeasurement m)
    {
        var tags = new TagList
        {
            { "gen_ai.operation.name", "chat" },
            { "gen_ai.provider.name", m.Provider },
            { "gen_ai.request.model", m.RequestedModel },
            { "gen_ai.response.model", m.ResponseModel },
            { "server.address", m.ServerAddress },
            { "melious.account", m.Account },
            { "melious.key_id", m.KeyId },
            { "melious.endpoint", m.Endpoint },
        };

        var durationTags = tags;
        if (m.ErrorType is { } error)
        {
            durationTags.Add("error.type", error);
        }

        _duration.Record(m.DurationSeconds, durationTags);
        if (m.TtftSeconds is { } ttft)
        {
            _ttft.Record(ttft, tags);
        }

        if (!m.Served)
        {
            return;
        }

        Tokens(tags, "input", m.InputTokens + m.CacheReadTokens + m.CacheWriteTokens);
        Tokens(tags, "output", m.OutputTokens);
        if (m.CacheReadTokens > 0)
        {
            Tokens(tags, "cache_read", m.CacheReadTokens);
        }

        if (m.CacheWriteTokens > 0)
        {
            Tokens(tags, "cache_creation", m.CacheWriteTokens);
        }
    }

    private void Tokens(TagList tags, string type, long value)
    {
        tags.Add("gen_ai.token.type", type);
        _tokens.Record(value, tags);
    }

    public void RecordFallback(string requestedModel, string from, string to, string reason, string account) =>
        _fallbacks.Add(1, new TagList
        {
            { "gen_ai.request.model", requestedModel },
            { "melious.fallback.from", from },
            { "melious.fallback.to", to },
            { "melious.fallback.reason", reason },
            { "melious.account", account },
        });

    public void RecordCircuitOpen(string endpoint, string serverAddress, string reason) =>
        _circuitOpens.Add(1, new TagList
        {
            { "melious.endpoint", endpoint },
            { "server.address", serverAddress },
            { "error.type", reason },
        });

    /// <summary>A request refused by a per-key limit. <paramref name="limit"/>: <c>rpm</c>, <c>tpm</c>, <c>concurrency</c> or <c>budget</c>.</summary>
    public void RecordLimitRejection(string limit, string account, string keyId) =>
        _limitRejections.Add(1, new TagList
        {
            { "melious.limit", limit },
            { "melious.account", account },
            { "melious.key_id", keyId },
        });
}

/// <summary>What <see cref="GatewayMetrics.RecordRequest"/> needs about one request; no content, only counts and names.</summary>
public readonly record struct RequestMeasurement(
    string RequestedModel,
    string ResponseModel,
    string Provider,
    string ServerAddress,
    string Endpoint,
    string Account,
    string KeyId,
    double DurationSeconds,
    double? TtftSeconds,
    string? ErrorType,
    bool Served,
    long InputTokens,
    long CacheReadTokens,
    long CacheWriteTokens,
    long OutputTokens);

using System.Text.Json;
using Melious.Gateway.Auth;
using Melious.Gateway.Routing;
using Melious.Gateway.Usage;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.Endpoints;

/// <summary>Collects what one request did, and turns it into exactly one <see cref="UsageEvent"/>.</summary>
internal sealed class UsageRecorder(RequestContext context, ApiKeyRecord key)
{
    public string? SessionId { get; set; }

    public string? AgentId { get; set; }

    public string RequestedModel { get; set; } = "";

    public ModelEntry? Model { get; set; }

    public bool Stream { get; set; }

    public TokenUsage Tokens { get; set; }

    public bool Estimated { get; set; }

    public long? TtftMs { get; set; }

    public int Status { get; set; } = 200;

    public string? StopReason { get; set; }

    public string? ErrorType { get; set; }

    public bool Cancelled { get; set; }

    /// <summary>Web searches the gateway ran for this request (billed per search).</summary>
    public int WebSearchRequests { get; set; }

    public CostBreakdown? Cost { get; set; }

    public EnergyEstimate? Energy { get; set; }

    public long? UpstreamStartTimestamp { get; set; }

    /// <summary>What keeps the request on one endpoint of a pool: the session, else the key id; null without affinity.</summary>
    public string? AffinityKey { get; set; }

    /// <summary>The endpoint that served (or last failed) the request.</summary>
    public UpstreamEndpoint? Endpoint { get; set; }

    /// <summary>The hold on the serving endpoint (in-flight count, <c>chat</c> span), released when the request ends.</summary>
    public Upstream.EndpointLease? Lease { get; set; }

    /// <summary>Failures that move this request to the next fallback model; none when there is no next one.</summary>
    public FallbackTriggers FallbackOn { get; set; }

    /// <summary>Set instead of writing the error when a failure matched <see cref="FallbackOn"/>.</summary>
    public (Upstream.GatewayError Error, FallbackTriggers Trigger)? PendingFallback { get; set; }

    /// <summary>The catalog model the request was first routed to, when a fallback model served it.</summary>
    public string? FallbackFrom { get; set; }

    /// <summary>The request's hold on its key's limits; the stream reports its output to it as it goes.</summary>
    public Limits.LimitTicket? Ticket { get; set; }

    /// <summary>The output so far of a running response (a running count): charged against the key's tokens per minute.</summary>
    public void StreamedOutput(long outputTokens) => Ticket?.Streamed(outputTokens);

    /// <summary>An upstream round of a multi-round request ended: <see cref="Tokens"/> (every round so far) counts against tokens per minute now.</summary>
    public void RoundEnded() => Ticket?.RoundEnded(Tokens);

    public void MarkFirstOutput()
    {
        TtftMs ??= context.ElapsedMs;
    }

    /// <summary>Seconds of upstream work (from sending the request to now), the latency input of the energy model.</summary>
    public double UpstreamSeconds => UpstreamStartTimestamp is { } start ? context.Time.GetElapsedTime(start).TotalSeconds : 0;

    public UsageEvent Build(UsageCalculator calculator)
    {
        var model = Model;
        if (model is not null && (Cost is null || Energy is null))
        {
            var (cost, energy) = calculator.Compute(model, Tokens, UpstreamSeconds);
            Cost ??= cost;
            Energy ??= energy;
        }

        var price = Cost ?? new CostBreakdown(0, 0, 0, 0, model?.Prices.Currency ?? "USD", null);
        var impact = Energy;
        var parts = CostSplit.Allocate(price);   // parts sum exactly to price.TotalNanos
        return new UsageEvent
        {
            RequestId = context.RequestId,
            Account = key.Account,
            KeyId = key.KeyId,
            SessionId = SessionId,
            AgentId = AgentId,
            RequestedModel = RequestedModel.Length > 0 ? RequestedModel : "(none)",
            UpstreamModel = model?.Id ?? "(none)",
            Upstream = Endpoint?.BaseUrl ?? model?.BaseUrl ?? "",
            FallbackFrom = FallbackFrom,
            Stream = Stream,
            InputTokens = Tokens.Input,
            CacheReadTokens = Tokens.CacheRead,
            CacheWriteTokens = Tokens.CacheWrite,
            OutputTokens = Tokens.Output,
            ReasoningTokens = Tokens.Reasoning,
            UsageEstimated = Estimated,
            StartedAt = context.StartedAt,
            TtftMs = TtftMs,
            DurationMs = context.ElapsedMs,
            Status = Status,
            StopReason = StopReason,
            ErrorType = ErrorType,
            Cancelled = Cancelled,
            Currency = price.Currency,
            CostNanos = price.TotalNanos,
            InputCostNanos = parts.Input,
            OutputCostNanos = parts.Output,
            CacheReadCostNanos = parts.CacheRead,
            CacheWriteCostNanos = parts.CacheWrite,
            WebSearchRequests = WebSearchRequests,
            WebSearchCostNanos = parts.WebSearch,
            PriceVersion = price.PriceVersion,
            EnergyWh = impact?.EnergyWh,
            EnergyWhMin = impact?.EnergyWhMin,
            EnergyWhMax = impact?.EnergyWhMax,
            Gco2e = impact?.Gco2e,
            Gco2eMin = impact?.Gco2eMin,
            Gco2eMax = impact?.Gco2eMax,
            WaterMl = impact?.WaterMl,
            Region = calculator.Region.Region,
            GridGco2ePerKwh = calculator.Region.GridGco2ePerKwh,
            Pue = calculator.Region.Pue,
            EnergyMethod = impact?.Method ?? EnergyModel.UnknownMethod,
            EnergySource = impact?.Source ?? EnergySources.Unknown,
        };
    }

    /// <summary>
    /// The Claude Code session: the <c>x-claude-code-session-id</c> header, else <c>session_id</c> in the JSON-encoded
    /// <c>metadata.user_id</c>, else the older <c>user_…_session_&lt;uuid&gt;</c> form.
    /// </summary>
    public static string? SessionFrom(IHeaderDictionary headers, string? userId)
    {
        var header = headers["x-claude-code-session-id"].ToString();
        if (Clean(header) is { } fromHeader)
        {
            return fromHeader;
        }

        if (string.IsNullOrEmpty(userId))
        {
            return null;
        }

        if (userId.StartsWith('{'))
        {
            try
            {
                using var document = JsonDocument.Parse(userId);
                if (document.RootElement.ValueKind == JsonValueKind.Object
                    && document.RootElement.TryGetProperty("session_id", out var session)
                    && session.ValueKind == JsonValueKind.String)
                {
                    return Clean(session.GetString());
                }
            }
            catch (JsonException)
            {
            }

            return null;
        }

        var marker = userId.LastIndexOf("_session_", StringComparison.Ordinal);
        return marker >= 0 ? Clean(userId[(marker + "_session_".Length)..]) : null;
    }

    public static string? AgentFrom(IHeaderDictionary headers) => Clean(headers["x-claude-code-agent-id"].ToString());

    /// <summary>Ids become table keys: keep them short and plain.</summary>
    internal static string? Clean(string? value)
    {
        if (string.IsNullOrWhiteSpace(value) || value.Length > 128)
        {
            return null;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not '-' and not '_' and not '.')
            {
                return null;
            }
        }

        return value;
    }
}

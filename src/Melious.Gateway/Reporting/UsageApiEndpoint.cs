using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Melious.Gateway.Auth;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Upstream;
using Melious.Gateway.Usage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.Reporting;

/// <summary>
/// The usage API: Anthropic's Admin API usage and cost reports (<c>GET /v1/organizations/usage_report/messages</c>,
/// <c>GET /v1/organizations/cost_report</c>) and the Melious session breakdown (<c>GET /v1/usage/sessions</c>,
/// <c>GET /v1/usage/sessions/{id}</c>). Keys authenticate as for <c>/v1/messages</c>; a user key reads its own
/// account only, whatever filters it sends.
/// </summary>
public sealed partial class UsageApiEndpoint(ApiKeyAuthenticator authenticator, UsageQueryService usage, TimeProvider time, ILogger<UsageApiEndpoint> logger)
{
    private static readonly Dictionary<string, string?> UsageParams = new(StringComparer.Ordinal)
    {
        ["starting_at"] = null, ["ending_at"] = null, ["bucket_width"] = null, ["group_by"] = null, ["models"] = null,
        ["api_key_ids"] = null, ["account_ids"] = null, ["workspace_ids"] = null, ["limit"] = null, ["page"] = null, ["beta"] = null,
        ["service_tiers"] = "Melious has no service tiers", ["context_window"] = "Melious does not split usage by context window",
        ["inference_geos"] = "Melious does not record an inference geography", ["speeds"] = "Melious has no speed modes",
        ["service_account_ids"] = "Melious has no service accounts",
    };

    private static readonly Dictionary<string, string?> CostParams = new(StringComparer.Ordinal)
    {
        ["starting_at"] = null, ["ending_at"] = null, ["bucket_width"] = null, ["group_by"] = null, ["account_ids"] = null,
        ["workspace_ids"] = null, ["limit"] = null, ["page"] = null, ["beta"] = null,
        ["models"] = "the cost report has no model filter (as at Anthropic); use group_by[]=description, or the usage report's models[]",
        ["api_key_ids"] = "the cost report is not kept per API key; use the usage report's api_key_ids[]",
        ["service_tiers"] = "Melious has no service tiers", ["context_window"] = "Melious does not split costs by context window",
    };

    private static readonly Dictionary<string, string?> SessionParams = new(StringComparer.Ordinal)
    {
        ["starting_at"] = null, ["ending_at"] = null, ["account_id"] = null,
    };

    public Task UsageReportAsync(HttpContext http) => RunAsync(http, async key =>
    {
        var query = http.Request.Query;
        ReportQuery.RejectUnknown(query, UsageParams);
        ReportQuery.DailyBuckets(query);
        var groupBy = ReportQuery.Array(query, "group_by");
        foreach (var g in groupBy)
        {
            if (g is not ("model" or "api_key_id" or "account_id" or "workspace_id"))
            {
                throw new ReportQueryException(g is "service_tier" or "context_window" or "inference_geo" or "speed" or "service_account_id"
                    ? $"group_by[]={g} is not supported: Melious records usage by model, API key and account"
                    : $"group_by[] must be model, api_key_id, account_id or workspace_id (got '{g}')");
            }
        }

        var models = ReportQuery.Array(query, "models").ToHashSet(StringComparer.Ordinal);
        var keyIds = ReportQuery.Array(query, "api_key_ids").ToHashSet(StringComparer.OrdinalIgnoreCase);
        var byModel = groupBy.Contains("model");
        var byKey = groupBy.Contains("api_key_id");
        var byAccount = groupBy.Contains("account_id");
        if ((byKey || keyIds.Count > 0) && (byModel || models.Count > 0))
        {
            throw new ReportQueryException("API keys and models cannot be combined in one report (group_by[] or filters): the daily totals are kept per key and per model, not per key and model");
        }

        var (from, to, pageStart, pageEnd, hasMore) = Paging(query, key, defaultLimit: 7);
        var accounts = Accounts(query, key, out var account);
        var items = new List<(DateOnly Day, string Group, string Account, string Currency, UsageCounters Totals)>();
        if (byKey || keyIds.Count > 0)
        {
            await foreach (var row in usage.ReadKeyDaysAsync(pageStart, pageEnd, account, http.RequestAborted))
            {
                if ((keyIds.Count == 0 || keyIds.Contains(row.Name)) && Allowed(accounts, row.Account))
                {
                    items.Add((DateOnly.ParseExact(row.Day, "yyyy-MM-dd", CultureInfo.InvariantCulture), byKey ? row.Name : "", row.Account, row.Currency, row.Totals));
                }
            }
        }
        else
        {
            await foreach (var row in usage.ReadDailyAsync(pageStart, pageEnd, account, http.RequestAborted))
            {
                if ((models.Count == 0 || models.Contains(row.Model)) && Allowed(accounts, row.Account))
                {
                    items.Add((DateOnly.ParseExact(row.Day, "yyyy-MM-dd", CultureInfo.InvariantCulture), byModel ? row.Model : "", row.Account, row.Currency, row.Totals));
                }
            }
        }

        var buckets = new List<UsageReportBucket>();
        for (var day = pageStart; day <= pageEnd; day = day.AddDays(1))
        {
            var results = UsageGrouping.Group(items.Where(i => i.Day == day).Select(i => (GroupKey(i.Group, byAccount ? i.Account : ""), i.Currency, i.Totals)))
                .Select(line =>
                {
                    var (group, groupAccount) = SplitKey(line.Key);
                    return UsageResult(line, byModel ? group : null, byKey ? group : null, byAccount ? groupAccount : null);
                })
                .ToList();
            buckets.Add(new UsageReportBucket(ReportQuery.Timestamp(day), ReportQuery.Timestamp(day.AddDays(1)), results));
        }

        return (new UsageReportPage(buckets, hasMore, hasMore ? ReportQuery.Page(pageEnd.AddDays(1)) : null), UsageApiJsonContext.Default.UsageReportPage);
    });

    public Task CostReportAsync(HttpContext http) => RunAsync(http, async key =>
    {
        var query = http.Request.Query;
        ReportQuery.RejectUnknown(query, CostParams);
        ReportQuery.DailyBuckets(query);
        var groupBy = ReportQuery.Array(query, "group_by");
        foreach (var g in groupBy)
        {
            if (g is not ("description" or "workspace_id" or "account_id"))
            {
                throw new ReportQueryException(g switch
                {
                    "model" or "token_type" or "cost_type" => $"group_by[]={g} is not supported on the cost report: group_by[]=description gives one line per model, cost type and token type",
                    "api_key_id" => "group_by[]=api_key_id is not supported on the cost report: costs are kept per model and account; the usage report groups by api_key_id",
                    "service_tier" or "context_window" or "inference_geo" or "speed" or "service_account_id" => $"group_by[]={g} is not supported: Melious records costs by model and account",
                    _ => $"group_by[] must be description, workspace_id or account_id (got '{g}')",
                });
            }
        }

        var byDescription = groupBy.Contains("description");
        var byAccount = groupBy.Contains("account_id");
        var (from, to, pageStart, pageEnd, hasMore) = Paging(query, key, defaultLimit: 7);
        var accounts = Accounts(query, key, out var account);
        var items = new List<DailyUsageRow>();
        await foreach (var row in usage.ReadDailyAsync(pageStart, pageEnd, account, http.RequestAborted))
        {
            if (Allowed(accounts, row.Account))
            {
                items.Add(row);
            }
        }

        var buckets = new List<CostReportBucket>();
        for (var day = pageStart; day <= pageEnd; day = day.AddDays(1))
        {
            var dayText = UsageQueryService.Day(day);
            var results = UsageGrouping.Group(items.Where(r => r.Day == dayText).Select(r => (GroupKey(byDescription ? r.Model : "", byAccount ? r.Account : ""), r.Currency, r.Totals)))
                .SelectMany(line =>
                {
                    var (model, groupAccount) = SplitKey(line.Key);
                    var account = byAccount ? groupAccount : null;
                    return byDescription
                        ? CostLines.Split(model, line.Totals).Select(l => CostResult(l.Nanos, line.Currency, account, l, model))
                        : [CostResult(line.Totals.CostNanos, line.Currency, account, null, null)];
                })
                .ToList();
            buckets.Add(new CostReportBucket(ReportQuery.Timestamp(day), ReportQuery.Timestamp(day.AddDays(1)), results));
        }

        return (new CostReportPage(buckets, hasMore, hasMore ? ReportQuery.Page(pageEnd.AddDays(1)) : null), UsageApiJsonContext.Default.CostReportPage);
    });

    private static CostReportResult CostResult(long nanos, string currency, string? account, CostLine? line, string? model) => new()
    {
        Amount = LowestUnits(nanos, currency),
        Currency = currency,
        CostType = line?.CostType,
        Description = line?.Description,
        Model = model,
        TokenType = line?.TokenType,
        AccountId = account,
        Cost = Pricing.FormatNanos(nanos),
        CostNanos = nanos,
    };

    public Task SessionsAsync(HttpContext http) => RunAsync(http, async key =>
    {
        var query = http.Request.Query;
        ReportQuery.RejectUnknown(query, SessionParams);
        var (from, to) = ReportQuery.Days(query, time.GetUtcNow(), startRequired: false, defaultDays: 30);
        var scope = UsageScope.For(key, query["account_id"].ToString());
        var sessions = await usage.ReadSessionsAsync(from, to, scope.Account, http.RequestAborted);
        var data = sessions.Select(s => new SessionItem
        {
            SessionId = s.SessionId,
            AccountId = s.Account,
            FirstRequestAt = s.FirstAt is null ? null : ReportQuery.Timestamp(s.FirstAt),
            LastRequestAt = s.LastAt is null ? null : ReportQuery.Timestamp(s.LastAt),
            Requests = s.Totals.Requests,
            ErrorRequests = s.Totals.ErrorRequests,
            UncachedInputTokens = s.Totals.InputTokens,
            CacheReadInputTokens = s.Totals.CacheReadTokens,
            CacheCreationInputTokens = s.Totals.CacheWriteTokens,
            OutputTokens = s.Totals.OutputTokens,
            ReasoningTokens = s.Totals.ReasoningTokens,
            Currency = s.Currency,
            Cost = Pricing.FormatNanos(s.Totals.CostNanos),
            CostNanos = s.Totals.CostNanos,
            EnergyWh = s.Totals.EnergyMicroWh / 1_000_000m,
            Gco2e = s.Totals.Gco2eMicrograms / 1_000_000m,
        }).ToList();
        return (new SessionList(ReportQuery.Timestamp(from), ReportQuery.Timestamp(to.AddDays(1)), data), UsageApiJsonContext.Default.SessionList);
    });

    public Task SessionAsync(HttpContext http, string sessionId) => RunAsync(http, async key =>
    {
        var query = http.Request.Query;
        ReportQuery.RejectUnknown(query, SessionParams);
        var (from, to) = ReportQuery.Days(query, time.GetUtcNow(), startRequired: false, defaultDays: 30);
        var scope = UsageScope.For(key, query["account_id"].ToString());
        var requests = await usage.ReadSessionRequestsAsync(from, to, scope.Account, sessionId, http.RequestAborted);
        var data = requests.Select(ToItem).ToList();
        return (new SessionRequests(sessionId, ReportQuery.Timestamp(from), ReportQuery.Timestamp(to.AddDays(1)), data), UsageApiJsonContext.Default.SessionRequests);
    });

    internal static SessionRequestItem ToItem(RequestSummary r) => new()
    {
        RequestId = r.RequestId,
        StartedAt = ReportQuery.Timestamp(r.StartedAt),
        AccountId = r.Account,
        ApiKeyId = r.KeyId,
        RequestedModel = r.RequestedModel,
        UpstreamModel = r.UpstreamModel,
        UncachedInputTokens = r.InputTokens,
        CacheReadInputTokens = r.CacheReadTokens,
        CacheCreationInputTokens = r.CacheWriteTokens,
        OutputTokens = r.OutputTokens,
        ReasoningTokens = r.ReasoningTokens,
        Currency = r.Currency,
        Cost = Pricing.FormatNanos(r.CostNanos),
        CostNanos = r.CostNanos,
        TtftMs = r.TtftMs,
        DurationMs = r.DurationMs,
        Status = r.Status,
        ErrorType = r.ErrorType.Length == 0 ? null : r.ErrorType,
        Cancelled = r.Cancelled,
    };

    /// <summary>An amount as Anthropic's cost report gives it: in the currency's lowest units (cents), exact.</summary>
    public static string LowestUnits(long nanos, string currency)
    {
        var scaled = Pricing.FromNanos(nanos);
        for (var i = 0; i < Pricing.MinorUnits(currency); i++)
        {
            scaled *= 10;
        }

        return scaled.ToString("0.#########", CultureInfo.InvariantCulture);
    }

    internal static UsageReportResult UsageResult(UsageLine line, string? model, string? keyId, string? account)
    {
        var t = line.Totals;
        return new UsageReportResult
        {
            UncachedInputTokens = t.InputTokens,
            CacheCreation = new CacheCreationTokens(0, t.CacheWriteTokens),
            CacheReadInputTokens = t.CacheReadTokens,
            OutputTokens = t.OutputTokens,
            ServerToolUse = new ServerToolUse(t.WebSearchRequests),
            ApiKeyId = keyId,
            Model = model,
            AccountId = account,
            Requests = t.Requests,
            ErrorRequests = t.ErrorRequests,
            CancelledRequests = t.CancelledRequests,
            ReasoningTokens = t.ReasoningTokens,
            Currency = line.Currency,
            Cost = Pricing.FormatNanos(t.CostNanos),
            CostNanos = t.CostNanos,
            EnergyWh = t.EnergyMicroWh / 1_000_000m,
            EnergyWhMin = t.EnergyMinMicroWh / 1_000_000m,
            EnergyWhMax = t.EnergyMaxMicroWh / 1_000_000m,
            Gco2e = t.Gco2eMicrograms / 1_000_000m,
            Gco2eMin = t.Gco2eMinMicrograms / 1_000_000m,
            Gco2eMax = t.Gco2eMaxMicrograms / 1_000_000m,
            WaterMl = t.WaterMicroliters / 1_000m,
            UnknownEnergyRequests = t.UnknownEnergyRequests,
        };
    }

    private static string GroupKey(string group, string account) => group + "\u001f" + account;

    private static (string Group, string Account) SplitKey(string key)
    {
        var i = key.LastIndexOf('\u001f');
        return (key[..i], key[(i + 1)..]);
    }

    private (DateOnly From, DateOnly To, DateOnly PageStart, DateOnly PageEnd, bool HasMore) Paging(IQueryCollection query, ApiKeyRecord key, int defaultLimit)
    {
        var (from, to) = ReportQuery.Days(query, time.GetUtcNow(), startRequired: true, defaultDays: 1);
        var limit = ReportQuery.Limit(query, defaultLimit, 31);
        var pageStart = ReportQuery.PageStart(query, from, to);
        var pageEnd = pageStart.AddDays(limit - 1);
        var hasMore = pageEnd < to;
        return (from, to, pageStart, hasMore ? pageEnd : to, hasMore);
    }

    /// <summary>
    /// The accounts a report may include: a user key's own account only (its <c>account_ids[]</c> are ignored);
    /// for an admin key the <c>account_ids[]</c> given, or all (null). <paramref name="single"/> is set when one
    /// account is read, so storage is queried by partition.
    /// </summary>
    private static HashSet<string>? Accounts(IQueryCollection query, ApiKeyRecord key, out string? single)
    {
        if (!key.IsAdmin)
        {
            single = key.Account;
            return [key.Account];
        }

        var wanted = ReportQuery.Array(query, "account_ids").ToHashSet(StringComparer.Ordinal);
        single = wanted.Count == 1 ? wanted.First() : null;
        return wanted.Count == 0 ? null : wanted;
    }

    private static bool Allowed(HashSet<string>? accounts, string account) => accounts is null || accounts.Contains(account);

    private async Task RunAsync<T>(HttpContext http, Func<ApiKeyRecord, Task<(T Body, JsonTypeInfo<T> Type)>> handler)
    {
        var requestId = RequestContext.EnsureRequestId(http);

        // An account's usage and spend: no shared cache may keep it (keys usually come in x-api-key, which HTTP
        // caches do not treat as a credential the way they treat Authorization).
        http.Response.Headers.CacheControl = "no-store";
        var auth = await authenticator.AuthenticateAsync(http.Request.Headers, http.RequestAborted);
        if (auth.Status != AuthStatus.Ok)
        {
            await ErrorWriter.WriteAsync(http, MessagesEndpoint.AuthError(auth));
            return;
        }

        try
        {
            var (body, type) = await handler(auth.Key!);
            var bytes = JsonSerializer.SerializeToUtf8Bytes(body, type);
            http.Response.StatusCode = 200;
            http.Response.ContentType = "application/json";
            http.Response.ContentLength = bytes.Length;
            await http.Response.Body.WriteAsync(bytes, http.RequestAborted);
        }
        catch (ReportQueryException ex)
        {
            await ErrorWriter.WriteAsync(http, 400, "invalid_request_error", ex.Message);
        }
        catch (Exception ex) when (ex is Azure.RequestFailedException or HttpRequestException or TimeoutException || (ex is OperationCanceledException && !http.RequestAborted.IsCancellationRequested))
        {
            Log.StorageFailed(logger, ex.GetType().Name);
            await ErrorWriter.WriteAsync(http, new GatewayError(503, "api_error", "usage storage is temporarily unavailable; retry shortly") { RetryAfter = "5" });
        }
        catch (Exception ex) when (!(ex is OperationCanceledException && http.RequestAborted.IsCancellationRequested))
        {
            // A bug, not a client mistake: logged with the request id, answered as the Messages API answers one.
            Log.Unhandled(logger, requestId, ex);
            await ErrorWriter.WriteAsync(http, 500, "api_error", "internal gateway error; the request id identifies it in the gateway logs");
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Usage report failed: storage unavailable ({Error})")]
        public static partial void StorageFailed(ILogger logger, string error);

        [LoggerMessage(2, LogLevel.Error, "Usage report {RequestId} failed")]
        public static partial void Unhandled(ILogger logger, string requestId, Exception exception);
    }
}

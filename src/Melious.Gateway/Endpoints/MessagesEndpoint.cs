using System.Diagnostics;
using Melious.Gateway.Auth;
using Melious.Gateway.Limits;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Routing;
using Melious.Gateway.Telemetry;
using Melious.Gateway.Translation;
using Melious.Gateway.Upstream;
using Melious.Gateway.Usage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// <c>POST /v1/messages</c> (with or without <c>?beta=true</c>). The pipeline, in order:
/// <list type="number">
/// <item>authenticate the key (401/403/503);</item>
/// <item>read the body within the size limit (413), parse and validate it (400);</item>
/// <item>resolve the model, check the key's model allow-list (403), budget, then its requests, tokens and concurrency
/// limits, shared across instances (429, see <see cref="KeyRateLimiter"/>);</item>
/// <item>forward to the upstream in its protocol, streaming or not per <c>body.stream</c>;</item>
/// <item>publish exactly one usage event, whatever happened (success, upstream error, client cancel).</item>
/// </list>
/// Both hosts call <see cref="HandleAsync"/>; it writes the whole response itself.
/// </summary>
public sealed partial class MessagesEndpoint(
    ApiKeyAuthenticator authenticator,
    KeyRateLimiter limiter,
    BudgetGuard budget,
    ModelRouter router,
    RequestParser parser,
    OpenAIForwarder openAI,
    AnthropicForwarder anthropic,
    UsageCalculator calculator,
    IUsageSink usage,
    GatewayMetrics metrics,
    TimeProvider time,
    ILogger<MessagesEndpoint> logger)
{
    public async Task HandleAsync(HttpContext http)
    {
        var context = RequestContext.Start(http, time);
        var cancellationToken = http.RequestAborted;

        // The request's span; the upstream attempts are its "chat" children. Names and counts only, never content.
        // A host activity nobody records (ASP.NET Core creates one whenever anything listens to activities) would
        // make the default parent-based sampler drop ours: start a root span instead.
        if (Activity.Current is { Recorded: false })
        {
            Activity.Current = null;
        }

        using var activity = GatewayMetrics.ActivitySource.StartActivity("messages", Activity.Current is null ? ActivityKind.Server : ActivityKind.Internal);
        activity?.SetTag("melious.request_id", context.RequestId);

        // Not cancelled by the client leaving: a client that resets while its key is looked up (the first request of a
        // key, storage slow under load) must still be billed as cancelled, which needs the key. The wait is bounded
        // by the lookup's own timeout; the body read below then sees the client gone and records the 499.
        var auth = await authenticator.AuthenticateAsync(http.Request.Headers, CancellationToken.None);
        if (auth.Status != AuthStatus.Ok)
        {
            await ErrorWriter.WriteAsync(http, AuthError(auth));
            return;
        }

        var key = auth.Key!;
        PooledBuffer? body = null;
        var recorder = new UsageRecorder(context, key)
        {
            SessionId = UsageRecorder.SessionFrom(http.Request.Headers, null),
            AgentId = UsageRecorder.AgentFrom(http.Request.Headers),
        };
        try
        {
            var read = await RequestBodyReader.ReadAsync(http, parser.Limits.MaxBodyBytes, cancellationToken);
            body = read.Body;
            if (read.ClientGone)
            {
                recorder.Cancelled = true;
                recorder.Status = 499;
                return;
            }

            if (read.Error is { } readError)
            {
                await FailAsync(http, recorder, readError);
                return;
            }

            var (request, parseError) = parser.Parse(body!.WrittenMemory, requireMaxTokens: true);
            if (parseError is not null)
            {
                await FailAsync(http, recorder, parseError);
                return;
            }

            recorder.SessionId = UsageRecorder.SessionFrom(http.Request.Headers, request!.Metadata?.UserId);
            recorder.AffinityKey = recorder.SessionId ?? key.KeyId;
            recorder.RequestedModel = request.Model!;
            recorder.Stream = request.Stream == true;

            var route = router.Resolve(request.Model!);
            recorder.Model = route.Model;
            activity?.SetTag("gen_ai.request.model", request.Model);
            if (await CheckKeyAsync(key, route, cancellationToken) is { } denied)
            {
                await FailAsync(http, recorder, denied);
                return;
            }

            var estimate = key.TokensPerMinute > 0 ? Tokens.TokenEstimator.EstimateRequest(request) : 0;
            var decision = await limiter.AcquireAsync(key, estimate, cancellationToken);
            RateLimitHeaders.Write(http.Response.Headers, decision);
            if (decision.Error is { } limited)
            {
                metrics.RecordLimitRejection(decision.Limit ?? "?", key.Account, key.KeyId);
                await FailAsync(http, recorder, limited);
                return;
            }

            var ticket = decision.Ticket!;
            recorder.Ticket = ticket;
            try
            {
                // Fallbacks: a failure before the first byte that the model falls back on moves the request to the
                // next model of its list; the client still sees its own model name (the forwarders answer with it).
                var primary = route.Model;
                var fallbacks = primary.Fallbacks;
                var next = 0;
                while (true)
                {
                    recorder.FallbackOn = next < fallbacks.Count ? primary.FallbackOn : FallbackTriggers.None;
                    Log.Routed(logger, context.RequestId, route.Kind, route.Model.Protocol, request!.Stream == true);
                    var forward = route.Model.Protocol == Protocols.Anthropic
                        ? anthropic.ForwardAsync(context, request, body, route, recorder)
                        : openAI.ForwardAsync(context, request, route, recorder);

                    // Both forwarders take what they need from the request and the body before their first await: a
                    // long stream must not keep either alive (hundreds of open agent streams would hold them all).
                    // Only a model with fallbacks keeps them, for the next model.
                    if (recorder.FallbackOn == FallbackTriggers.None)
                    {
                        request = null;
                        body.Dispose();
                    }

                    await forward;
                    if (recorder.PendingFallback is not { } pending)
                    {
                        break;
                    }

                    recorder.PendingFallback = null;
                    var to = router.EntryFor(fallbacks[next++]);
                    var reason = FallbackTriggerNames.Format(pending.Trigger);
                    Log.FallingBack(logger, context.RequestId, route.Model.Id, to.Id, reason, pending.Error.Status);
                    metrics.RecordFallback(recorder.RequestedModel, route.Model.Id, to.Id, reason, key.Account);
                    recorder.FallbackFrom ??= primary.Id;
                    recorder.ErrorType = null;
                    recorder.Status = 200;
                    route = route with { Model = to };
                    recorder.Model = to;
                }
            }
            finally
            {
                ticket.Complete(recorder.Tokens);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            recorder.Cancelled = true;
            recorder.Status = http.Response.HasStarted ? http.Response.StatusCode : 499;
        }
        catch (Exception ex)
        {
            // A bug, not a client mistake: log it, answer 500 (or an error event), and still bill what happened.
            Log.Unhandled(logger, context.RequestId, ex);
            recorder.ErrorType ??= "api_error";
            if (!http.Response.HasStarted)
            {
                recorder.Status = 500;
                await ErrorWriter.WriteAsync(http, 500, "api_error", "internal gateway error; the request id identifies it in the gateway logs");
            }
        }
        finally
        {
            body?.Dispose();
            Publish(recorder, activity);
        }
    }

    private void Publish(UsageRecorder recorder, Activity? activity)
    {
        try
        {
            var e = recorder.Build(calculator);
            usage.Publish(e);
            Measure(recorder, e, activity);
        }
        catch (Exception ex)
        {
            Log.UsageBuildFailed(logger, ex);
        }
        finally
        {
            recorder.Lease?.Dispose();
        }
    }

    /// <summary>The request's metrics and span attributes, from the same event that bills it.</summary>
    private void Measure(UsageRecorder recorder, UsageEvent e, Activity? activity)
    {
        var served = recorder.Lease is not null;
        var errorType = e.Cancelled ? "cancelled" : e.ErrorType ?? (e.Status >= 400 ? e.Status.ToString(System.Globalization.CultureInfo.InvariantCulture) : null);
        var address = recorder.Endpoint?.Authority ?? "";
        metrics.RecordRequest(new RequestMeasurement(
            e.RequestedModel,
            e.UpstreamModel,
            recorder.Model?.Flavor ?? "",
            address,
            e.Upstream,
            e.Account,
            e.KeyId,
            e.DurationMs / 1000.0,
            e.TtftMs / 1000.0,
            errorType,
            served,
            e.InputTokens,
            e.CacheReadTokens,
            e.CacheWriteTokens,
            e.OutputTokens));

        foreach (var span in (ReadOnlySpan<Activity?>)[activity, recorder.Lease?.Activity])
        {
            if (span is not { IsAllDataRequested: true })
            {
                continue;
            }

            span.SetTag("gen_ai.response.model", e.UpstreamModel);
            span.SetTag("gen_ai.usage.input_tokens", e.InputTokens + e.CacheReadTokens + e.CacheWriteTokens);
            span.SetTag("gen_ai.usage.output_tokens", e.OutputTokens);
            span.SetTag("gen_ai.usage.cache_read.input_tokens", e.CacheReadTokens);
            span.SetTag("gen_ai.usage.cache_creation.input_tokens", e.CacheWriteTokens);
            if (e.StopReason is { } stop)
            {
                span.SetTag("gen_ai.response.finish_reasons", new[] { stop });
            }
        }

        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("melious.account", e.Account);
            activity.SetTag("melious.key_id", e.KeyId);
            activity.SetTag("http.response.status_code", e.Status);
            if (e.FallbackFrom is { } from)
            {
                activity.SetTag("melious.fallback_from", from);
            }

            if (errorType is not null)
            {
                activity.SetTag("error.type", errorType);
                activity.SetStatus(ActivityStatusCode.Error);
            }
        }
    }

    private async Task FailAsync(HttpContext http, UsageRecorder recorder, GatewayError error)
    {
        recorder.Status = error.Status;
        recorder.ErrorType = error.Type;
        await ErrorWriter.WriteAsync(http, error);
    }

    private async ValueTask<GatewayError?> CheckKeyAsync(ApiKeyRecord key, ModelRoute route, CancellationToken cancellationToken)
    {
        if (key.AllowedModels.Count > 0 && !ModelPatterns.Allows(key.AllowedModels, route.RequestedModel, route.Model.Id))
        {
            return new GatewayError(403, "permission_error", $"this API key may not use model {route.RequestedModel}");
        }

        var (allowed, spent) = await budget.CheckAsync(key, cancellationToken);
        if (!allowed)
        {
            metrics.RecordLimitRejection("budget", key.Account, key.KeyId);
            return new GatewayError(429, "rate_limit_error",
                $"this API key has used its monthly budget ({Pricing.FormatNanos(spent)} of {key.MonthlyBudget} {key.BudgetCurrency}); it resets on the first day of next month (UTC)")
            {
                ShouldRetry = false,
            };
        }

        return null;
    }

    /// <summary>The error for a refused key, saying what is wrong with it when its format tells (never echoing it).</summary>
    internal static GatewayError AuthError(AuthResult result) => result.Problem is { } problem
        ? result.Status switch
        {
            AuthStatus.Disabled => new GatewayError(403, "permission_error", problem),
            AuthStatus.Unavailable => new GatewayError(503, "api_error", problem) { RetryAfter = "5" },
            _ => new GatewayError(401, "authentication_error", problem) { ShouldRetry = false },
        }
        : AuthError(result.Status);

    internal static GatewayError AuthError(AuthStatus status) => status switch
    {
        AuthStatus.Missing => new GatewayError(401, "authentication_error", "missing API key: send x-api-key or Authorization: Bearer") { ShouldRetry = false },
        AuthStatus.Disabled => new GatewayError(403, "permission_error", "this API key has been revoked"),
        AuthStatus.Unavailable => new GatewayError(503, "api_error", "the key store is temporarily unavailable; retry shortly") { RetryAfter = "5" },
        _ => new GatewayError(401, "authentication_error", KeyFormat.UnknownKeyMessage) { ShouldRetry = false },
    };

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Request {RequestId} routed ({Kind}) to a {Protocol} upstream, stream={Stream}")]
        public static partial void Routed(ILogger logger, string requestId, RouteKind kind, string protocol, bool stream);

        [LoggerMessage(2, LogLevel.Error, "Request {RequestId} failed inside the gateway")]
        public static partial void Unhandled(ILogger logger, string requestId, Exception exception);

        [LoggerMessage(4, LogLevel.Warning, "Request {RequestId}: {From} failed before the first byte ({Reason}, {Status}); falling back to {To}")]
        public static partial void FallingBack(ILogger logger, string requestId, string from, string to, string reason, int status);

        [LoggerMessage(3, LogLevel.Error, "Could not build the usage event")]
        public static partial void UsageBuildFailed(ILogger logger, Exception exception);
    }
}

/// <summary>Matches model names against a key's allow-list (<c>*</c> wildcards, case-insensitive).</summary>
internal static class ModelPatterns
{
    public static bool Allows(IReadOnlyList<string> patterns, string requested, string upstream)
    {
        foreach (var pattern in patterns)
        {
            if (Matches(pattern, requested) || Matches(pattern, upstream))
            {
                return true;
            }
        }

        return false;
    }

    internal static bool Matches(string pattern, string value)
    {
        if (pattern == "*")
        {
            return true;
        }

        var parts = pattern.Split('*');
        if (parts.Length == 1)
        {
            return string.Equals(pattern, value, StringComparison.OrdinalIgnoreCase);
        }

        var position = 0;
        for (var i = 0; i < parts.Length; i++)
        {
            var part = parts[i];
            if (part.Length == 0)
            {
                continue;
            }

            var found = value.IndexOf(part, position, StringComparison.OrdinalIgnoreCase);
            if (found < 0 || (i == 0 && found != 0))
            {
                return false;
            }

            position = found + part.Length;
        }

        return parts[^1].Length == 0 || value.EndsWith(parts[^1], StringComparison.OrdinalIgnoreCase);
    }
}

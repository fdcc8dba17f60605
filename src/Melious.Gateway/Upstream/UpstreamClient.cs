using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Melious.Gateway.Routing;
using Melious.Gateway.Telemetry;
using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Upstream;

/// <summary>The outcome of sending a request upstream: a response to read, or an error to return.</summary>
internal readonly record struct UpstreamResult(HttpResponseMessage? Response, GatewayError? Error, int Attempts)
{
    /// <summary>The endpoint that answered (the last one tried, on failure).</summary>
    public UpstreamEndpoint? Endpoint { get; init; }

    /// <summary>On success: the hold on the endpoint, to dispose once the response has been relayed.</summary>
    public EndpointLease? Lease { get; init; }

    /// <summary>On failure: which fallback trigger the failure matches (<see cref="FallbackTriggers.None"/> for client mistakes).</summary>
    public FallbackTriggers Trigger { get; init; }
}

/// <summary>
/// One pooled <see cref="HttpClient"/> per upstream origin, without a total timeout (agent turns run long; the
/// caller enforces idle timeouts) and without response buffering (<see cref="HttpCompletionOption.ResponseHeadersRead"/>).
/// Retries happen only before the first response byte, with a bounded number of attempts: on connection failure,
/// or on 429/503 when the upstream's <c>retry-after</c> is short enough to wait out. When the model has several
/// endpoints (<see cref="UpstreamPool"/>), a failed attempt (connection failure, 429 or 5xx) instead moves at once
/// to another healthy endpoint the request has not tried; every attempt counts against the same retry budget.
/// </summary>
public sealed partial class UpstreamClient(IOptions<GatewayOptions> options, UpstreamPool pool, ILogger<UpstreamClient> logger) : IDisposable
{
    private readonly ConcurrentDictionary<string, HttpMessageInvoker> _clients = new(StringComparer.OrdinalIgnoreCase);
    private readonly StreamingOptions _streaming = options.Value.Streaming;

    internal async Task<UpstreamResult> SendAsync(
        Func<UpstreamEndpoint, HttpRequestMessage> createRequest,
        IReadOnlyList<UpstreamEndpoint> endpoints,
        string? affinityKey,
        UpstreamContext context,
        CancellationToken cancellationToken)
    {
        var attempts = 0;
        var skipped = 0;
        var forceBypass = false;
        var backoff = TimeSpan.FromMilliseconds(100);
        HashSet<string>? tried = null;
        while (true)
        {
            attempts++;
            var lease = pool.Pick(endpoints, affinityKey, tried, out var endpoint, out var bypass);
            bypass |= forceBypass;
            using var request = CreateRequest(createRequest, endpoint, lease);
            var invoker = ClientFor(request.RequestUri!);
            lease.Activity = StartActivity(context, endpoint, request.RequestUri!, attempts);
            HttpResponseMessage response;
            try
            {
                response = bypass ? await invoker.SendAsync(request, cancellationToken) : await lease.State.SendAsync(invoker, request, cancellationToken);
            }
            catch (BrokenCircuitException)
            {
                // The circuit opened (or another request's half-open probe is under way) since the pick: not an
                // attempt; try another endpoint, and once each was skipped, send through regardless.
                lease.Fail("circuit_open");
                attempts--;
                (tried ??= []).Add(endpoint.Key);
                forceBypass = ++skipped >= endpoints.Count;
                continue;
            }
            catch (HttpRequestException ex) when (!cancellationToken.IsCancellationRequested)
            {
                lease.Fail(ex.HttpRequestError.ToString());
                if (attempts <= _streaming.MaxRetries && IsConnectFailure(ex))
                {
                    Log.Retrying(logger, request.RequestUri!.Authority, attempts, ex.HttpRequestError.ToString());
                    if (!FailOver(endpoints, endpoint, ref tried))
                    {
                        await Task.Delay(Jitter(backoff), cancellationToken);
                        backoff *= 2;
                    }

                    continue;
                }

                Log.Unreachable(logger, request.RequestUri!.Authority, ex.HttpRequestError.ToString());
                return new UpstreamResult(null, new GatewayError(502, "api_error", $"the upstream is unreachable ({ex.HttpRequestError})"), attempts)
                {
                    Endpoint = endpoint,
                    Trigger = FallbackTriggers.Connection,
                };
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // SocketsHttpHandler's connect timeout.
                lease.Fail("connect_timeout");
                Log.Unreachable(logger, request.RequestUri!.Authority, "connect timeout");
                if (attempts <= _streaming.MaxRetries && FailOver(endpoints, endpoint, ref tried))
                {
                    continue;
                }

                return new UpstreamResult(null, new GatewayError(504, "timeout_error", "the upstream did not accept the connection in time"), attempts)
                {
                    Endpoint = endpoint,
                    Trigger = FallbackTriggers.Connection,
                };
            }
            catch
            {
                lease.Fail("cancelled");
                throw;
            }

            var status = (int)response.StatusCode;
            lease.Activity?.SetTag("http.response.status_code", status);
            if (response.IsSuccessStatusCode)
            {
                return new UpstreamResult(response, null, attempts) { Endpoint = endpoint, Lease = lease };
            }

            var retryAfter = RetryAfterSeconds(response);
            if ((status is 429 or >= 500) && attempts <= _streaming.MaxRetries && FailOver(endpoints, endpoint, ref tried))
            {
                Log.Retrying(logger, request.RequestUri!.Authority, attempts, status.ToString(System.Globalization.CultureInfo.InvariantCulture));
                response.Dispose();
                lease.Fail(status.ToString(System.Globalization.CultureInfo.InvariantCulture));
                continue;
            }

            if (status is 429 or 503 && attempts <= _streaming.MaxRetries)
            {
                var wait = retryAfter is { } seconds ? TimeSpan.FromSeconds(seconds) : Jitter(backoff);
                if (wait <= _streaming.MaxRetryDelay)
                {
                    Log.Retrying(logger, request.RequestUri!.Authority, attempts, status.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    response.Dispose();
                    lease.Fail(status.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    await Task.Delay(wait, cancellationToken);
                    backoff *= 2;
                    continue;
                }
            }

            byte[] body;
            try
            {
                body = await ReadErrorBodyAsync(response, cancellationToken);
            }
            catch
            {
                // The client left while the error was read: the endpoint's in-flight count and span end here too.
                response.Dispose();
                lease.Fail("cancelled");
                throw;
            }

            response.Dispose();
            lease.Fail(status.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var error = UpstreamErrors.FromStatus(status, UpstreamErrors.ExtractMessage(body), retryAfter?.ToString(System.Globalization.CultureInfo.InvariantCulture), context);
            Log.Rejected(logger, request.RequestUri!.Authority, status, error.Type);
            return new UpstreamResult(null, error, attempts) { Endpoint = endpoint, Trigger = TriggerFor(status, error) };
        }
    }

    /// <summary>Builds the attempt's request; if that throws, the endpoint's in-flight count taken by the pick is given back.</summary>
    private static HttpRequestMessage CreateRequest(Func<UpstreamEndpoint, HttpRequestMessage> create, UpstreamEndpoint endpoint, EndpointLease lease)
    {
        try
        {
            return create(endpoint);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    /// <summary>Marks <paramref name="current"/> tried and says whether another healthy endpoint can take the next attempt.</summary>
    private bool FailOver(IReadOnlyList<UpstreamEndpoint> endpoints, UpstreamEndpoint current, ref HashSet<string>? tried)
    {
        if (endpoints.Count < 2 || !pool.HasAlternative(endpoints, current, tried))
        {
            return false;
        }

        (tried ??= []).Add(current.Key);
        return true;
    }

    internal static FallbackTriggers TriggerFor(int status, GatewayError error) => status switch
    {
        429 => FallbackTriggers.RateLimit,
        502 or 503 or 529 => FallbackTriggers.Overloaded,
        >= 500 or 408 => FallbackTriggers.ServerError,
        400 or 422 when error.Message.StartsWith("prompt is too long", StringComparison.Ordinal) => FallbackTriggers.ContextOverflow,
        _ => FallbackTriggers.None,
    };

    private static Activity? StartActivity(UpstreamContext context, UpstreamEndpoint endpoint, Uri uri, int attempt)
    {
        var activity = GatewayMetrics.ActivitySource.StartActivity("chat " + context.UpstreamModel, ActivityKind.Client);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("gen_ai.operation.name", "chat");
            activity.SetTag("gen_ai.provider.name", context.Provider);
            activity.SetTag("gen_ai.request.model", context.UpstreamModel);
            activity.SetTag("server.address", uri.Host);
            activity.SetTag("server.port", uri.Port);
            activity.SetTag("melious.endpoint", endpoint.BaseUrl);
            activity.SetTag("melious.attempt", attempt);
        }

        return activity;
    }

    private HttpMessageInvoker ClientFor(Uri uri) =>
        _clients.GetOrAdd(uri.GetLeftPart(UriPartial.Authority), static (_, o) => new HttpMessageInvoker(new SocketsHttpHandler
        {
            ConnectTimeout = o.ConnectTimeout,
            PooledConnectionIdleTimeout = o.PooledConnectionIdleTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(10),
            AutomaticDecompression = DecompressionMethods.None,
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
            EnableMultipleHttp2Connections = true,
            MaxResponseHeadersLength = 64,
            // A finished response leaves only its terminating chunk unread, which drains at once and keeps the
            // connection pooled. A response abandoned mid-generation (client gone, idle timeout) is closed at once
            // by ObservedReadStream; should one reach the drain anyway, it is cut after at most 64 KB or 200 ms
            // instead of the default 2 s, so the upstream stops generating promptly.
            MaxResponseDrainSize = 64 * 1024,
            ResponseDrainTimeout = TimeSpan.FromMilliseconds(200),
            // No trace context or baggage from the client's request reaches the upstream: only headers the
            // gateway sets on purpose do.
            ActivityHeadersPropagator = System.Diagnostics.DistributedContextPropagator.CreateNoOutputPropagator(),
        }, disposeHandler: true), _streaming);

    private static bool IsConnectFailure(HttpRequestException ex) =>
        ex.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError;

    private static TimeSpan Jitter(TimeSpan delay) => delay * (0.75 + Random.Shared.NextDouble() / 2);

    private static int? RetryAfterSeconds(HttpResponseMessage response)
    {
        if (response.Headers.RetryAfter is { } retry)
        {
            if (retry.Delta is { } delta)
            {
                return (int)Math.Ceiling(delta.TotalSeconds);
            }

            if (retry.Date is { } date)
            {
                return (int)Math.Max(0, Math.Ceiling((date - DateTimeOffset.UtcNow).TotalSeconds));
            }
        }

        return null;
    }

    private static async Task<byte[]> ReadErrorBodyAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            var buffer = new byte[64 * 1024];
            var total = 0;
            int read;
            while (total < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken)) > 0)
            {
                total += read;
            }

            return buffer[..total];
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            return [];
        }
    }

    internal static void SetBearer(HttpRequestMessage request, string? apiKey)
    {
        if (!string.IsNullOrEmpty(apiKey))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }
    }

    public void Dispose()
    {
        foreach (var client in _clients.Values)
        {
            client.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Upstream {Authority} attempt {Attempt} failed ({Reason}); retrying")]
        public static partial void Retrying(ILogger logger, string authority, int attempt, string reason);

        [LoggerMessage(2, LogLevel.Error, "Upstream {Authority} unreachable ({Reason})")]
        public static partial void Unreachable(ILogger logger, string authority, string reason);

        [LoggerMessage(3, LogLevel.Warning, "Upstream {Authority} answered {Status}; returning {ErrorType}")]
        public static partial void Rejected(ILogger logger, string authority, int status, string errorType);
    }
}

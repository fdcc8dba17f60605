using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Melious.Gateway.Routing;
using Melious.Gateway.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;

namespace Melious.Gateway.Upstream;

/// <summary>
/// Per-process state of every upstream endpoint this gateway has called: requests in flight (for least-outstanding
/// balancing) and a circuit breaker (passive health). Health is deliberately per process: each instance learns an
/// endpoint's failures from its own calls within a few requests, needs no storage round trip to route, and a shared
/// view would itself need a healthy store; an instance that has not yet seen a replica fail pays at most the retry
/// budget, which fails over before the first byte anyway.
/// </summary>
/// <remarks>
/// The breaker is Polly's (<see cref="CircuitBreakerStrategyOptions{TResult}"/>): failure ratio over a sampling
/// window, a cool-down that honours the upstream's <c>retry-after</c>, then one half-open probe. It wraps a single
/// attempt rather than an <see cref="HttpClient"/> pipeline (Microsoft.Extensions.Http.Resilience) because the
/// endpoint is chosen per attempt above the handler, from the breakers' states; retries, failover and hedging (off)
/// stay in <see cref="UpstreamClient"/>, which already owns the retry budget.
/// </remarks>
public sealed partial class UpstreamPool(IOptions<GatewayOptions> options, GatewayMetrics metrics, TimeProvider time, ILogger<UpstreamPool> logger)
{
    private static readonly ResiliencePropertyKey<TimeSpan?> RetryAfterKey = new("melious.retry-after");

    private readonly ConcurrentDictionary<string, EndpointState> _states = new(StringComparer.OrdinalIgnoreCase);
    private readonly PoolOptions _options = options.Value.Pools;
    private readonly Lock _pickGate = new();

    internal bool UsesAffinity => !string.Equals(_options.Affinity, "none", StringComparison.OrdinalIgnoreCase);

    internal EndpointState StateOf(UpstreamEndpoint endpoint) => _states.GetOrAdd(endpoint.Key, static (key, self) => self.Create(key), this);

    /// <summary>The circuit state of an endpoint (for tests, the prober and operators' logs).</summary>
    public CircuitState CircuitOf(string baseUrl) => _states.TryGetValue(baseUrl.TrimEnd('/'), out var state) ? state.Circuit.CircuitState : CircuitState.Closed;

    /// <summary>Requests in flight to an endpoint from this process.</summary>
    public int OutstandingOf(string baseUrl) => _states.TryGetValue(baseUrl.TrimEnd('/'), out var state) ? state.Outstanding : 0;

    /// <summary>
    /// Picks the endpoint for the next attempt and counts the attempt against it at once: among endpoints whose circuit
    /// is closed or half-open and that this request has not tried yet. When every such endpoint is open, the request
    /// is sent anyway, bypassing the breaker (<paramref name="bypass"/>), to the best untried one: failing without
    /// trying helps nobody. The returned lease holds the endpoint's in-flight count until disposed.
    /// </summary>
    /// <remarks>
    /// Choosing and counting happen under one lock: a burst of requests (64 agent turns starting together) would
    /// otherwise all read the same in-flight counts and all choose the same "least loaded" endpoint, and with session
    /// affinity all pass the same load bound. The lock is held for a few comparisons, never across I/O.
    /// </remarks>
    internal EndpointLease Pick(IReadOnlyList<UpstreamEndpoint> pool, string? affinityKey, HashSet<string>? tried, out UpstreamEndpoint endpoint, out bool bypass)
    {
        if (pool.Count == 1)
        {
            endpoint = pool[0];
            var only = StateOf(endpoint);
            bypass = !only.Available;
            return only.Enter();
        }

        lock (_pickGate)
        {
            var picked = Choose(pool, affinityKey, tried, out endpoint, out bypass);
            return picked.Enter();
        }
    }

    private EndpointState Choose(IReadOnlyList<UpstreamEndpoint> pool, string? affinityKey, HashSet<string>? tried, out UpstreamEndpoint endpoint, out bool bypass)
    {
        var candidates = new EndpointCandidate[pool.Count];
        Span<int> indexes = stackalloc int[pool.Count];
        bypass = false;
        for (var pass = 0; pass < 3; pass++)
        {
            var count = 0;
            for (var i = 0; i < pool.Count; i++)
            {
                var e = pool[i];
                var state = StateOf(e);
                if ((pass == 0 && !state.Available) || (pass < 2 && tried?.Contains(e.Key) == true))
                {
                    continue;
                }

                candidates[count] = new EndpointCandidate(e.Key, e.Weight, state.Outstanding);
                indexes[count++] = i;
            }

            if (count > 0)
            {
                var chosen = indexes[EndpointSelector.Choose(candidates.AsSpan(0, count), UsesAffinity ? affinityKey : null, _options.LoadFactor)];
                endpoint = pool[chosen];
                var picked = StateOf(endpoint);
                bypass = !picked.Available;
                return picked;
            }
        }

        // Unreachable: the last pass admits every endpoint.
        endpoint = pool[0];
        return StateOf(endpoint);
    }

    /// <summary>True when the pool has a healthy endpoint other than <paramref name="current"/> that this request has not tried.</summary>
    internal bool HasAlternative(IReadOnlyList<UpstreamEndpoint> pool, UpstreamEndpoint current, HashSet<string>? tried)
    {
        foreach (var e in pool)
        {
            if (e.Key != current.Key && tried?.Contains(e.Key) != true && StateOf(e).Available)
            {
                return true;
            }
        }

        return false;
    }

    private EndpointState Create(string key)
    {
        var provider = new CircuitBreakerStateProvider();
        var authority = Uri.TryCreate(key, UriKind.Absolute, out var uri) ? uri.Authority : key;
        var state = new EndpointState(key, authority, provider, time);
        state.Pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
            {
                FailureRatio = _options.FailureRatio,
                MinimumThroughput = Math.Max(2, _options.MinimumThroughput),
                SamplingDuration = _options.SamplingDuration,
                BreakDuration = _options.BreakDuration,
                StateProvider = provider,
                ShouldHandle = args =>
                {
                    var failed = IsFailure(args.Outcome, args.Context.CancellationToken);
                    if (failed && args.Outcome.Result is { } response && RetryAfter(response) is { } retryAfter)
                    {
                        args.Context.Properties.Set(RetryAfterKey, retryAfter);
                    }

                    return ValueTask.FromResult(failed);
                },
                BreakDurationGenerator = args =>
                {
                    var wait = args.Context.Properties.GetValue(RetryAfterKey, null) ?? _options.BreakDuration;
                    return ValueTask.FromResult(TimeSpan.FromTicks(Math.Clamp(wait.Ticks, TimeSpan.FromMilliseconds(500).Ticks, _options.MaxBreakDuration.Ticks)));
                },
                OnOpened = args =>
                {
                    state.OpenUntil = time.GetUtcNow() + args.BreakDuration;
                    var reason = args.Outcome.Exception is { } ex ? ex.GetType().Name : ((int?)args.Outcome.Result?.StatusCode)?.ToString(CultureInfo.InvariantCulture) ?? "unknown";
                    metrics.RecordCircuitOpen(key, authority, reason);
                    Log.Opened(logger, authority, reason, args.BreakDuration.TotalSeconds);
                    return default;
                },
                OnClosed = _ =>
                {
                    Log.Closed(logger, authority);
                    return default;
                },
            })
            .Build();
        return state;
    }

    private static bool IsFailure(Outcome<HttpResponseMessage> outcome, CancellationToken cancellationToken) => outcome.Exception switch
    {
        null => outcome.Result is { } response && ((int)response.StatusCode is 429 or >= 500),
        HttpRequestException => true,
        OperationCanceledException => !cancellationToken.IsCancellationRequested,
        _ => false,
    };

    internal static TimeSpan? RetryAfter(HttpResponseMessage response) => response.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - DateTimeOffset.UtcNow is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero,
        _ => null,
    };

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Upstream endpoint {Authority}: circuit opened ({Reason}) for {Seconds} s; other endpoints of its pools take its requests")]
        public static partial void Opened(ILogger logger, string authority, string reason, double seconds);

        [LoggerMessage(2, LogLevel.Information, "Upstream endpoint {Authority}: circuit closed again")]
        public static partial void Closed(ILogger logger, string authority);
    }
}

/// <summary>One endpoint's in-flight count and breaker, shared by every model and request that uses it.</summary>
internal sealed class EndpointState(string key, string authority, CircuitBreakerStateProvider circuit, TimeProvider time)
{
    private int _outstanding;

    public ResiliencePipeline<HttpResponseMessage> Pipeline { get; set; } = ResiliencePipeline<HttpResponseMessage>.Empty;

    /// <summary>End of the current cool-down (Polly moves an open circuit to half-open only on the next call through it).</summary>
    public DateTimeOffset OpenUntil { get; set; }

    public string Key { get; } = key;

    public string Authority { get; } = authority;

    public CircuitBreakerStateProvider Circuit { get; } = circuit;

    public int Outstanding => Volatile.Read(ref _outstanding);

    /// <summary>Closed, half-open, or open with its cool-down over: the next call through it is the half-open probe.</summary>
    public bool Available => Circuit.CircuitState switch
    {
        CircuitState.Closed or CircuitState.HalfOpen => true,
        CircuitState.Open => time.GetUtcNow() >= OpenUntil,
        _ => false,
    };

    /// <summary>Sends one attempt through the breaker; throws <see cref="BrokenCircuitException"/> while it is open.</summary>
    public async ValueTask<HttpResponseMessage> SendAsync(HttpMessageInvoker invoker, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var context = ResilienceContextPool.Shared.Get(cancellationToken);
        try
        {
            return await Pipeline.ExecuteAsync(
                static async (ctx, state) => await state.invoker.SendAsync(state.request, ctx.CancellationToken),
                context,
                (invoker, request));
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>Probes the endpoint through the breaker (the active health check).</summary>
    public ValueTask<HttpResponseMessage> ProbeAsync(HttpMessageInvoker invoker, HttpRequestMessage request, CancellationToken cancellationToken) =>
        SendAsync(invoker, request, cancellationToken);

    /// <summary>Counts one attempt in flight until the returned lease is disposed.</summary>
    public EndpointLease Enter()
    {
        Interlocked.Increment(ref _outstanding);
        return new EndpointLease(this);
    }

    internal void Leave() => Interlocked.Decrement(ref _outstanding);
}

/// <summary>
/// One attempt's hold on an endpoint: counted as outstanding (and its <c>chat</c> span open) until disposed, which for
/// a served request is when its response has been relayed.
/// </summary>
internal sealed class EndpointLease(EndpointState state) : IDisposable
{
    private int _disposed;

    /// <summary>The attempt's <c>chat</c> span (set once the request exists), ended with the lease.</summary>
    public Activity? Activity { get; set; }

    public EndpointState State => state;

    public string Authority => state.Authority;

    public void Fail(string errorType)
    {
        if (Activity is { } a)
        {
            a.SetTag("error.type", errorType);
            a.SetStatus(ActivityStatusCode.Error);
        }

        Dispose();
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            state.Leave();
            Activity?.Dispose();
        }
    }
}

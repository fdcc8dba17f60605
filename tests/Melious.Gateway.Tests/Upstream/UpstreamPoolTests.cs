using System.Diagnostics.Metrics;
using System.Net;
using Melious.Gateway.Routing;
using Melious.Gateway.Telemetry;
using Melious.Gateway.Tests.Support;
using Melious.Gateway.Upstream;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;

namespace Melious.Gateway.Tests.Upstream;

/// <summary>The per-endpoint circuit: opens on 429/5xx, keeps out for the upstream's retry-after, then half-opens.</summary>
public sealed class UpstreamPoolTests
{
    private sealed class Answer(Func<HttpResponseMessage> respond) : HttpMessageHandler
    {
        public int Calls;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            return Task.FromResult(respond());
        }
    }

    private static (UpstreamPool Pool, ManualTimeProvider Time) Create(Action<PoolOptions>? configure = null)
    {
        var options = new GatewayOptions();
        configure?.Invoke(options.Pools);
        var time = new ManualTimeProvider();
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new GatewayMetrics(services.GetRequiredService<IMeterFactory>());
        return (new UpstreamPool(Options.Create(options), metrics, time, NullLogger<UpstreamPool>.Instance), time);
    }

    private static async Task<HttpStatusCode?> SendAsync(EndpointState state, HttpMessageInvoker invoker)
    {
        try
        {
            using var response = await state.SendAsync(invoker, new HttpRequestMessage(HttpMethod.Post, "http://10.0.0.1:8000/v1/chat/completions"), CancellationToken.None);
            return response.StatusCode;
        }
        catch (BrokenCircuitException)
        {
            return null;
        }
    }

    [Fact]
    public async Task A429WithRetryAfter_OpensTheCircuitForThatLong_ThenOneProbeClosesIt()
    {
        var (pool, time) = Create(o => o.BreakDuration = TimeSpan.FromSeconds(5));
        var endpoint = new UpstreamEndpoint("http://10.0.0.1:8000/v1");
        var state = pool.StateOf(endpoint);
        var failing = true;
        using var handler = new Answer(() => failing
            ? new HttpResponseMessage(HttpStatusCode.TooManyRequests) { Headers = { RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(20)) } }
            : new HttpResponseMessage(HttpStatusCode.OK));
        using var invoker = new HttpMessageInvoker(handler);

        Assert.Equal(HttpStatusCode.TooManyRequests, await SendAsync(state, invoker));
        Assert.Equal(HttpStatusCode.TooManyRequests, await SendAsync(state, invoker));
        Assert.Equal(CircuitState.Open, pool.CircuitOf(endpoint.BaseUrl));
        Assert.False(state.Available);
        Assert.Null(await SendAsync(state, invoker));
        Assert.Equal(2, handler.Calls);

        // Longer than the configured 5 s, shorter than the upstream's 20 s: still open.
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(CircuitState.Open, pool.CircuitOf(endpoint.BaseUrl));

        Assert.False(state.Available);
        time.Advance(TimeSpan.FromSeconds(11));
        Assert.True(state.Available);
        failing = false;
        Assert.Equal(HttpStatusCode.OK, await SendAsync(state, invoker));
        Assert.Equal(CircuitState.Closed, pool.CircuitOf(endpoint.BaseUrl));
    }

    [Fact]
    public async Task Pick_SkipsOpenEndpoints_AndTriedOnes_AndBypassesOnlyWhenNothingElseIsLeft()
    {
        var (pool, _) = Create(o => o.Affinity = "none");
        UpstreamEndpoint[] endpoints = [new("http://a:1/v1"), new("http://b:1/v1")];
        using var handler = new Answer(() => new HttpResponseMessage(HttpStatusCode.InternalServerError));
        using var invoker = new HttpMessageInvoker(handler);
        await SendAsync(pool.StateOf(endpoints[0]), invoker);
        await SendAsync(pool.StateOf(endpoints[0]), invoker);
        Assert.Equal(CircuitState.Open, pool.CircuitOf("http://a:1/v1"));

        for (var i = 0; i < 20; i++)
        {
            using var lease = pool.Pick(endpoints, null, null, out var chosen, out var bypass);
            Assert.Equal("http://b:1/v1", chosen.BaseUrl);
            Assert.False(bypass);
        }

        using var forcedLease = pool.Pick(endpoints, null, ["http://b:1/v1"], out var last, out var forced);
        Assert.Equal("http://a:1/v1", last.BaseUrl);
        Assert.True(forced);
        Assert.False(pool.HasAlternative(endpoints, endpoints[1], null));
    }

    [Fact]
    public async Task Pick_CountsTheAttemptAsItChooses_SoABurstOfConcurrentPicksSpreadsEvenly()
    {
        // Without affinity the least-loaded endpoint wins. Were choosing and counting two steps, concurrent picks
        // would read the same counts and pile onto one endpoint; counted under the choice, every pick sees the last.
        var (pool, _) = Create(o => o.Affinity = "none");
        UpstreamEndpoint[] endpoints = [new("http://a:1/v1"), new("http://b:1/v1")];
        const int threads = 8, picksEach = 250;
        using var start = new Barrier(threads);
        var picks = await Task.WhenAll(Enumerable.Range(0, threads).Select(t => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait();
            var leases = new List<EndpointLease>(picksEach);
            for (var i = 0; i < picksEach; i++)
            {
                leases.Add(pool.Pick(endpoints, null, null, out _, out _));
            }

            return leases;
        }, TaskCreationOptions.LongRunning)));

        Assert.Equal(threads * picksEach / 2, pool.OutstandingOf("http://a:1/v1"));
        Assert.Equal(threads * picksEach / 2, pool.OutstandingOf("http://b:1/v1"));

        foreach (var lease in picks.SelectMany(l => l))
        {
            lease.Dispose();
            lease.Dispose();
        }

        Assert.Equal(0, pool.OutstandingOf("http://a:1/v1"));
        Assert.Equal(0, pool.OutstandingOf("http://b:1/v1"));
    }

    [Fact]
    public async Task AnAttemptWhoseRequestCannotBeBuilt_GivesBackTheEndpointsInFlightCount()
    {
        var (pool, _) = Create(o => o.Affinity = "none");
        UpstreamEndpoint[] endpoints = [new("http://a:1/v1"), new("http://b:1/v1")];
        using var client = new UpstreamClient(Options.Create(new GatewayOptions()), pool, NullLogger<UpstreamClient>.Instance);
        for (var i = 0; i < 3; i++)
        {
            await Assert.ThrowsAsync<InvalidOperationException>(() => client.SendAsync(
                _ => throw new InvalidOperationException("bad request"), endpoints, null, new UpstreamContext("m", "u", null, 1000, 10), CancellationToken.None));
        }

        Assert.Equal(0, pool.OutstandingOf("http://a:1/v1"));
        Assert.Equal(0, pool.OutstandingOf("http://b:1/v1"));
    }
}

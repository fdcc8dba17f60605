using BenchmarkDotNet.Attributes;
using Melious.Gateway;
using Melious.Gateway.Routing;
using Melious.Gateway.Telemetry;
using Melious.Gateway.Upstream;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Melious.Benchmarks;

/// <summary>
/// What an upstream pool adds to every request, before its first upstream byte (so to the TTFT as well as the CPU):
/// choosing the endpoint, counting it outstanding, and sending through its circuit breaker. A single-URL model pays
/// the same pick (short path) and breaker; compare the three-endpoint rows with the single-endpoint ones.
/// </summary>
[MemoryDiagnoser]
public class PoolBenchmarks
{
    private static readonly HttpResponseMessage Ok = new(System.Net.HttpStatusCode.OK);

    private UpstreamPool _pool = null!;
    private UpstreamEndpoint[] _single = null!;
    private UpstreamEndpoint[] _three = null!;
    private HttpMessageInvoker _invoker = null!;
    private HttpRequestMessage _request = null!;
    private string _session = "";

    [GlobalSetup]
    public void Setup()
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        _pool = new UpstreamPool(Options.Create(new GatewayOptions()), new GatewayMetrics(services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>()), TimeProvider.System, NullLogger<UpstreamPool>.Instance);
        _single = [new UpstreamEndpoint("http://10.0.0.1:8000/v1")];
        _three = [new UpstreamEndpoint("http://10.0.0.1:8000/v1"), new UpstreamEndpoint("http://10.0.0.2:8000/v1"), new UpstreamEndpoint("http://10.0.0.3:8000/v1")];
        _invoker = new HttpMessageInvoker(new Answer());
        _request = new HttpRequestMessage(HttpMethod.Post, "http://10.0.0.1:8000/v1/chat/completions");
        _session = Guid.NewGuid().ToString();
    }

    [Benchmark(Baseline = true, Description = "pool: pick+lease, 1 endpoint")]
    public int PickSingle() => PickAndLeave(_single, _session);

    [Benchmark(Description = "pool: pick+lease, 3 endpoints, session affinity")]
    public int PickThreeAffinity() => PickAndLeave(_three, _session);

    [Benchmark(Description = "pool: pick+lease, 3 endpoints, least outstanding")]
    public int PickThreeLeastOutstanding() => PickAndLeave(_three, null);

    [Benchmark(Description = "pool: send through the circuit breaker")]
    public async Task<int> SendThroughBreaker()
    {
        var state = _pool.StateOf(_single[0]);
        var response = await state.SendAsync(_invoker, _request, CancellationToken.None);
        return (int)response.StatusCode;
    }

    [Benchmark(Description = "pool: send without a breaker (reference)")]
    public async Task<int> SendDirect()
    {
        var response = await _invoker.SendAsync(_request, CancellationToken.None);
        return (int)response.StatusCode;
    }

    private int PickAndLeave(UpstreamEndpoint[] endpoints, string? affinity)
    {
        using var lease = _pool.Pick(endpoints, affinity, null, out var endpoint, out _);
        return endpoint.BaseUrl.Length;
    }

    private sealed class Answer : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => Task.FromResult(Ok);
    }
}

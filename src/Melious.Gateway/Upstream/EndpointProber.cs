using Melious.Gateway.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;

namespace Melious.Gateway.Upstream;

/// <summary>
/// The optional active health check (off unless <c>Melious:Pools:ProbeInterval</c> is set): every interval, a
/// <c>GET</c> of <c>ProbePath</c> below each pooled endpoint's base URL, through that endpoint's circuit breaker,
/// so a dead replica is found before a request pays for it and an open circuit's half-open probe need not wait
/// for traffic. Only models with several endpoints are probed; single-URL models keep today's behaviour.
/// </summary>
public sealed partial class EndpointProber(ModelCatalog catalog, UpstreamPool pool, IOptions<GatewayOptions> options, TimeProvider time, ILogger<EndpointProber> logger) : BackgroundService
{
    private readonly PoolOptions _options = options.Value.Pools;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_options.ProbeInterval is not { } interval || interval <= TimeSpan.Zero)
        {
            return;
        }

        using var invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(5),
            AllowAutoRedirect = false,
            UseCookies = false,
            UseProxy = false,
            ActivityHeadersPropagator = System.Diagnostics.DistributedContextPropagator.CreateNoOutputPropagator(),
        });
        using var timer = new PeriodicTimer(interval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var endpoints = catalog.Current.Models.Values.Where(m => m.Endpoints.Count > 1).SelectMany(m => m.Endpoints).DistinctBy(e => e.Key).ToList();
            await Parallel.ForEachAsync(endpoints, stoppingToken, async (endpoint, ct) => await ProbeAsync(invoker, endpoint, ct));
        }
    }

    private async Task ProbeAsync(HttpMessageInvoker invoker, UpstreamEndpoint endpoint, CancellationToken cancellationToken)
    {
        var state = pool.StateOf(endpoint);
        if (!state.Available)
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        using var request = new HttpRequestMessage(HttpMethod.Get, endpoint.BaseUrl + _options.ProbePath);
        UpstreamClient.SetBearer(request, endpoint.ApiKey);
        try
        {
            using var response = await state.ProbeAsync(invoker, request, timeout.Token);
        }
        catch (Exception ex) when (ex is HttpRequestException or BrokenCircuitException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            Log.ProbeFailed(logger, state.Authority, ex.GetType().Name);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Health probe of {Authority} failed ({Error})")]
        public static partial void ProbeFailed(ILogger logger, string authority, string error);
    }
}

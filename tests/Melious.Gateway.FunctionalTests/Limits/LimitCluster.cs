using System.Globalization;
using System.Net;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Limits;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Tokens;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Limits;

/// <summary>
/// Three self-host instances (real Kestrel) sharing one storage account and table prefix, in front of one scripted
/// upstream, reached by a round-robin client: the setting of "limits that hold across instances".
/// <para>
/// The limit window is one hour here instead of one minute (<c>Melious:RateLimits:Window</c>): the arithmetic is the
/// same (a key's per-minute limit is the quota of one aligned window), and the tests neither wait for a minute to pass
/// nor race a window boundary: <see cref="WaitForWindowRoomAsync"/> waits out the rare case of being within a minute
/// of an hour boundary. Heartbeats every second so the instances learn of each other and return idle quota quickly.
/// </para>
/// </summary>
internal sealed class LimitCluster : IAsyncDisposable
{
    public static readonly TimeSpan Window = TimeSpan.FromHours(1);

    private LimitCluster(ScriptedUpstream upstream, TestGateway[] gateways)
    {
        Upstream = upstream;
        Gateways = gateways;
    }

    public ScriptedUpstream Upstream { get; }

    public TestGateway[] Gateways { get; }

    public IEnumerable<KeyRateLimiter> Limiters => Gateways.Select(g => g.Services.GetRequiredService<KeyRateLimiter>());

    /// <summary>Storage requests the limiters of all instances made.</summary>
    public long RoundTrips => Gateways.Sum(g => g.Services.GetRequiredService<QuotaStore>().RoundTrips);

    public static Dictionary<string, string?> Settings() => new()
    {
        ["Melious:RateLimits:Window"] = Window.ToString("c", CultureInfo.InvariantCulture),
        ["Melious:RateLimits:HeartbeatInterval"] = "00:00:01",
        ["Melious:RateLimits:ConcurrencyLeaseTtl"] = "00:00:05",
    };

    /// <param name="anthropicUpstream">The upstream speaks Anthropic Messages (the gateway forwards event for event).</param>
    /// <param name="extra">More settings for every instance (web search's provider, say).</param>
    public static async Task<LimitCluster> StartAsync(string storageConnectionString, Func<UpstreamRequest, HttpContext, Task> handler, int instances = 3, bool anthropicUpstream = false, IReadOnlyDictionary<string, string?>? extra = null)
    {
        var upstream = await ScriptedUpstream.StartAsync(handler);
        var prefix = AzuriteFixture.NewPrefix();
        var gateways = new TestGateway[instances];
        for (var i = 0; i < instances; i++)
        {
            var settings = Settings();
            foreach (var (name, value) in extra ?? new Dictionary<string, string?>())
            {
                settings[name] = value;
            }

            if (anthropicUpstream)
            {
                settings["Melious:Upstream:Protocol"] = "anthropic";
            }

            gateways[i] = await TestGateway.StartAsync(storageConnectionString, anthropicUpstream ? upstream.BaseUrl : upstream.OpenAIBaseUrl, settings, prefix);
        }

        var cluster = new LimitCluster(upstream, gateways);
        Assert.True(await WaitUntilAsync(() => cluster.Limiters.All(l => l.Instances == instances), TimeSpan.FromSeconds(30)),
            "instances seen: " + string.Join(',', cluster.Limiters.Select(l => l.Instances)));
        return cluster;
    }

    /// <summary>Makes sure the next minute of the test stays inside one limit window.</summary>
    public static async Task WaitForWindowRoomAsync()
    {
        var now = DateTimeOffset.UtcNow;
        var end = QuotaMath.WindowEnd(QuotaMath.WindowIndex(now, Window), Window);
        if (end - now < TimeSpan.FromMinutes(1))
        {
            await Task.Delay(end - now + TimeSpan.FromSeconds(1), Ct);
        }
    }

    public HttpClient[] Clients(string key) => Gateways.Select(g => g.Client(key)).ToArray();

    /// <summary>Sends <paramref name="count"/> requests, request i to instance i mod N, <paramref name="parallel"/> at a time.</summary>
    public static async Task<List<Outcome>> RoundRobinAsync(HttpClient[] clients, int count, int parallel, Func<int, string> body)
    {
        var outcomes = new Outcome[count];
        var next = -1;
        var workers = Enumerable.Range(0, parallel).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                using var response = await clients[i % clients.Length].SendAsync(Post(body(i)), Ct);
                var text = await response.Content.ReadAsStringAsync(Ct);
                outcomes[i] = new Outcome(i, i % clients.Length, response.StatusCode, text, Headers(response));
            }
        });
        await Task.WhenAll(workers);
        return [.. outcomes];
    }

    public static Dictionary<string, string> Headers(HttpResponseMessage response) =>
        response.Headers.Concat(response.Content.Headers).ToDictionary(h => h.Key.ToLowerInvariant(), h => string.Join(',', h.Value), StringComparer.Ordinal);

    /// <summary>The gateway's own input estimate for an Anthropic request body, so a scripted upstream can report it exactly.</summary>
    public static long Estimate(string anthropicBody) =>
        TokenEstimator.EstimateRequest(JsonSerializer.Deserialize(anthropicBody, AnthropicJsonContext.Default.MessagesRequest)!);

    public async ValueTask DisposeAsync()
    {
        foreach (var gateway in Gateways)
        {
            await gateway.DisposeAsync();
        }

        await Upstream.DisposeAsync();
    }

    internal sealed record Outcome(int Index, int Instance, HttpStatusCode Status, string Body, Dictionary<string, string> Headers)
    {
        public bool Ok => Status == HttpStatusCode.OK;
    }
}

using System.Net;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Limits;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Limits;

/// <summary>
/// Azurite stopped under three instances: each falls back to limit ÷ last known instance count, says so once in its
/// log, keeps serving (no 500), and shares the limit again once storage is back.
/// </summary>
[Collection("Limits")]
public sealed class StorageDownLimitTests
{
    [Fact]
    public async Task AzuriteStopped_EachInstanceEnforcesAThird_LoggedOnce_NothingCrashes_AndSharingResumes()
    {
        var location = Path.Combine(Path.GetTempPath(), "melious-azurite-limits-" + Guid.NewGuid().ToString("N")[..8]);
        await using var azurite = new AzuriteProcess(location);
        await StartPatientlyAsync(azurite);
        await using var cluster = await LimitCluster.StartAsync(azurite.ConnectionString, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["ok"])));
        var key = await cluster.Gateways[0].CreateKeyAsync(name: "rpm-60-outage", limits: new KeyLimits(RequestsPerMinute: 60));
        var clients = cluster.Clients(key);
        await LimitCluster.WaitForWindowRoomAsync();

        // Before: one request per instance (the key is now cached by each), shared quota.
        var before = await LimitCluster.RoundRobinAsync(clients, 3, parallel: 3, _ => Scenario.Body().ToJsonString());
        Assert.All(before, o => Assert.True(o.Ok, o.Body));
        Assert.All(cluster.Limiters, l => Assert.False(l.Degraded));

        // Azurite saves to disk every 5 s: let it, so the counters survive the kill (the idle slices are returned by
        // then too).
        await Task.Delay(TimeSpan.FromSeconds(8), Ct);
        await azurite.StopAsync();
        Assert.True(await WaitUntilAsync(() => cluster.Limiters.All(l => l.Degraded), TimeSpan.FromSeconds(60)), "the heartbeat did not notice storage was down");
        var during = await LimitCluster.RoundRobinAsync(clients, 90, parallel: 3, i => Scenario.Body(stream: i % 2 == 0).ToJsonString());
        var accepted = during.Count(o => o.Ok);
        var perInstance = Enumerable.Range(0, 3).Select(n => during.Count(o => o.Ok && o.Instance == n)).ToArray();
        Figure($"storage down, rpm 60 over 3 instances: {accepted} of 90 accepted ({string.Join('/', perInstance)} per instance after 1 each before; each allows 60 ÷ 3)");
        Assert.All(during, o => Assert.True(o.Ok || o.Status == HttpStatusCode.TooManyRequests, $"{o.Status}: {o.Body}"));
        Assert.All(perInstance, n => Assert.Equal(19, n));   // 60 ÷ 3, less the one each served before
        Assert.All(cluster.Limiters, l => Assert.True(l.Degraded));
        var refused = during.First(o => !o.Ok);
        Assert.Contains("rate_limit_error", refused.Body, StringComparison.Ordinal);
        Assert.Equal("20", refused.Headers["anthropic-ratelimit-requests-limit"]);

        // Logged once per instance, not per request.
        foreach (var gateway in cluster.Gateways)
        {
            var lines = gateway.Logs.Lines.Where(l => l.Contains("Rate-limit storage unreachable", StringComparison.Ordinal)).ToList();
            Assert.Single(lines);
            Assert.StartsWith("Warning", lines[0], StringComparison.Ordinal);
            Assert.Contains("3 instance(s)", lines[0], StringComparison.Ordinal);
        }

        // Storage back: the heartbeat notices, logs it once, and the shared counter is used again.
        await StartPatientlyAsync(azurite);
        Assert.True(await WaitUntilAsync(() => cluster.Limiters.All(l => !l.Degraded), TimeSpan.FromSeconds(60)), "still degraded after storage came back");
        foreach (var gateway in cluster.Gateways)
        {
            Assert.Single(gateway.Logs.Lines, l => l.Contains("Rate-limit storage reachable again", StringComparison.Ordinal));
        }

        // What the instances served during the outage was charged to the shared counter: the window's 60 are used.
        var after = await LimitCluster.RoundRobinAsync(clients, 6, parallel: 1, _ => Scenario.Body().ToJsonString());
        Assert.All(after, o => Assert.Equal(HttpStatusCode.TooManyRequests, o.Status));
        Assert.All(after, o => Assert.Equal("60", o.Headers["anthropic-ratelimit-requests-limit"]));
    }

    /// <summary>
    /// Node can take longer than AzuriteProcess's 30 s to open its ports on a machine shared by many test runs: try a
    /// few times on the same ports (what is on disk is kept).
    /// </summary>
    private static async Task StartPatientlyAsync(AzuriteProcess azurite)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await azurite.StartAsync();
                return;
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                await azurite.StopAsync();
            }
        }
    }
}

using System.Net;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Limits;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Limits;

/// <summary>
/// Azurite stopped under three instances: each falls back to limit ÷ last known instance count (requests per minute,
/// tokens per minute and concurrency alike), says so once in its log, keeps serving (no 500), and shares the limits
/// again once storage is back.
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
        await AssertEveryLimiterSharesAgain_AndLoggedItOnceAsync(cluster);

        // What the instances served during the outage was charged to the shared counter: the window's 60 are used.
        var after = await LimitCluster.RoundRobinAsync(clients, 6, parallel: 1, _ => Scenario.Body().ToJsonString());
        Assert.All(after, o => Assert.Equal(HttpStatusCode.TooManyRequests, o.Status));
        Assert.All(after, o => Assert.Equal("60", o.Headers["anthropic-ratelimit-requests-limit"]));
    }

    [Fact]
    public async Task AzuriteStopped_TokensAndConcurrency_EachInstanceEnforcesItsShare_NothingCrashes_AndSharingResumes()
    {
        var tpmBody = Scenario.Body(prompt: string.Join(' ', Enumerable.Repeat("a prompt counted against tokens per minute", 20))).ToJsonString();
        var holdBody = Scenario.Body(stream: true, prompt: "hold the stream").ToJsonString();
        var input = LimitCluster.Estimate(tpmBody);
        const int Output = 100;
        var perRequest = input + Output;
        var tpm = 30 * perRequest;   // 10 requests' worth per instance while storage is down
        const int Concurrency = 7;   // 7 ÷ 3 = 2 per instance while storage is down (6 in all), 7 when shared

        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var location = Path.Combine(Path.GetTempPath(), "melious-azurite-limits-" + Guid.NewGuid().ToString("N")[..8]);
        await using var azurite = new AzuriteProcess(location);
        await StartPatientlyAsync(azurite);
        await using var cluster = await LimitCluster.StartAsync(azurite.ConnectionString, async (request, context) =>
        {
            if (!request.BodyText.Contains("hold the stream", StringComparison.Ordinal))
            {
                await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("counted"), Sse.Finish("stop"), Sse.Usage((int)input, Output)]);
                return;
            }

            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("holding ")], done: false);
            await release.Task.WaitAsync(TimeSpan.FromSeconds(90), context.RequestAborted);
            await Sse.WriteAsync(context, [Sse.Finish("stop"), Sse.Usage(10, 2)]);
        });
        var tpmKey = await cluster.Gateways[0].CreateKeyAsync(name: "tpm-outage", limits: new KeyLimits(TokensPerMinute: tpm));
        var concurrencyKey = await cluster.Gateways[0].CreateKeyAsync(name: "concurrency-outage", limits: new KeyLimits(MaxConcurrentStreams: Concurrency));
        var tpmClients = cluster.Clients(tpmKey);
        var concurrencyClients = cluster.Clients(concurrencyKey);
        await LimitCluster.WaitForWindowRoomAsync();

        // Before: one request of each key per instance (each instance now has both keys cached), shared limits.
        Assert.All(await LimitCluster.RoundRobinAsync(tpmClients, 3, parallel: 3, _ => tpmBody), o => Assert.True(o.Ok, o.Body));
        Assert.All(await LimitCluster.RoundRobinAsync(concurrencyClients, 3, parallel: 3, _ => tpmBody), o => Assert.True(o.Ok, o.Body));
        Assert.All(cluster.Limiters, l => Assert.False(l.Degraded));

        // Let Azurite save to disk (every 5 s) and the instances settle, then kill it.
        await Task.Delay(TimeSpan.FromSeconds(8), Ct);
        await azurite.StopAsync();
        Assert.True(await WaitUntilAsync(() => cluster.Limiters.All(l => l.Degraded), TimeSpan.FromSeconds(60)), "the heartbeat did not notice storage was down");

        // Tokens: each instance allows tpm ÷ 3 (10 requests' worth), counting the one request it served before.
        var tokens = await LimitCluster.RoundRobinAsync(tpmClients, 45, parallel: 1, _ => tpmBody);
        var tokensPerInstance = Enumerable.Range(0, 3).Select(n => tokens.Count(o => o.Ok && o.Instance == n)).ToArray();
        Figure($"storage down, tpm {tpm} ({perRequest} tokens a request) over 3 instances: {tokens.Count(o => o.Ok)} of 45 accepted ({string.Join('/', tokensPerInstance)} per instance after 1 each before; each allows tpm ÷ 3)");
        Assert.All(tokens, o => Assert.True(o.Ok || o.Status == HttpStatusCode.TooManyRequests, $"{o.Status}: {o.Body}"));
        Assert.All(tokensPerInstance, n => Assert.Equal(9, n));
        var tokensRefused = tokens.First(o => !o.Ok);
        Assert.Contains("tokens per minute", tokensRefused.Body, StringComparison.Ordinal);
        Assert.Equal((tpm / 3).ToString(System.Globalization.CultureInfo.InvariantCulture), tokensRefused.Headers["anthropic-ratelimit-tokens-limit"]);

        // Concurrency: 18 streams at once, 6 per instance: each instance runs 7 ÷ 3 = 2.
        var held = await Task.WhenAll(Enumerable.Range(0, 18).Select(i =>
            concurrencyClients[i % 3].SendAsync(Post(holdBody), HttpCompletionOption.ResponseHeadersRead, Ct)));
        var runningPerInstance = Enumerable.Range(0, 3).Select(n => held.Where((r, i) => i % 3 == n).Count(r => r.StatusCode == HttpStatusCode.OK)).ToArray();
        Figure($"storage down, concurrency {Concurrency} over 3 instances: 18 streams at once, {runningPerInstance.Sum()} running ({string.Join('/', runningPerInstance)} per instance; each allows {Concurrency} ÷ 3)");
        Assert.All(held, r => Assert.True(r.StatusCode is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, r.StatusCode.ToString()));
        Assert.All(runningPerInstance, n => Assert.Equal(2, n));
        await Http.ErrorAssert.IsErrorAsync(held.First(r => r.StatusCode != HttpStatusCode.OK), HttpStatusCode.TooManyRequests, "rate_limit_error", "concurrent");
        release.TrySetResult();
        foreach (var response in held.Where(r => r.StatusCode == HttpStatusCode.OK))
        {
            Assert.Equal("message_stop", (await SseEvents.ReadAllAsync(response, Ct))[^1].Name);
        }

        foreach (var response in held)
        {
            response.Dispose();
        }

        Assert.True(await WaitUntilAsync(() => cluster.Limiters.All(l => l.ActiveFor(CrossInstanceLimitTests.KeyIdOf(concurrencyKey)) == 0), TimeSpan.FromSeconds(10)));
        Assert.All(cluster.Limiters, l => Assert.True(l.Degraded));

        // One warning per instance for the whole outage, however many requests and limits it touched.
        foreach (var gateway in cluster.Gateways)
        {
            var lines = gateway.Logs.Lines.Where(l => l.Contains("Rate-limit storage unreachable", StringComparison.Ordinal)).ToList();
            Assert.Single(lines);
            Assert.Contains("3 instance(s)", lines[0], StringComparison.Ordinal);
        }

        // Storage back: shared counting resumes.
        await StartPatientlyAsync(azurite);
        await AssertEveryLimiterSharesAgain_AndLoggedItOnceAsync(cluster);

        // Tokens: the 27 requests served during the outage were charged to the shared counter, so with the 3 from
        // before the window's tokens are used up, and the limit in the headers is the key's again.
        var after = await LimitCluster.RoundRobinAsync(tpmClients, 3, parallel: 1, _ => tpmBody);
        Assert.All(after, o => Assert.Equal(HttpStatusCode.TooManyRequests, o.Status));
        Assert.All(after, o => Assert.Equal(tpm.ToString(System.Globalization.CultureInfo.InvariantCulture), o.Headers["anthropic-ratelimit-tokens-limit"]));

        // Concurrency: shared again, 7 at once across the instances (not 2 per instance).
        release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var shared = await Task.WhenAll(Enumerable.Range(0, 18).Select(i =>
            concurrencyClients[i % 3].SendAsync(Post(holdBody), HttpCompletionOption.ResponseHeadersRead, Ct)));
        var sharedRunning = shared.Count(r => r.StatusCode == HttpStatusCode.OK);
        Figure($"storage back, concurrency {Concurrency}: 18 streams at once, {sharedRunning} running");
        Assert.All(shared, r => Assert.True(r.StatusCode is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, r.StatusCode.ToString()));
        Assert.Equal(Concurrency, sharedRunning);
        release.TrySetResult();
        foreach (var response in shared)
        {
            if (response.StatusCode == HttpStatusCode.OK)
            {
                Assert.Equal("message_stop", (await SseEvents.ReadAllAsync(response, Ct))[^1].Name);
            }

            response.Dispose();
        }
    }

    /// <summary>After storage is back: every limiter leaves its degraded mode, and each instance logs that exactly once.</summary>
    private static async Task AssertEveryLimiterSharesAgain_AndLoggedItOnceAsync(LimitCluster cluster)
    {
        Assert.True(await WaitUntilAsync(() => cluster.Limiters.All(l => !l.Degraded), TimeSpan.FromSeconds(60)), "still degraded after storage came back");
        foreach (var gateway in cluster.Gateways)
        {
            // The limiter clears its flag just before it logs: wait for the line, then require exactly one.
            Assert.True(await WaitUntilAsync(() => gateway.Logs.Lines.Any(l => l.Contains("Rate-limit storage reachable again", StringComparison.Ordinal)), TimeSpan.FromSeconds(10)), "storage back, but not logged");
            Assert.Single(gateway.Logs.Lines, l => l.Contains("Rate-limit storage reachable again", StringComparison.Ordinal));
        }
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

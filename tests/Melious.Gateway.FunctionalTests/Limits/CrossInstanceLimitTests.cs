using System.Globalization;
using System.Net;
using System.Text.Json;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Limits;
using Microsoft.Extensions.DependencyInjection;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Limits;

/// <summary>
/// Per-key limits enforced across three instances sharing Azurite: requests per window, tokens per window and
/// concurrent requests, each within +10% of the limit (and, by construction, never under it while requests keep
/// coming). See <see cref="LimitCluster"/> for why the window is an hour in these tests.
/// </summary>
[Collection("Limits")]
public sealed class CrossInstanceLimitTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task RequestsPerMinute_ThreeInstancesRoundRobin_AcceptBetween60And66_WithAnthropicHeaders()
    {
        await using var cluster = await LimitCluster.StartAsync(azurite.ConnectionString, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["ok"])));
        var key = await cluster.Gateways[0].CreateKeyAsync(name: "rpm-60", limits: new KeyLimits(RequestsPerMinute: 60));
        var clients = cluster.Clients(key);
        await LimitCluster.WaitForWindowRoomAsync();

        var tripsBefore = cluster.RoundTrips;
        var outcomes = await LimitCluster.RoundRobinAsync(clients, 150, parallel: 6, i => Scenario.Body(stream: i % 2 == 0).ToJsonString());
        var trips = cluster.RoundTrips - tripsBefore;

        var accepted = outcomes.Count(o => o.Ok);
        Figure($"rpm 60, 3 instances, 150 requests round-robin 6 at a time: {accepted} accepted " +
               $"({string.Join('/', Enumerable.Range(0, 3).Select(n => outcomes.Count(o => o.Ok && o.Instance == n)))} per instance), " +
               $"{outcomes.Count(o => o.Status == HttpStatusCode.TooManyRequests)} refused, {trips} limiter storage requests");
        Assert.InRange(accepted, 60, 66);
        Assert.All(outcomes, o => Assert.True(o.Ok || o.Status == HttpStatusCode.TooManyRequests, $"{o.Status}: {o.Body}"));
        Assert.Equal(accepted, cluster.Upstream.Requests.Count);

        // Every instance took part (the quota is shared, not owned by the first instance).
        Assert.All(Enumerable.Range(0, 3), n => Assert.Contains(outcomes, o => o.Ok && o.Instance == n));

        var refused = outcomes.First(o => !o.Ok);
        using var error = JsonDocument.Parse(refused.Body);
        Assert.Equal("error", error.RootElement.GetProperty("type").GetString());
        Assert.Equal("rate_limit_error", error.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("60 requests per minute", error.RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.True(refused.Headers.ContainsKey("request-id"));
        var retryAfter = int.Parse(refused.Headers["retry-after"], CultureInfo.InvariantCulture);
        var reset = DateTimeOffset.Parse(refused.Headers["anthropic-ratelimit-requests-reset"], CultureInfo.InvariantCulture);
        Assert.Equal(TimeSpan.Zero, reset.Offset);
        Assert.Equal(0, reset.Minute + reset.Second);   // the end of the aligned window
        Assert.InRange(retryAfter, 1, (int)LimitCluster.Window.TotalSeconds);
        Assert.InRange(reset - DateTimeOffset.UtcNow, TimeSpan.FromSeconds(retryAfter - 5), TimeSpan.FromSeconds(retryAfter + 5));
        Assert.Equal("60", refused.Headers["anthropic-ratelimit-requests-limit"]);
        Assert.Equal("0", refused.Headers["anthropic-ratelimit-requests-remaining"]);
        Assert.DoesNotContain(refused.Headers.Keys, h => h.StartsWith("anthropic-ratelimit-tokens", StringComparison.Ordinal));

        // Success responses carry them too; the first one admitted saw most of the quota left. (Not necessarily request
        // 0: on a loaded machine the six workers' requests reach the instances in any order, and a run saw request 0
        // admitted after 21 others.)
        var first = outcomes.Where(o => o.Ok).MaxBy(o => long.Parse(o.Headers["anthropic-ratelimit-requests-remaining"], CultureInfo.InvariantCulture))!;
        Assert.All(outcomes.Where(o => o.Ok), o => Assert.Equal("60", o.Headers["anthropic-ratelimit-requests-limit"]));
        Assert.InRange(long.Parse(first.Headers["anthropic-ratelimit-requests-remaining"], CultureInfo.InvariantCulture), 40, 59);
        Assert.Equal(reset, DateTimeOffset.Parse(first.Headers["anthropic-ratelimit-requests-reset"], CultureInfo.InvariantCulture));

        // No storage round trip per request: slices cover many requests each.
        Assert.True(trips < outcomes.Count, $"{trips} storage requests for {outcomes.Count} requests");
    }

    [Fact]
    public async Task TokensPerMinute_ThreeInstancesRoundRobin_AcceptWithinTenPercent_CountingTheUpstreamsUsage()
    {
        var body = Scenario.Body(prompt: string.Join(' ', Enumerable.Repeat("a fairly ordinary prompt about limits", 40))).ToJsonString();
        var input = LimitCluster.Estimate(body);
        const int Output = 100;
        var perRequest = input + Output;
        var tpm = 20 * perRequest;
        await using var cluster = await LimitCluster.StartAsync(azurite.ConnectionString,
            (_, c) => Sse.WriteAsync(c, [Sse.Role(), Sse.Content("counted"), Sse.Finish("stop"), Sse.Usage((int)input, Output)]));
        var key = await cluster.Gateways[0].CreateKeyAsync(name: "tpm", limits: new KeyLimits(TokensPerMinute: tpm));
        var clients = cluster.Clients(key);
        await LimitCluster.WaitForWindowRoomAsync();

        var outcomes = await LimitCluster.RoundRobinAsync(clients, 60, parallel: 3, _ => body);
        var accepted = outcomes.Count(o => o.Ok);
        Figure($"tpm {tpm} ({input} input + {Output} output tokens a request, so 20 requests), 3 instances, 60 requests 3 at a time: {accepted} accepted");
        // ±10 % of the limit, as issue 13 states it. Below the limit is possible by at most one request per other
        // instance: a slice another instance holds but has not used comes back only on its next heartbeat (docs/limits.md,
        // "Accuracy"); on a loaded machine a run saw 19 of 20.
        Assert.InRange(accepted, 18, 22);
        Assert.All(outcomes, o => Assert.True(o.Ok || o.Status == HttpStatusCode.TooManyRequests, $"{o.Status}: {o.Body}"));

        var refused = outcomes.Last(o => !o.Ok);
        Assert.Contains("rate_limit_error", refused.Body, StringComparison.Ordinal);
        Assert.Contains("tokens per minute", refused.Body, StringComparison.Ordinal);
        Assert.True(refused.Headers.ContainsKey("retry-after"));
        Assert.Equal(tpm.ToString(CultureInfo.InvariantCulture), refused.Headers["anthropic-ratelimit-tokens-limit"]);
        Assert.InRange(long.Parse(refused.Headers["anthropic-ratelimit-tokens-remaining"], CultureInfo.InvariantCulture), 0, input - 1);
        Assert.DoesNotContain(refused.Headers.Keys, h => h.StartsWith("anthropic-ratelimit-requests", StringComparison.Ordinal));

        // The shared counter holds what was used (all debts settled), within one request of the limit.
        var counted = 0L;
        Assert.True(await WaitUntilAsync(async () =>
        {
            counted = await CounterAsync(cluster.Gateways[0], key, KeyRateLimiter.TokensKind) - cluster.Limiters.Sum(l => l.UnspentFor(KeyIdOf(key), KeyRateLimiter.TokensKind));
            return counted == accepted * perRequest;
        }, TimeSpan.FromSeconds(10)), $"counter minus unspent slices {counted}, used {accepted * perRequest}");
    }

    [Fact]
    public async Task Concurrency_ThreeInstances_AtMostTheLimitRunAtOnce_AndSlotsComeBack()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var cluster = await LimitCluster.StartAsync(azurite.ConnectionString, async (request, context) =>
        {
            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("holding ")], done: false);
            await release.Task.WaitAsync(TimeSpan.FromSeconds(60), context.RequestAborted);
            await Sse.WriteAsync(context, [Sse.Finish("stop"), Sse.Usage(10, 2)]);
        });
        var key = await cluster.Gateways[0].CreateKeyAsync(name: "concurrency-6", limits: new KeyLimits(MaxConcurrentStreams: 6));
        var clients = cluster.Clients(key);

        for (var round = 1; round <= 2; round++)
        {
            var responses = await Task.WhenAll(Enumerable.Range(0, 18).Select(i =>
                clients[i % 3].SendAsync(Post(Scenario.Body(stream: true).ToJsonString()), HttpCompletionOption.ResponseHeadersRead, Ct)));
            var running = responses.Count(r => r.StatusCode == HttpStatusCode.OK);
            Figure($"concurrency 6, 3 instances, round {round}: 18 requests at once, {running} running " +
                   $"({string.Join('/', Enumerable.Range(0, 3).Select(n => responses.Where((r, i) => i % 3 == n).Count(r => r.StatusCode == HttpStatusCode.OK)))} per instance)");
            Assert.InRange(running, 6, 6);
            var refused = responses.First(r => r.StatusCode != HttpStatusCode.OK);
            await Http.ErrorAssert.IsErrorAsync(refused, HttpStatusCode.TooManyRequests, "rate_limit_error", "6 concurrent");
            Assert.NotNull(refused.Headers.RetryAfter);

            release.TrySetResult();
            foreach (var response in responses.Where(r => r.StatusCode == HttpStatusCode.OK))
            {
                Assert.Equal("message_stop", (await SseEvents.ReadAllAsync(response, Ct))[^1].Name);
            }

            foreach (var response in responses)
            {
                response.Dispose();
            }

            Assert.True(await WaitUntilAsync(() => cluster.Limiters.All(l => l.ActiveFor(KeyIdOf(key)) == 0), TimeSpan.FromSeconds(10)));

            // Spare slots go back to the shared row within two heartbeats, so every instance can take them again.
            Assert.True(await WaitUntilAsync(async () => await SlotsHeldAsync(cluster.Gateways[0], key) == 0, TimeSpan.FromSeconds(15)),
                "slots still held: " + await SlotsHeldAsync(cluster.Gateways[0], key));
            release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    internal static string KeyIdOf(string key) => ApiKeys.KeyIdFromHash(ApiKeys.Hash(key));

    internal static async Task<long> CounterAsync(TestGateway gateway, string key, string kind)
    {
        var table = StorageFor(gateway).Table(Storage.TableNames.RateLimits);
        var row = $"{kind}-{QuotaMath.WindowIndex(DateTimeOffset.UtcNow, LimitCluster.Window):D20}";
        var entity = await table.GetEntityIfExistsAsync<Azure.Data.Tables.TableEntity>(KeyIdOf(key), row, cancellationToken: Ct);
        return entity.HasValue ? Storage.EntityValues.Long(entity.Value!, "Granted") ?? 0 : 0;
    }

    private static async Task<long> SlotsHeldAsync(TestGateway gateway, string key)
    {
        var table = StorageFor(gateway).Table(Storage.TableNames.RateLimits);
        var entity = await table.GetEntityIfExistsAsync<Azure.Data.Tables.TableEntity>(KeyIdOf(key), "concurrency", cancellationToken: Ct);
        return entity.HasValue ? entity.Value!.Where(p => p.Key.StartsWith('H')).Sum(p => Convert.ToInt64(p.Value, CultureInfo.InvariantCulture)) : 0;
    }
}

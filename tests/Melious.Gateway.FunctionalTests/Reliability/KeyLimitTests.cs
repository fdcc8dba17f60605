using System.Diagnostics;
using System.Net;
using Melious.Admin;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Http;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>Per-key limits stored with the key: requests per minute, concurrent requests, monthly budget, model allow-list.</summary>
public sealed class KeyLimitTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task RequestsPerMinute_OverTheLimit_Gets429WithRetryAfter_AndNoUpstreamCall()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));

        // The window is a calendar minute (KeyLimiter), so the four requests must fall inside one. First warm the path
        // with the scenario's unlimited key (a cold first request on a loaded machine can take seconds); then start
        // early in a minute, and check the clock around the requests: the gateway runs in this process on the same
        // clock, so a minute that did not change from before the first request to after the fourth answer contains all
        // four limit checks. If it changed (a very slow machine), the attempt proves nothing either way and is made
        // again with a fresh key from the start of the next minute; the assertions are the same.
        using (var warm = await s.PostAsync(Scenario.Body()))
        {
            Assert.Equal(HttpStatusCode.OK, warm.StatusCode);
        }

        for (var attempt = 1; ; attempt++)
        {
            if (DateTime.UtcNow.Second >= 40)
            {
                await Task.Delay(TimeSpan.FromSeconds(61 - DateTime.UtcNow.Second), Ct);
            }

            var key = await s.Gateway.CreateKeyAsync(name: "rpm", limits: new KeyLimits(RequestsPerMinute: 3));
            using var client = s.Gateway.Client(key);
            var upstreamBefore = s.Upstream.Requests.Count;
            var minute = DateTime.UtcNow.Ticks / TimeSpan.TicksPerMinute;
            for (var i = 0; i < 3; i++)
            {
                using var ok = await client.SendAsync(Post(Scenario.Body().ToJsonString()), Ct);
                if (ok.StatusCode != HttpStatusCode.OK)
                {
                    // Seen once (2026-12-06, full test command): one of the first three refused with 429. Say what the
                    // gateway saw, so the next time names the cause (per-instance limits while storage failed, say).
                    Assert.Fail(await RefusalReportAsync(ok, i + 1, minute, s.Gateway));
                }
            }

            using var refused = await client.SendAsync(Post(Scenario.Body(stream: true).ToJsonString()), Ct);
            if (DateTime.UtcNow.Ticks / TimeSpan.TicksPerMinute != minute)
            {
                Assert.True(attempt < 2, "two attempts in a row each took more than 20 s for four requests");
                Figure($"rpm=3: attempt {attempt} crossed a minute boundary ({(int)refused.StatusCode} for the 4th); trying again in the next minute");
                continue;
            }

            var json = await ErrorAssert.IsErrorAsync(refused, HttpStatusCode.TooManyRequests, "rate_limit_error", "3 requests per minute");
            var retryAfter = refused.Headers.RetryAfter!.Delta!.Value;
            Figure($"rpm=3: 4th request 429 retry-after {retryAfter.TotalSeconds:0} s: {json.GetProperty("error").GetProperty("message").GetString()}");
            Assert.InRange(retryAfter, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60));
            Assert.Equal(3, s.Upstream.Requests.Count - upstreamBefore);

            var row = await BillingRowAsync(s.Gateway, RequestId(refused));
            AssertOutcome(row, 429, "rate_limit_error", cancelled: false);
            Assert.Equal(0, Long(row, "CostNanos"));
            break;
        }
    }

    [Fact]
    public async Task ConcurrentStreams_OverTheLimit_Gets429WithRetryAfter_AndTheSlotIsReturned()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s = await Scenario.StartAsync(azurite, async (request, context) =>
        {
            await Sse.WriteAsync(context, [Sse.Role(), Sse.Content("holding ")], done: false);
            if (request.BodyText.Contains("hold", StringComparison.Ordinal))
            {
                await release.Task.WaitAsync(TimeSpan.FromSeconds(30), context.RequestAborted);
            }

            await Sse.WriteAsync(context, [Sse.Finish("stop"), Sse.Usage(10, 2)]);
        });
        var key = await s.Gateway.CreateKeyAsync(name: "concurrency", limits: new KeyLimits(MaxConcurrentStreams: 2));
        using var client = s.Gateway.Client(key);

        using var first = await client.SendAsync(Post(Scenario.Body(stream: true, prompt: "hold").ToJsonString()), HttpCompletionOption.ResponseHeadersRead, Ct);
        using var second = await client.SendAsync(Post(Scenario.Body(stream: true, prompt: "hold").ToJsonString()), HttpCompletionOption.ResponseHeadersRead, Ct);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);

        using var third = await client.SendAsync(Post(Scenario.Body(stream: true).ToJsonString()), Ct);
        var json = await ErrorAssert.IsErrorAsync(third, HttpStatusCode.TooManyRequests, "rate_limit_error", "2 concurrent");
        Assert.NotNull(third.Headers.RetryAfter);
        Figure($"concurrency=2: 3rd request 429 retry-after {third.Headers.RetryAfter}: {json.GetProperty("error").GetProperty("message").GetString()}");

        // Finishing the streams returns their slots.
        release.SetResult();
        Assert.Equal("message_stop", (await SseEvents.ReadAllAsync(first, Ct))[^1].Name);
        Assert.Equal("message_stop", (await SseEvents.ReadAllAsync(second, Ct))[^1].Name);
        using var fourth = await client.SendAsync(Post(Scenario.Body().ToJsonString()), Ct);
        Assert.Equal(HttpStatusCode.OK, fourth.StatusCode);

        var row = await BillingRowAsync(s.Gateway, RequestId(third));
        AssertOutcome(row, 429, "rate_limit_error", cancelled: false);
    }

    [Fact]
    public async Task MonthlyBudget_OnceSpent_Gets429WithShouldRetryFalse_WithinTheStalenessBound()
    {
        // 1000 input + 1000 output tokens at 1000 EUR per million each: 2 EUR a request; a 5 EUR budget lasts 3 requests.
        await using var s = await Scenario.StartAsync(azurite, (_, c) => Sse.WriteAsync(c, [Sse.Role(), Sse.Content("paid"), Sse.Finish("stop"), Sse.Usage(1_000, 1_000)]), new Dictionary<string, string?>
        {
            ["Melious:Models:InputPrice"] = "1000",
            ["Melious:Models:OutputPrice"] = "1000",
            ["Melious:Models:Currency"] = "EUR",
            ["Melious:Auth:BudgetCacheTtl"] = "00:00:01",
        });
        // The budget is per UTC calendar month (BudgetGuard): spending just before midnight on the month's last day
        // does not count against the next month's budget. The test spends and is refused within ~30 s, so it must not
        // run across the turn of a month: if less than a minute of this month is left, start in the next one.
        var now = DateTime.UtcNow;
        var monthEnd = new DateTime(now.Year, now.Month, 1, 0, 0, 0, DateTimeKind.Utc).AddMonths(1);
        if (monthEnd - now < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(monthEnd - now + TimeSpan.FromSeconds(1), Ct);
        }

        var key = await s.Gateway.CreateKeyAsync(name: "budget", limits: new KeyLimits(MonthlyBudget: 5m, BudgetCurrency: "EUR"));
        using var client = s.Gateway.Client(key);

        var log = new List<(TimeSpan At, int Status, string RequestId)>();
        var clock = Stopwatch.StartNew();
        TimeSpan? exhaustedAt = null;
        HttpResponseMessage? refusal = null;
        string? refusalText = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && log.Count < 100)
        {
            var response = await client.SendAsync(Post(Scenario.Body().ToJsonString()), Ct);
            log.Add((clock.Elapsed, (int)response.StatusCode, RequestId(response)));
            if (response.StatusCode == HttpStatusCode.OK && log.Count(l => l.Status == 200) == 3)
            {
                exhaustedAt = clock.Elapsed;
            }

            if (response.StatusCode != HttpStatusCode.OK)
            {
                refusal = response;
                refusalText = await response.Content.ReadAsStringAsync(Ct);
                break;
            }

            response.Dispose();
            await Task.Delay(100, Ct);
        }

        Assert.True(refusal is not null, $"never refused: {log.Count} requests over {clock.Elapsed.TotalSeconds:0} s");
        using (refusal)
        {
            var accepted = log.Count(l => l.Status == 200);
            var staleness = log[^1].At - exhaustedAt!.Value;
            Figure($"budget 5 EUR at 2 EUR/request: the budget was spent by request 3 at {exhaustedAt.Value.TotalSeconds:0.0} s; refused from request {log.Count} " +
                   $"at {log[^1].At.TotalSeconds:0.0} s: {accepted} accepted ({(accepted - 3) * 2} EUR over budget), staleness {staleness.TotalMilliseconds:0} ms; {refusalText}");

            await ErrorAssert.IsErrorAsync(refusal, HttpStatusCode.TooManyRequests, "rate_limit_error", "monthly budget");
            Assert.Contains("EUR", refusalText, StringComparison.Ordinal);
            Assert.Equal("false", refusal.Headers.GetValues("x-should-retry").Single());
            Assert.True(staleness < TimeSpan.FromSeconds(10), $"refused only {staleness.TotalSeconds:0.0} s after the budget was spent");
            Assert.Equal(accepted, s.Upstream.Requests.Count);

            // It stays refused.
            using var again = await client.SendAsync(Post(Scenario.Body(stream: true).ToJsonString()), Ct);
            await ErrorAssert.IsErrorAsync(again, HttpStatusCode.TooManyRequests, "rate_limit_error", "monthly budget");

            var row = await BillingRowAsync(s.Gateway, log[^1].RequestId);
            AssertOutcome(row, 429, "rate_limit_error", cancelled: false);
            Assert.Equal(0, Long(row, "CostNanos"));
        }
    }

    [Fact]
    public async Task ModelAllowList_SetWithTheAdminCli_Gets403ForOtherModels()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, c) => Sse.WriteAsync(c, Sse.TextAnswer(["ok"])), new Dictionary<string, string?> { ["Melious:Auth:CacheTtl"] = "00:00:01" });
        using var opus = await s.PostAsync(Scenario.Body(model: "claude-opus-4-8"));
        Assert.Equal(HttpStatusCode.OK, opus.StatusCode);

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Melious:Storage:ConnectionString"] = azurite.ConnectionString,
            ["Melious:Storage:TablePrefix"] = s.Gateway.Prefix,
        }).Build();
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var keyId = ApiKeys.KeyIdFromHash(ApiKeys.Hash(s.Key));
        Assert.Equal(0, await AdminCli.RunAsync(["keys", "set-limits", keyId, "--models", "claude-haiku-*,light-model"], stdout, stderr, configuration));

        // The change applies after the auth cache TTL (1 s here, 30 s by default) plus one key-store round trip.
        await Task.Delay(TimeSpan.FromSeconds(1), Ct);
        var (denied, acceptedMeanwhile) = await s.PostUntilRefusedAsync(() => Scenario.Body(model: "claude-opus-4-8", stream: true), TimeSpan.FromSeconds(10));
        using var deniedScope = denied;
        var json = await ErrorAssert.IsErrorAsync(denied, HttpStatusCode.Forbidden, "permission_error", "claude-opus-4-8");
        using var allowed = await s.PostAsync(Scenario.Body(model: "claude-haiku-4-5-20251001"));
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Figure($"allow-list claude-haiku-*: opus 403 \"{json.GetProperty("error").GetProperty("message").GetString()}\", haiku 200");
        Assert.Equal(2 + acceptedMeanwhile, s.Upstream.Requests.Count);

        var row = await BillingRowAsync(s.Gateway, RequestId(denied));
        AssertOutcome(row, 403, "permission_error", cancelled: false);
        Assert.Equal("claude-opus-4-8", row.GetString("RequestedModel"));
    }

    private static async Task<string> RefusalReportAsync(HttpResponseMessage response, int request, long minute, TestGateway gateway)
    {
        var limit = response.Headers.TryGetValues("anthropic-ratelimit-requests-limit", out var values)
            ? string.Join(',', values)
            : "-";
        var lines = gateway.Logs.Lines.Where(l =>
            l.StartsWith("Warning", StringComparison.Ordinal) || l.StartsWith("Error", StringComparison.Ordinal)
            || l.StartsWith("Critical", StringComparison.Ordinal) || l.Contains("Rate-limit", StringComparison.Ordinal));
        var now = DateTime.UtcNow.Ticks / TimeSpan.TicksPerMinute;
        var body = await response.Content.ReadAsStringAsync(Ct);
        return $"request {request} of 3 answered {(int)response.StatusCode} in minute {minute} (now {now}), requests-limit " +
            $"{limit}, body {body}; gateway warnings and limiter lines: {string.Join(" | ", lines)}";
    }
}

using System.Net;
using System.Text.Json.Nodes;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Polly.CircuitBreaker;

namespace Melious.Gateway.FunctionalTests.Scaling;

/// <summary>Three scripted replicas of one model behind a real gateway: balancing, affinity, failover, circuits.</summary>
public sealed class PoolTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static Task AnswerAsync(HttpContext context) => Sse.WriteAsync(context, Sse.TextAnswer(["ok"]));

    /// <summary>Polls (bounded) until <paramref name="condition"/> holds.</summary>
    private static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(20, Ct);
        }

        return true;
    }

    [Fact]
    public async Task Load_SpreadsByOutstandingRequests()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var kit = await PoolKit.StartAsync(azurite, 3, async (_, _, context) =>
        {
            await release.Task.WaitAsync(context.RequestAborted);
            await AnswerAsync(context);
        }, new Dictionary<string, string?> { ["Melious:Pools:Affinity"] = "none" });

        // Nine requests held open by the replicas, sent all at once: each goes to the replica with the fewest in flight,
        // counting the ones picked an instant before it (the pool chooses and counts under one lock), so they end up
        // three on each replica however their picks interleave.
        var calls = Enumerable.Range(0, 9).Select(_ => Task.Run(() => kit.SendAsync(PoolKit.Body()), Ct)).ToList();
        Assert.True(await EventuallyAsync(() => kit.Counts().Sum() == 9, TimeSpan.FromSeconds(30)), $"received {string.Join("/", kit.Counts())}");

        Assert.Equal([3, 3, 3], kit.Counts());
        Assert.Equal(3, kit.Pool.OutstandingOf(kit.Replicas[0].OpenAIBaseUrl));
        release.SetResult();
        foreach (var call in calls)
        {
            Assert.Equal(HttpStatusCode.OK, (await call).Status);
        }

        Assert.True(await EventuallyAsync(() => kit.Replicas.All(r => kit.Pool.OutstandingOf(r.OpenAIBaseUrl) == 0), TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task AClientLeavingWhileAnUpstreamErrorIsRead_GivesBackTheReplicasInFlightCount()
    {
        // A 400 is the client's mistake: no failover, its body is read and relayed. The client leaves in the middle of
        // that read (the replica sent half of it and stalls): the attempt still ends, and with it the replica's count.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var kit = await PoolKit.StartAsync(azurite, 2, async (_, _, context) =>
        {
            context.Response.StatusCode = 400;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            started.TrySetResult();
            await Task.Delay(Timeout.Infinite, context.RequestAborted);
        }, new Dictionary<string, string?> { ["Melious:Pools:Affinity"] = "none" });

        using var leave = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(PoolKit.Body().ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        var sending = kit.Client.SendAsync(request, leave.Token);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.Equal(1, kit.Replicas.Sum(r => kit.Pool.OutstandingOf(r.OpenAIBaseUrl)));

        leave.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);
        Assert.True(await EventuallyAsync(() => kit.Replicas.All(r => kit.Pool.OutstandingOf(r.OpenAIBaseUrl) == 0), TimeSpan.FromSeconds(10)),
            "in flight: " + string.Join("/", kit.Replicas.Select(r => kit.Pool.OutstandingOf(r.OpenAIBaseUrl))));
    }

    [Fact]
    public async Task WithAffinity_LoadStaysBounded_WhenOneKeySendsMany()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var kit = await PoolKit.StartAsync(azurite, 3, async (_, _, context) =>
        {
            await release.Task.WaitAsync(context.RequestAborted);
            await AnswerAsync(context);
        });

        // No session id: affinity by key, but no replica takes more than 1.25 x its share of what is in flight. Sent
        // one after another (each once the previous reached its replica), as in the test above: the bound is on the
        // choice, and simultaneous picks may see the same counts.
        var calls = new List<Task<(HttpStatusCode Status, string Body)>>();
        for (var i = 1; i <= 12; i++)
        {
            calls.Add(kit.SendAsync(PoolKit.Body()));
            var sent = i;
            Assert.True(await EventuallyAsync(() => kit.Counts().Sum() == sent, TimeSpan.FromSeconds(30)), $"received {string.Join("/", kit.Counts())}");
        }

        Assert.All(kit.Counts(), c => Assert.InRange(c, 1, 5));
        release.SetResult();
        Assert.All(await Task.WhenAll(calls), r => Assert.Equal(HttpStatusCode.OK, r.Status));
    }

    [Fact]
    public async Task AClaudeCodeSession_StaysOnOneReplica_For20Turns()
    {
        await using var kit = await PoolKit.StartAsync(azurite, 3, (_, _, context) => AnswerAsync(context));
        for (var s = 0; s < 3; s++)
        {
            var session = Guid.NewGuid().ToString();
            var before = kit.Counts();
            for (var turn = 0; turn < 20; turn++)
            {
                Assert.Equal(HttpStatusCode.OK, (await kit.SendAsync(PoolKit.Body($"turn {turn}"), session)).Status);
            }

            var served = kit.Counts().Zip(before, (a, b) => a - b).ToArray();
            Assert.Single(served, n => n > 0);
            Assert.Contains(20, served);
        }

        // The session in metadata.user_id (JSON form), without the header, also sticks.
        var counts = kit.Counts();
        var userId = $"{{\"device_id\":\"d\",\"account_uuid\":\"\",\"session_id\":\"{Guid.NewGuid()}\"}}";
        for (var turn = 0; turn < 20; turn++)
        {
            var body = PoolKit.Body($"turn {turn}");
            body["metadata"] = new JsonObject { ["user_id"] = userId };
            Assert.Equal(HttpStatusCode.OK, (await kit.SendAsync(body)).Status);
        }

        Assert.Single(kit.Counts().Zip(counts, (a, b) => a - b), n => n > 0);
    }

    [Fact]
    public async Task KillingTheSessionsReplica_MovesTheSession_WithNoFailedRequest()
    {
        await using var kit = await PoolKit.StartAsync(azurite, 3, (_, _, context) => AnswerAsync(context));
        var session = Guid.NewGuid().ToString();
        for (var turn = 0; turn < 10; turn++)
        {
            Assert.Equal(HttpStatusCode.OK, (await kit.SendAsync(PoolKit.Body($"turn {turn}", stream: turn % 2 == 0), session)).Status);
        }

        var home = Array.FindIndex(kit.Counts(), c => c == 10);
        Assert.True(home >= 0, string.Join("/", kit.Counts()));
        await kit.StopReplicaAsync(home);

        var before = kit.Counts();
        var failed = 0;
        for (var turn = 10; turn < 20; turn++)
        {
            var (status, body) = await kit.SendAsync(PoolKit.Body($"turn {turn}", stream: turn % 2 == 0), session);
            if (status != HttpStatusCode.OK || body.Contains("event: error", StringComparison.Ordinal))
            {
                failed++;
            }
        }

        Assert.Equal(0, failed);
        var moved = kit.Counts().Zip(before, (a, b) => a - b).ToArray();
        Assert.Equal(0, moved[home]);

        // The session moved as a whole: the 10 remaining turns went to one surviving replica.
        Assert.Contains(10, moved);
    }

    [Fact]
    public async Task AReplicaAnswering503_IsSkippedOnceItsCircuitOpens_AndTriedAgainAfterTheCoolDown()
    {
        var broken = true;
        await using var kit = await PoolKit.StartAsync(azurite, 3, (index, _, context) =>
            index == 1 && Volatile.Read(ref broken) ? Sse.ErrorAsync(context, 503, "replica overloaded") : AnswerAsync(context),
            new Dictionary<string, string?>
            {
                ["Melious:Pools:Affinity"] = "none",
                ["Melious:Pools:BreakDuration"] = "00:00:01",
            });
        var sick = kit.Replicas[1].OpenAIBaseUrl;

        // Until the circuit opens, the 503s fail over to the healthy replicas: the client never sees them.
        var sent = 0;
        while (kit.Pool.CircuitOf(sick) != CircuitState.Open && sent < 200)
        {
            Assert.Equal(HttpStatusCode.OK, (await kit.SendAsync(PoolKit.Body())).Status);
            sent++;
        }

        Assert.Equal(CircuitState.Open, kit.Pool.CircuitOf(sick));
        Assert.Contains(kit.Gateway.Logs.Lines, l => l.Contains("circuit opened", StringComparison.Ordinal));

        // While open (1 s cool-down, far longer than these requests on any machine: at least one is checked within it)
        // no request reaches it.
        var seen = kit.Replicas[1].Requests.Count;
        Assert.Equal(HttpStatusCode.OK, (await kit.SendAsync(PoolKit.Body())).Status);
        if (kit.Pool.CircuitOf(sick) == CircuitState.Open)
        {
            Assert.Equal(seen, kit.Replicas[1].Requests.Count);
        }

        // Healthy again: after the cool-down a request probes it, and the circuit closes.
        Volatile.Write(ref broken, false);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (kit.Pool.CircuitOf(sick) != CircuitState.Closed && DateTime.UtcNow < deadline)
        {
            Assert.Equal(HttpStatusCode.OK, (await kit.SendAsync(PoolKit.Body())).Status);
            await Task.Delay(50, Ct);
        }

        Assert.Equal(CircuitState.Closed, kit.Pool.CircuitOf(sick));
        Assert.True(kit.Replicas[1].Requests.Count > seen);
    }

    [Fact]
    public async Task AddingAFourthReplica_MovesAboutAQuarterOfTheSessions()
    {
        await using var kit = await PoolKit.StartAsync(azurite, 3, (_, _, context) => AnswerAsync(context));
        // Each session moves to the new replica with probability 1/4 (rendezvous hashing): with 200 sessions that is
        // 50 ± 6.1, so the bounds below sit ~4 standard deviations out (40 sessions failed about one run in 300).
        var sessions = Enumerable.Range(0, 200).Select(_ => Guid.NewGuid().ToString()).ToList();
        var homes = new Dictionary<string, int>();
        foreach (var session in sessions)
        {
            homes[session] = await ServedByAsync(kit, session);
        }

        await kit.AddReplicaAsync(await ScriptedUpstream.StartAsync((_, context) => AnswerAsync(context)));
        var moved = 0;
        foreach (var session in sessions)
        {
            var now = await ServedByAsync(kit, session);
            if (now != homes[session])
            {
                moved++;
                Assert.Equal(3, now);
            }
        }

        TestContext.Current.TestOutputHelper?.WriteLine($"a 4th replica took {moved} of {sessions.Count} sessions");
        Assert.InRange(moved, 25, 75);
    }

    [Fact]
    public async Task TheActiveProbe_OpensADeadReplicasCircuit_WithoutAnyClientRequest()
    {
        await using var kit = await PoolKit.StartAsync(azurite, 3, (index, request, context) =>
            index == 2 && request.Path.EndsWith("/models", StringComparison.Ordinal) ? Sse.ErrorAsync(context, 500, "sick") : AnswerAsync(context),
            new Dictionary<string, string?> { ["Melious:Pools:ProbeInterval"] = "00:00:00.200" });
        Assert.True(await EventuallyAsync(() => kit.Pool.CircuitOf(kit.Replicas[2].OpenAIBaseUrl) == CircuitState.Open, TimeSpan.FromSeconds(30)));
        Assert.All(kit.Replicas.SelectMany(r => r.Requests), r => Assert.Equal("GET", r.Method));
        Assert.Equal(CircuitState.Closed, kit.Pool.CircuitOf(kit.Replicas[0].OpenAIBaseUrl));
    }

    /// <summary>Sends one request of <paramref name="session"/> and returns the replica that served it.</summary>
    private static async Task<int> ServedByAsync(PoolKit kit, string session)
    {
        var before = kit.Counts();
        Assert.Equal(HttpStatusCode.OK, (await kit.SendAsync(PoolKit.Body(), session)).Status);
        var after = kit.Counts();
        return Enumerable.Range(0, after.Length).Single(i => after[i] > (i < before.Length ? before[i] : 0));
    }
}

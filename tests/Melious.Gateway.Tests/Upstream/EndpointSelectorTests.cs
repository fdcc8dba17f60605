using Melious.Gateway.Routing;
using Melious.Gateway.Upstream;

namespace Melious.Gateway.Tests.Upstream;

/// <summary>Endpoint choice: rendezvous affinity, bounded loads, weighted least outstanding.</summary>
public sealed class EndpointSelectorTests
{
    private static EndpointCandidate[] Pool(int n, params int[] outstanding) =>
        Enumerable.Range(0, n).Select(i => new EndpointCandidate($"http://10.0.0.{i + 1}:8000/v1", 1, outstanding.Length > i ? outstanding[i] : 0)).ToArray();

    private static IEnumerable<string> Sessions(int n) => Enumerable.Range(0, n).Select(i => Guid.NewGuid().ToString());

    [Fact]
    public void ASession_AlwaysGetsTheSameEndpoint_WhileIdle()
    {
        var pool = Pool(3);
        foreach (var session in Sessions(50))
        {
            var first = EndpointSelector.Choose(pool, session, 1.25);
            for (var turn = 0; turn < 20; turn++)
            {
                Assert.Equal(first, EndpointSelector.Choose(pool, session, 1.25));
            }
        }
    }

    [Fact]
    public void Sessions_SpreadEvenly_OverEqualEndpoints()
    {
        var pool = Pool(3);
        var counts = new int[3];
        foreach (var session in Sessions(3000))
        {
            counts[EndpointSelector.Preferred(pool, session)]++;
        }

        Assert.All(counts, c => Assert.InRange(c, 850, 1150));
    }

    [Fact]
    public void AddingAFourthReplica_MovesAboutAQuarterOfTheSessions_AllToTheNewOne()
    {
        var three = Pool(3);
        var four = Pool(4);
        var sessions = Sessions(4000).ToList();
        var moved = 0;
        foreach (var session in sessions)
        {
            var before = three[EndpointSelector.Preferred(three, session)].Key;
            var after = four[EndpointSelector.Preferred(four, session)].Key;
            if (before != after)
            {
                moved++;
                Assert.Equal(four[3].Key, after);
            }
        }

        var share = moved / (double)sessions.Count;
        TestContext.Current.SendDiagnosticMessage($"adding a 4th replica moved {share:P1} of the sessions");
        Assert.InRange(share, 0.21, 0.29);
    }

    [Fact]
    public void RemovingAReplica_MovesOnlyItsSessions()
    {
        var four = Pool(4);
        var three = four[..3];
        foreach (var session in Sessions(2000))
        {
            var before = four[EndpointSelector.Preferred(four, session)].Key;
            var after = three[EndpointSelector.Preferred(three, session)].Key;
            if (before != four[3].Key)
            {
                Assert.Equal(before, after);
            }
        }
    }

    [Fact]
    public void Weights_ShiftTheShareOfSessions()
    {
        var pool = new[] { new EndpointCandidate("http://a/v1", 2, 0), new EndpointCandidate("http://b/v1", 1, 0), new EndpointCandidate("http://c/v1", 1, 0) };
        var counts = new int[3];
        foreach (var session in Sessions(4000))
        {
            counts[EndpointSelector.Preferred(pool, session)]++;
        }

        Assert.InRange(counts[0] / 4000.0, 0.45, 0.55);
    }

    [Fact]
    public void AnOverloadedAffinityEndpoint_IsPassedOver_ForTheNextInRank()
    {
        var session = "session-under-load";
        var idle = Pool(3);
        var preferred = EndpointSelector.Preferred(idle, session);
        var outstanding = new int[3];
        outstanding[preferred] = 10;
        var loaded = Pool(3, outstanding);
        Assert.NotEqual(preferred, EndpointSelector.Choose(loaded, session, 1.25));
    }

    [Fact]
    public void WithoutAffinity_TheLeastOutstandingWeightedEndpointWins()
    {
        Assert.Equal(1, EndpointSelector.Choose(Pool(3, 4, 1, 2), null, 1.25));
        var weighted = new[] { new EndpointCandidate("a", 4, 3), new EndpointCandidate("b", 1, 1) };
        Assert.Equal(0, EndpointSelector.Choose(weighted, null, 1.25));
    }

    [Fact]
    public void WithoutAffinity_IdleEndpointsShareTheTraffic()
    {
        var counts = new int[3];
        for (var i = 0; i < 3000; i++)
        {
            counts[EndpointSelector.Choose(Pool(3), null, 1.25)]++;
        }

        Assert.All(counts, c => Assert.InRange(c, 800, 1200));
    }

    [Theory]
    [InlineData(null, FallbackTriggers.All)]
    [InlineData("all", FallbackTriggers.All)]
    [InlineData("rate_limit,context_overflow", FallbackTriggers.RateLimit | FallbackTriggers.ContextOverflow)]
    [InlineData(" overloaded , bogus", FallbackTriggers.Overloaded)]
    public void FallbackTriggers_Parse(string? text, FallbackTriggers expected) => Assert.Equal(expected, FallbackTriggerNames.Parse(text));

    [Theory]
    [InlineData(429, "rate_limit_error", "slow down", FallbackTriggers.RateLimit)]
    [InlineData(503, "overloaded_error", "busy", FallbackTriggers.Overloaded)]
    [InlineData(529, "overloaded_error", "busy", FallbackTriggers.Overloaded)]
    [InlineData(500, "api_error", "boom", FallbackTriggers.ServerError)]
    [InlineData(400, "invalid_request_error", "prompt is too long: 9000 tokens > 8192 maximum", FallbackTriggers.ContextOverflow)]
    [InlineData(400, "invalid_request_error", "bad tool schema", FallbackTriggers.None)]
    [InlineData(404, "not_found_error", "no such model", FallbackTriggers.None)]
    public void UpstreamFailures_MapToFallbackTriggers(int status, string type, string message, FallbackTriggers expected) =>
        Assert.Equal(expected, UpstreamClient.TriggerFor(status, new GatewayError(status, type, message)));
}

using Melious.Gateway.Limits;

namespace Melious.Gateway.Tests.Limits;

/// <summary>The slice-leasing arithmetic of the cross-instance limiter (docs/limits.md).</summary>
public sealed class QuotaMathTests
{
    [Fact]
    public void Windows_AreAlignedToMultiplesOfTheirLength_SoMinuteWindowsStartOnTheMinute()
    {
        var window = TimeSpan.FromMinutes(1);
        var at = new DateTimeOffset(2026, 12, 5, 7, 14, 59, 999, TimeSpan.Zero);
        var index = QuotaMath.WindowIndex(at, window);
        Assert.Equal(new DateTimeOffset(2026, 12, 5, 7, 14, 0, TimeSpan.Zero), QuotaMath.WindowStart(index, window));
        Assert.Equal(new DateTimeOffset(2026, 12, 5, 7, 15, 0, TimeSpan.Zero), QuotaMath.WindowEnd(index, window));
        Assert.Equal(index + 1, QuotaMath.WindowIndex(at.AddMilliseconds(1), window));

        // A different offset is the same instant, hence the same window.
        Assert.Equal(index, QuotaMath.WindowIndex(at.ToOffset(TimeSpan.FromHours(5.5)), window));
    }

    [Theory]
    [InlineData(60, 0, 3, 10)]     // half of 60 shared by 3 instances
    [InlineData(60, 50, 3, 2)]     // slices shrink as the counter fills: ceil(10 / 6)
    [InlineData(60, 59, 3, 1)]
    [InlineData(60, 60, 3, 0)]     // exhausted
    [InlineData(60, 70, 3, 0)]     // over (tokens charged after the fact)
    [InlineData(60, 0, 1, 30)]
    [InlineData(60, 0, 0, 30)]     // unknown instance count counts as one
    [InlineData(1, 0, 3, 1)]
    public void Slice_IsHalfTheRemainderPerInstance_AtLeastOne(long limit, long granted, int instances, long expected) =>
        Assert.Equal(expected, QuotaMath.Slice(limit, granted, instances));

    [Theory]
    [InlineData(60, 0, 1, 3, 0, 10)]          // a request takes a whole slice
    [InlineData(3000, 0, 900, 3, 0, 900)]     // a big request takes what it needs when that is more than a slice
    [InlineData(60, 58, 1, 3, 0, 1)]
    [InlineData(60, 60, 1, 3, 0, 0)]          // nothing left
    [InlineData(3000, 2900, 200, 3, 0, 0)]    // not enough for this request: take nothing rather than strand 100
    [InlineData(3000, 2900, 200, 3, 50, 50)]  // ...but tokens already spent are always charged
    [InlineData(3000, 3000, 0, 3, 70, 70)]    // even beyond the limit
    [InlineData(0, 120, 70, 3, 70, 70)]       // settling a debt: exactly the debt
    public void Take_SliceOrWhatTheRequestNeeds_NeverBeyondTheLimitExceptSpentTokens(long limit, long granted, long want, int instances, long mustTake, long expected) =>
        Assert.Equal(expected, QuotaMath.Take(limit, granted, want, instances, mustTake));

    [Fact]
    public void ThreeInstancesRoundRobin_AcceptExactlyTheLimit_AndTheCounterNeverExceedsIt()
    {
        // A model of three instances leasing from one counter, requests dealt round-robin; denied instances give their
        // remainder back at once (as the limiter does), so nothing is stranded.
        const long Limit = 60;
        long granted = 0;
        var available = new long[3];
        var accepted = 0;
        var leases = 0;
        for (var i = 0; i < 200; i++)
        {
            var me = i % 3;
            if (available[me] < 1)
            {
                var take = QuotaMath.Take(Limit, granted, 1 - available[me], 3);
                leases += take > 0 ? 1 : 0;
                granted += take;
                available[me] += take;
                Assert.InRange(granted, 0, Limit);
                if (available[me] < 1)
                {
                    granted = QuotaMath.Return(granted, available[me]);
                    available[me] = 0;
                    continue;
                }
            }

            available[me]--;
            accepted++;
        }

        Assert.Equal(Limit, accepted);
        // Slices of 10, 9, 7, ... then 1 near the end: far fewer storage writes than requests.
        Assert.True(leases < 30, $"{leases} leases for 60 requests");
    }

    [Fact]
    public void Tokens_UnequalRequestsOnThreeInstances_StayWithinOneRequestOfTheLimit()
    {
        // Requests of 90..400 tokens, estimated exactly; the counter holds what was leased and is never exceeded, and
        // what is refused at the end is less than the largest request per instance.
        const long Limit = 10_000;
        long granted = 0;
        var available = new long[3];
        long used = 0;
        var random = new Random(13);
        for (var i = 0; i < 500; i++)
        {
            var me = i % 3;
            long need = random.Next(90, 400);
            if (available[me] < need)
            {
                var take = QuotaMath.Take(Limit, granted, need - available[me], 3);
                granted += take;
                available[me] += take;
                if (available[me] < need)
                {
                    granted = QuotaMath.Return(granted, available[me]);
                    available[me] = 0;
                    continue;
                }
            }

            available[me] -= need;
            used += need;
            Assert.True(granted <= Limit);
        }

        Assert.InRange(used, Limit - 400, Limit);
    }

    [Theory]
    [InlineData(60, 3, 20)]
    [InlineData(60, 1, 60)]
    [InlineData(2, 3, 1)]      // never below 1
    [InlineData(100, 0, 100)]
    [InlineData(65, 3, 21)]    // rounded down: the sum stays within the limit
    public void PerInstance_IsTheLimitDividedByTheLastKnownInstanceCount(long limit, int instances, long expected) =>
        Assert.Equal(expected, QuotaMath.PerInstance(limit, instances));

    [Theory]
    [InlineData(6, 0, 0, 1, 1)]
    [InlineData(6, 5, 0, 1, 1)]
    [InlineData(6, 6, 0, 1, 0)]   // the others hold all
    [InlineData(6, 4, 2, 1, 2)]   // mine plus theirs is the limit already
    [InlineData(6, 2, 1, 5, 4)]   // asks for 5, 3 are free
    [InlineData(6, 7, 0, 1, 0)]   // over (an expired lease not yet pruned elsewhere): nothing
    public void SlotsAfter_NeverLetsTheSumExceedTheLimit(int limit, int others, int mine, int more, int expected) =>
        Assert.Equal(expected, QuotaMath.SlotsAfter(limit, others, mine, more));

    [Fact]
    public void Return_NeverGoesBelowZero()
    {
        Assert.Equal(50, QuotaMath.Return(60, 10));
        Assert.Equal(0, QuotaMath.Return(5, 10));
        Assert.Equal(60, QuotaMath.Return(60, -3));
    }

    [Fact]
    public void SecondsUntil_RoundsUp_AtLeastOne()
    {
        var now = new DateTimeOffset(2026, 12, 5, 7, 0, 0, TimeSpan.Zero);
        Assert.Equal(1, QuotaMath.SecondsUntil(now, now));
        Assert.Equal(1, QuotaMath.SecondsUntil(now, now.AddMilliseconds(10)));
        Assert.Equal(60, QuotaMath.SecondsUntil(now, now.AddSeconds(59.5)));
    }
}

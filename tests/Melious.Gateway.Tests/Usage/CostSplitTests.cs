using System.Globalization;
using Azure.Data.Tables;
using Melious.Gateway.Reporting;
using Melious.Gateway.Routing;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Tests.Usage;

/// <summary>
/// The split of a request's cost into parts (token types, web search) and the cost report's lines: parts always add up
/// to the stored total to the nano-unit, with the rounding allocated by the documented rule (largest remainder at
/// pricing, the rest on the largest part for older events, the unattributed rest as one unsplit line).
/// </summary>
public sealed class CostSplitTests
{
    [Fact]
    public void Allocate_WorkedExample_NeedsNoRounding()
    {
        var cost = Pricing.Compute(new PriceCard(0.60m, 0.90m, 0.06m, 0.75m, "USD", null), new TokenUsage(800, 200, 0, 500, 0));
        Assert.Equal(new CostParts(480_000, 450_000, 12_000, 0, 0), CostSplit.Allocate(cost));
    }

    [Fact]
    public void Allocate_FourHalfNanos_TotalTwo_GoesToTheFirstTwoInTheTieOrder()
    {
        // Each part is 0.5 nano-units: rounded one by one (half to even) they would be 0 + 0 + 0 + 0 = 0, not the total 2.
        var cost = new CostBreakdown(0.0000000005m, 0.0000000005m, 0.0000000005m, 0.0000000005m, "USD", null);
        Assert.Equal(2, cost.TotalNanos);
        Assert.Equal(new CostParts(1, 1, 0, 0, 0), CostSplit.Allocate(cost));
    }

    [Fact]
    public void Allocate_ThreePointSixNanos_TotalTwo_NotThree()
    {
        // 0.6 + 0.6 + 0.6 = 1.8 → 2 nano-units; each rounded alone would give 3.
        var cost = new CostBreakdown(0.0000000006m, 0.0000000006m, 0.0000000006m, 0, "EUR", null);
        Assert.Equal(2, cost.TotalNanos);
        Assert.Equal(new CostParts(1, 1, 0, 0, 0), CostSplit.Allocate(cost));
    }

    [Fact]
    public void Allocate_LargestRemainderWins_OverTieOrder()
    {
        // input 1.2, output 2.3, cache read 0.9, web search 0.4 → total 4.8 → 5; floors 1 + 2 + 0 + 0 = 3; the two
        // missing units go to the largest remainders: cache read (0.9) and web search (0.4) beat input (0.2) and output (0.3).
        var cost = new CostBreakdown(0.0000000012m, 0.0000000023m, 0.0000000009m, 0, "USD", null, WebSearch: 0.0000000004m);
        Assert.Equal(5, cost.TotalNanos);
        Assert.Equal(new CostParts(1, 2, 1, 0, 1), CostSplit.Allocate(cost));
    }

    [Fact]
    public void Allocate_WebSearch_IsItsOwnPart()
    {
        var cost = Pricing.Compute(new PriceCard(3m, 15m, 0.3m, 3.75m, "USD", null), new TokenUsage(1000, 0, 0, 100, 0)) with { WebSearch = 0.01m };
        var parts = CostSplit.Allocate(cost);
        Assert.Equal(new CostParts(3_000_000, 1_500_000, 0, 0, 10_000_000), parts);
        Assert.Equal(cost.TotalNanos, parts.Total);
    }

    [Fact]
    public void Allocate_RandomPrices_PartsAlwaysSumToTheTotal_AndStayWithinOneNanoOfExact()
    {
        var random = new Random(20261205);
        for (var i = 0; i < 20_000; i++)
        {
            decimal Price() => random.Next(0, 5_000_000) / 1_000_000m * (random.Next(3) == 0 ? 0.0001m : 1m);
            var prices = new PriceCard(Price(), Price(), Price(), Price(), "USD", null);
            var cost = Pricing.Compute(prices, new TokenUsage(random.Next(0, 200_000), random.Next(0, 100_000), random.Next(0, 10_000), random.Next(0, 20_000), 0))
                with { WebSearch = random.Next(0, 4) * Price() / 100m };
            var parts = CostSplit.Allocate(cost);
            Assert.Equal(cost.TotalNanos, parts.Total);
            Assert.Equal(0, parts.Unsplit);
            AssertWithinOneNano(cost.Input, parts.Input);
            AssertWithinOneNano(cost.Output, parts.Output);
            AssertWithinOneNano(cost.CacheRead, parts.CacheRead);
            AssertWithinOneNano(cost.CacheWrite, parts.CacheWrite);
            AssertWithinOneNano(cost.WebSearch, parts.WebSearch);
        }
    }

    [Fact]
    public void FromEvent_OlderEventRoundedPartByPart_GetsTheDifferenceOnItsLargestPart()
    {
        // An older gateway rounded each part alone: 0 + 0 + 0 + 0 for a total of 2, or 1 + 1 + 1 for a total of 2.
        Assert.Equal(new CostParts(0, 1001, 0, 0, 0), CostSplit.FromEvent(Event(cost: 1001, input: 0, output: 1000, cacheRead: 0)));
        Assert.Equal(new CostParts(0, 1, 1, 0, 0), CostSplit.FromEvent(Event(cost: 2, input: 1, output: 1, cacheRead: 1)));   // ties: the first largest part
        Assert.Equal(new CostParts(1, 1, 1, 0, 0), CostSplit.FromEvent(Event(cost: 3, input: 1, output: 1, cacheRead: 1)));
    }

    [Fact]
    public void FromEvent_WithoutParts_IsUnsplit()
    {
        Assert.Equal(new CostParts(0, 0, 0, 0, 0, 12_345), CostSplit.FromEvent(Event(cost: 12_345)));
        Assert.Equal(new CostParts(0, 0, 0, 0, 0, 10), CostSplit.FromEvent(Event(cost: 10, input: -1, output: 11)));
        Assert.Equal(new CostParts(0, 0, 0, 0, 0, 0), CostSplit.FromEvent(Event(cost: 0)));
    }

    [Fact]
    public void Counters_SumParts_AndAnOldRollupRowReadsAsUnsplit()
    {
        var a = UsageCounters.From(Event(cost: 1_500, input: 1_000, output: 500, webSearch: 0) with { WebSearchRequests = 0 });
        var b = UsageCounters.From(Event(cost: 10_000_700, input: 300, output: 400, webSearch: 10_000_000) with { WebSearchRequests = 1 });
        var old = UsageCounters.From(Event(cost: 999));
        var sum = a + b + old;
        Assert.Equal(new CostParts(1_300, 900, 0, 0, 10_000_000, 999), sum.CostParts);
        Assert.Equal(sum.CostNanos, sum.CostParts.Total);
        Assert.Equal(1, sum.WebSearchRequests);

        // Round trip through a table entity, and a row written before the split columns existed.
        var entity = new TableEntity("p", "r");
        sum.WriteTo(entity);
        Assert.Equal(sum, UsageCounters.ReadFrom(entity));
        foreach (var column in new[] { "InputCostNanos", "OutputCostNanos", "CacheReadCostNanos", "CacheWriteCostNanos", "WebSearchCostNanos", "WebSearchRequests" })
        {
            entity.Remove(column);
        }

        var before = UsageCounters.ReadFrom(entity);
        Assert.Equal(new CostParts(0, 0, 0, 0, 0, sum.CostNanos), before.CostParts);
    }

    [Fact]
    public void CostLines_Golden_OneLinePerTokenTypeAndWebSearch_ZeroLinesLeftOut()
    {
        var totals = new UsageCounters
        {
            CostNanos = 1_224_567_891,
            InputCostNanos = 600_000_000,
            CacheWriteCostNanos = 0,
            CacheReadCostNanos = 34_567_891,
            OutputCostNanos = 500_000_000,
            WebSearchCostNanos = 90_000_000,
            WebSearchRequests = 9,
        };

        var lines = CostLines.Split("glm-4.6", totals).Select(l => $"{l.CostType}|{l.TokenType}|{l.Description}|{UsageApiEndpoint.LowestUnits(l.Nanos, "USD")}");
        Assert.Equal(
            [
                "tokens|uncached_input_tokens|glm-4.6 Usage - Input Tokens|60",
                "tokens|cache_read_input_tokens|glm-4.6 Usage - Cache Read Input Tokens|3.4567891",
                "tokens|output_tokens|glm-4.6 Usage - Output Tokens|50",
                "web_search||glm-4.6 Web Search|9",
            ],
            lines);
        Assert.Equal("122.4567891", UsageApiEndpoint.LowestUnits(totals.CostNanos, "USD"));
    }

    [Fact]
    public void CostLines_UnsplitRest_IsOneTokensLineWithoutTokenType()
    {
        var lines = CostLines.Split("m", new UsageCounters { CostNanos = 700, OutputCostNanos = 500 });
        Assert.Equal([new CostLine("tokens", "output_tokens", "m Usage - Output Tokens", 500), new CostLine("tokens", null, "m Usage", 200)], lines);

        Assert.Equal([new CostLine("tokens", null, "m Usage", 0)], CostLines.Split("m", UsageCounters.Zero));
        Assert.Equal([new CostLine("tokens", null, "m Usage", 42)], CostLines.Split("m", new UsageCounters { CostNanos = 42 }));
    }

    [Fact]
    public void CostLines_AmountsInLowestUnits_AddUpExactlyToTheModelTotal()
    {
        var random = new Random(7);
        foreach (var currency in new[] { "USD", "EUR", "JPY", "KWD" })
        {
            for (var i = 0; i < 2_000; i++)
            {
                var events = Enumerable.Range(0, random.Next(1, 20)).Select(_ =>
                {
                    var cost = new CostBreakdown(
                        random.Next(0, 1_000_000) / 1_000_000_000_000m,
                        random.Next(0, 1_000_000) / 1_000_000_000_000m,
                        random.Next(0, 1_000_000) / 1_000_000_000_000m,
                        random.Next(0, 1_000_000) / 1_000_000_000_000m,
                        currency,
                        null,
                        random.Next(0, 3) / 100m);
                    var parts = CostSplit.Allocate(cost);
                    return random.Next(10) == 0
                        ? Event(cost.TotalNanos)   // an event from before the split
                        : Event(cost.TotalNanos, parts.Input, parts.Output, parts.CacheRead, parts.CacheWrite, parts.WebSearch);
                }).ToList();
                var totals = events.Select(UsageCounters.From).Aggregate(UsageCounters.Zero, (s, c) => s + c);
                var lines = CostLines.Split("m", totals);
                Assert.Equal(totals.CostNanos, lines.Sum(l => l.Nanos));
                Assert.Equal(
                    decimal.Parse(UsageApiEndpoint.LowestUnits(totals.CostNanos, currency), CultureInfo.InvariantCulture),
                    lines.Sum(l => decimal.Parse(UsageApiEndpoint.LowestUnits(l.Nanos, currency), CultureInfo.InvariantCulture)));
            }
        }
    }

    [Theory]
    [InlineData(1_000, 500, 300, 100, 50, 50, 200, null, false, 2)]   // split, web search
    [InlineData(1_000, 0, 0, 0, 0, 0, 502, null, false, 0)]           // an older row without the split, an error status
    [InlineData(999, 600, -1, 0, 0, 0, 200, "overloaded_error", true, 0)] // a negative part: all unsplit; error type, cancel
    public void A_billing_row_read_back_is_counted_as_its_event_was(long cost, long input, long output, long cacheRead, long cacheWrite, long webSearch, int status, string? errorType, bool cancelled, int searches)
    {
        var e = Event(cost, input, output, cacheRead, cacheWrite, webSearch) with
        {
            InputTokens = 11, CacheReadTokens = 12, CacheWriteTokens = 13, OutputTokens = 14, ReasoningTokens = 5,
            Status = status, ErrorType = errorType, Cancelled = cancelled, WebSearchRequests = searches, EnergyWh = 1.5,
        };

        var back = UsageRows.BillingEvent(UsageRows.Billing(e));

        // Everything the billing row carries is counted the same; energy is in the energy row.
        Assert.Equal(UsageCounters.From(e) with { EnergyMicroWh = 0, EnergyMinMicroWh = 0, EnergyMaxMicroWh = 0, UnknownEnergyRequests = 1 }, UsageCounters.From(back));
        Assert.Equal((e.RequestId, e.Account, e.UpstreamModel, e.Currency, e.StartedAt), (back.RequestId, back.Account, back.UpstreamModel, back.Currency, back.StartedAt));
    }

    private static void AssertWithinOneNano(decimal exact, long nanos)
    {
        var difference = Math.Abs(exact * 1_000_000_000m - nanos);
        Assert.True(difference < 1m, $"{nanos} nano-units for {exact}: off by {difference}");
    }

    private static UsageEvent Event(long cost, long input = 0, long output = 0, long cacheRead = 0, long cacheWrite = 0, long webSearch = 0) => new()
    {
        RequestId = "r1",
        Account = "acme",
        KeyId = "k",
        RequestedModel = "m",
        UpstreamModel = "m",
        Upstream = "http://127.0.0.1:1/v1",
        StartedAt = new DateTimeOffset(2026, 12, 5, 0, 0, 0, TimeSpan.Zero),
        Currency = "USD",
        CostNanos = cost,
        InputCostNanos = input,
        OutputCostNanos = output,
        CacheReadCostNanos = cacheRead,
        CacheWriteCostNanos = cacheWrite,
        WebSearchCostNanos = webSearch,
        Region = "westeurope",
        EnergyMethod = "unknown",
    };
}

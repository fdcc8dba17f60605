using Melious.Gateway.Routing;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Tests.Usage;

public sealed class PricingTests
{
    [Fact]
    public void Compute_WorkedExample_IsExactInDecimal()
    {
        // 800 uncached × $0.60/MTok + 200 cached × $0.06/MTok + 500 output × $0.90/MTok (energy-method example).
        var prices = new PriceCard(0.60m, 0.90m, 0.06m, 0.75m, "USD", "2026-11-01");
        var cost = Pricing.Compute(prices, new TokenUsage(800, 200, 0, 500, 0));

        Assert.Equal(0.000942m, cost.Total);
        Assert.Equal(942_000, cost.TotalNanos);
        var wire = cost.ToWire();
        Assert.Equal("0.000942000", wire.Amount);
        Assert.Equal("0.000480000", wire.Input);
        Assert.Equal("0.000012000", wire.CacheRead);
        Assert.Equal("0.000450000", wire.Output);
        Assert.Equal("0.000000000", wire.CacheWrite);
        Assert.Equal("USD", wire.Currency);
        Assert.Equal("2026-11-01", wire.PriceVersion);
    }

    [Fact]
    public void Compute_OneToken_AtATenthOfACentPerMillion_DoesNotVanish()
    {
        var cost = Pricing.Compute(new PriceCard(0.10m, 0, 0, 0, "EUR", null), new TokenUsage(1, 0, 0, 0, 0));
        Assert.Equal(100, cost.TotalNanos);
        Assert.Equal("0.000000100", Pricing.Format(cost.Total));
    }

    [Fact]
    public void Nanos_RoundHalfToEven_OnlyAtStorage()
    {
        Assert.Equal(2, Pricing.ToNanos(0.0000000025m));
        Assert.Equal(4, Pricing.ToNanos(0.0000000035m));
        Assert.Equal(1.5m, Pricing.FromNanos(1_500_000_000));
    }

    [Fact]
    public void Sum_OfManyRequests_IsExact_WhenPricesResolveToWholeNanos()
    {
        // Prices with at most three decimals per million tokens cost whole nano-units per token: no rounding at all.
        var prices = new PriceCard(0.15m, 0.60m, 0.015m, 0.375m, "USD", null);
        long nanos = 0;
        decimal exact = 0;
        for (var i = 0; i < 10_000; i++)
        {
            var cost = Pricing.Compute(prices, new TokenUsage(1_000 + i, i % 7, i % 3, 37 + i % 11, 0));
            nanos += cost.TotalNanos;
            exact += cost.Total;
        }

        Assert.Equal(exact, Pricing.FromNanos(nanos));
    }

    [Fact]
    public void Sum_OfManyRequests_DriftsAtMostHalfANanoPerRequest()
    {
        // Finer prices round once per request (half to even), so the stored total stays within n × 0.5 nano of exact.
        var prices = new PriceCard(0.1875m, 0.60125m, 0.01875m, 0.234375m, "USD", null);
        long nanos = 0;
        decimal exact = 0;
        const int n = 10_000;
        for (var i = 0; i < n; i++)
        {
            var cost = Pricing.Compute(prices, new TokenUsage(1_000 + i, i % 7, i % 3, 37 + i % 11, 0));
            nanos += cost.TotalNanos;
            exact += cost.Total;
        }

        Assert.True(Math.Abs(Pricing.FromNanos(nanos) - exact) <= n * 0.0000000005m);
    }

    [Theory]
    [InlineData("USD", 2)]
    [InlineData("JPY", 0)]
    [InlineData("KWD", 3)]
    public void MinorUnits_FollowIso4217(string currency, int units) => Assert.Equal(units, Pricing.MinorUnits(currency));
}

using Melious.Gateway.Limits;

namespace Melious.Gateway.Tests.Limits;

/// <summary>The wording of the per-key limits' 429 messages, which clients show to people.</summary>
public sealed class RefusalMessageTests
{
    [Theory]
    [InlineData(1, "this key allows 1 request per minute")]
    [InlineData(3, "this key allows 3 requests per minute")]
    [InlineData(60, "this key allows 60 requests per minute")]
    public void RequestsPerMinute_IsSingularForOne(long limit, string expected) =>
        Assert.Equal(expected, KeyRateLimiter.RequestsRefusal(limit));

    [Theory]
    [InlineData(1, "this key allows at most 1 concurrent request")]
    [InlineData(2, "this key allows at most 2 concurrent requests")]
    public void Concurrency_IsSingularForOne(long limit, string expected) =>
        Assert.Equal(expected, KeyRateLimiter.ConcurrencyRefusal(limit));
}

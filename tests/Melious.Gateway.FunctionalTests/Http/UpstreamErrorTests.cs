using System.Net;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>Upstream HTTP failures before the first byte become Anthropic errors with the mapped status (protocol.md §C.7).</summary>
public abstract class UpstreamErrorTests(IGatewayTarget target)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task RateLimited_Keeps429AndRetryAfter()
    {
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.ErrorAsync(c, 429, "slow down", retryAfter: "7"));
        var response = await s.PostAsync(Scenario.Body(stream: true));
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.TooManyRequests, "rate_limit_error", "slow down");
        Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter!.Delta);
        Assert.Single(s.Upstream.Requests);
    }

    [Fact]
    public async Task Overloaded503_Becomes529_AfterBoundedRetries()
    {
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.ErrorAsync(c, 503, "busy"));
        var response = await s.PostAsync(Scenario.Body(stream: true));
        await ErrorAssert.IsErrorAsync(response, (HttpStatusCode)529, "overloaded_error");
        Assert.Equal(3, s.Upstream.Requests.Count);
    }

    [Fact]
    public async Task Transient503_IsRetriedBeforeTheFirstByte()
    {
        var calls = 0;
        await using var s = await Scenario.StartAsync(target, (_, c) => Interlocked.Increment(ref calls) == 1 ? Sse.ErrorAsync(c, 503, "warming up") : Sse.WriteAsync(c, Sse.TextAnswer(["fine"])));
        var json = await s.JsonAsync(await s.PostAsync(Scenario.Body()));
        Assert.Equal("fine", json.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(2, s.Upstream.Requests.Count);
    }

    [Fact]
    public async Task ContextLength400_BecomesPromptIsTooLong()
    {
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.ErrorAsync(c, 400, "This model's maximum context length is 32768 tokens and your request has 40000 input tokens"));
        await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body()), HttpStatusCode.BadRequest, "invalid_request_error", "prompt is too long: 40000 tokens > 32768 maximum");
    }

    [Fact]
    public async Task ServerError500_IsApiError_NotRetried()
    {
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.ErrorAsync(c, 500, "engine crashed"));
        await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body()), HttpStatusCode.InternalServerError, "api_error");
        Assert.Single(s.Upstream.Requests);
    }

    [Fact]
    public async Task UpstreamAuthFailure_IsTheGatewaysProblem_AndLeaksNothing()
    {
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.ErrorAsync(c, 401, "invalid key sk-upstream-123"), new Dictionary<string, string?> { ["Melious:Upstream:ApiKey"] = "sk-upstream-123" });
        var response = await s.PostAsync(Scenario.Body());
        var json = await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadGateway, "api_error");
        Assert.DoesNotContain("sk-upstream-123", json.ToString(), StringComparison.Ordinal);
        Assert.Equal("Bearer sk-upstream-123", s.Upstream.Last.Headers["authorization"]);
    }

    [Theory]
    [InlineData(401, false)]
    [InlineData(403, true)]
    public async Task UpstreamAuthFailure_TellsClientsNotToRetry(int status, bool stream)
    {
        // The gateway's upstream credential is wrong until an operator fixes it: without x-should-retry: false,
        // Claude Code retries the 502 for about three minutes (claude-code.md §5).
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.ErrorAsync(c, status, "invalid key"));
        var response = await s.PostAsync(Scenario.Body(stream: stream));
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadGateway, "api_error", "credentials");
        Assert.Equal("false", Assert.Single(response.Headers.GetValues("x-should-retry")));
        Assert.Single(s.Upstream.Requests);

        // A transient failure says nothing: the client's own retry rules apply.
        await using var failing = await Scenario.StartAsync(target, (_, c) => Sse.ErrorAsync(c, 500, "engine crashed"));
        Assert.False((await failing.PostAsync(Scenario.Body(stream: stream))).Headers.Contains("x-should-retry"));
    }

    [Fact]
    public async Task ConnectionRefused_Is502()
    {
        target.SelfHostOnly("needs a gateway of its own whose upstream URL points at a closed port");
        var port = Ports.Free();
        await using var gateway = await TestGateway.StartAsync(target.ConnectionString, $"http://127.0.0.1:{port}/v1");
        using var client = gateway.Client(await gateway.CreateKeyAsync());
        var response = await client.PostAsync("/v1/messages", new StringContent(Scenario.Body(stream: true).ToJsonString(), System.Text.Encoding.UTF8, "application/json"), Ct);
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadGateway, "api_error", "unreachable");
    }

    [Fact]
    public async Task UpstreamModelNotFound_Is404ForTheRequestedName()
    {
        await using var s = await Scenario.StartAsync(target, (_, c) => Sse.ErrorAsync(c, 404, "The model `secondary-model` does not exist."));
        var json = await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body()), HttpStatusCode.NotFound, "not_found_error", "claude-sonnet-4-5-20250929");
        Assert.DoesNotContain("secondary-model", json.ToString(), StringComparison.Ordinal);
    }
}

/// <summary>The tests of <see cref="UpstreamErrorTests"/> against the self-host.</summary>
public sealed class UpstreamErrorTestsOnSelfHost(AzuriteFixture azurite) : UpstreamErrorTests(azurite);

/// <summary>The tests of <see cref="UpstreamErrorTests"/> against the Functions app under the real Functions host.</summary>
[Collection(FunctionsHostCollection.Name)]
public sealed class UpstreamErrorTestsOnFunctionsHost(FunctionsHostFixture host) : UpstreamErrorTests(host);

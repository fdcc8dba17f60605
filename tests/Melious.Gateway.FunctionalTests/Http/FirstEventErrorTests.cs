using System.Net;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>
/// An upstream that answers 200 <c>text/event-stream</c> and whose first meaningful event is an error (vLLM, SGLang
/// and llama.cpp do this when a request fails once their stream began, a prompt too long for the context among
/// them): the client, streaming or not, gets the HTTP error that error stands for, as if the upstream had answered
/// with its status (protocol.md §E: the status is decided before the stream is committed), with no message_start and
/// nothing billed. Claude Code compacts on 400 "prompt is too long" and retries a 529 (claude-code.md §5); a 502 it
/// only retried, ten times. Once output has started, an error stays an SSE <c>error</c> event.
/// </summary>
public abstract class FirstEventErrorTests(IGatewayTarget target)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // vLLM's flat error object (golden x_flat_vllm_error_object), the whole message.
    private const string ContextLength = """{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens (39000 in the messages, 1000 in the completion).","type":"BadRequestError","param":null,"code":400}""";

    private const string PromptIsTooLong = "prompt is too long: 40000 tokens > 32768 maximum";

    private static Task FirstEventAsync(HttpContext context, string error) => Sse.WriteRawAsync(context, $"data: {error}\n\ndata: [DONE]\n\n");

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task AContextLengthErrorAsTheFirstEvent_IsPromptIsTooLong_WithoutMessageStart_AndNotBilled(bool stream)
    {
        await using var s = await Scenario.StartAsync(target, (_, context) => FirstEventAsync(context, ContextLength));
        using var response = await s.PostAsync(Scenario.Body(stream: stream));
        Assert.StartsWith("application/json", response.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        var json = await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error");
        Assert.Equal(PromptIsTooLong, json.GetProperty("error").GetProperty("message").GetString());
        Assert.DoesNotContain("message_start", json.GetRawText(), StringComparison.Ordinal);
        Assert.Single(s.Upstream.Requests);

        var row = await BillingRowAsync(s.Gateway, RequestId(response));
        AssertOutcome(row, 400, "invalid_request_error", cancelled: false);
        Assert.Equal(0, Long(row, "InputTokens"));
        Assert.Equal(0, Long(row, "OutputTokens"));
        Assert.Equal(0, Long(row, "CostNanos"));
    }

    [Theory]
    // SGLang: the scheduler is full (nested error object with SGLang's flat fields inside).
    [InlineData("""{"error": {"object": "error", "message": "The server is overloaded and the request was aborted.", "type": "SERVICE_UNAVAILABLE", "param": null, "code": 503}}""", 529, "overloaded_error")]
    // llama.cpp: the prompt does not fit the slot's context (no numbers: the model's window and the estimate).
    [InlineData("""{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":40000,"n_ctx":32768}}""", 400, "invalid_request_error")]
    [InlineData("""{"error":{"message":"Rate limit exceeded","type":"RateLimitError","code":429}}""", 429, "rate_limit_error")]
    public async Task AnErrorAsTheFirstEvent_IsTheStatusItStandsFor(string error, int status, string type)
    {
        await using var s = await Scenario.StartAsync(target, (_, context) => FirstEventAsync(context, error));
        await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body(stream: true)), (HttpStatusCode)status, type);
        await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body()), (HttpStatusCode)status, type);
    }

    [Fact]
    public async Task AnErrorAfterARoleChunk_BeforeAnyOutput_IsStillTheHttpError()
    {
        // OpenRouter's shape (golden x_rate_limit_error_chunk): a role chunk with empty content, then the error.
        await using var s = await Scenario.StartAsync(target, Sse.Role(), """{"error":{"message":"Provider returned error","code":429,"metadata":{"provider_name":"Chutes"}}}""");
        await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body(stream: true)), HttpStatusCode.TooManyRequests, "rate_limit_error", "Provider returned error");
    }

    [Fact]
    public async Task AContextLengthErrorAfterOutput_IsAnErrorEvent_InAnthropicsWording()
    {
        // Output has started: the stream is committed, the error stays an event (never a made-up end_turn).
        await using var s = await Scenario.StartAsync(target, Sse.Role(), Sse.Content("par"), ContextLength);
        var events = await SseEvents.ReadAllAsync(await s.PostAsync(Scenario.Body(stream: true)), Ct);
        SseEvents.AssertGrammar(events, expectError: true);
        Assert.Equal("par", SseEvents.Text(events));
        var error = events[^1].Data.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(PromptIsTooLong, error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task AnUpstreamSilentBeforeItsFirstEvent_IsCommittedAtThePingInterval_ThenItsErrorIsAnEvent()
    {
        // The trade-off of waiting for the first event: a streamed response waits for it at most one ping interval
        // (when its first ping would be due), then starts (message_start, pings) as before; an error after that is an
        // event, mapped as mid-stream errors are.
        await using var s = await Scenario.StartAsync(target, async (_, context) =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.StartAsync(context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await Task.Delay(900, context.RequestAborted);
            await Sse.WriteAsync(context, [ContextLength]);
        }, new Dictionary<string, string?> { ["Melious:Streaming:PingInterval"] = "00:00:00.150" });
        using var response = await s.PostAsync(Scenario.Body(stream: true));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseEvents.ReadAllAsync(response, Ct);
        SseEvents.AssertGrammar(events, expectError: true);
        Assert.Equal("message_start", events[0].Name);
        Assert.True(events.Count(e => e.Name == "ping") >= 2, "pings are sent while the upstream is silent: " + string.Join(", ", events.Select(e => e.Name)));
        var error = events[^1].Data.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(PromptIsTooLong, error.GetProperty("message").GetString());
    }
}

/// <summary>The tests of <see cref="FirstEventErrorTests"/> against the self-host.</summary>
public sealed class FirstEventErrorTestsOnSelfHost(AzuriteFixture azurite) : FirstEventErrorTests(azurite);

/// <summary>The tests of <see cref="FirstEventErrorTests"/> against the Functions app under the real Functions host.</summary>
[Collection(FunctionsHostCollection.Name)]
public sealed class FirstEventErrorTestsOnFunctionsHost(FunctionsHostFixture host) : FirstEventErrorTests(host);

using System.Net;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>
/// An OpenAI-compatible upstream (or a proxy in front of one) that answers a streaming request with one
/// <c>application/json</c> chat.completion: the gateway translates it and streams it (or returns it) as asked,
/// instead of failing with "upstream stream ended unexpectedly".
/// </summary>
public sealed class JsonAnswerTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // vLLM's non-streaming shape: reasoning_content beside content, tool_calls without index, usage at the top.
    private const string Completion = """
        {"id":"chatcmpl-9f2","object":"chat.completion","created":1764900000,"model":"qwen3-coder","choices":[{"index":0,"message":{"role":"assistant","content":"Reading it.","reasoning_content":"Need the file.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"Read","arguments":"{\"file_path\": \"/tmp/a.txt\"}"}}]},"logprobs":null,"finish_reason":"tool_calls","stop_reason":null}],"usage":{"prompt_tokens":1200,"total_tokens":1240,"completion_tokens":40,"prompt_tokens_details":{"cached_tokens":1024}}}
        """;

    [Fact]
    public async Task StreamRequest_AnsweredWithJson_IsStreamedToTheClient()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context, Completion, "application/json"));
        var response = await s.PostAsync(Scenario.Body(stream: true));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/event-stream", response.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        var events = await SseEvents.ReadAllAsync(response, Ct);
        SseEvents.AssertGrammar(events);

        var starts = events.Where(e => e.Name == "content_block_start").Select(e => e.Data.GetProperty("content_block").GetProperty("type").GetString()).ToList();
        Assert.Equal(["thinking", "text", "tool_use"], starts);
        Assert.Equal("Reading it.", SseEvents.Text(events));
        var json = string.Concat(events.Where(e => e.Name == "content_block_delta" && e.Data.GetProperty("delta").GetProperty("type").GetString() == "input_json_delta")
            .Select(e => e.Data.GetProperty("delta").GetProperty("partial_json").GetString()));
        Assert.Equal("{\"file_path\": \"/tmp/a.txt\"}", json);
        var delta = events.Single(e => e.Name == "message_delta").Data;
        Assert.Equal("tool_use", delta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(40, delta.GetProperty("usage").GetProperty("output_tokens").GetInt64());
        Assert.Equal(1024, delta.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt64());
        Assert.True(s.Upstream.Requests.Single().Json.GetProperty("stream").GetBoolean());
    }

    [Fact]
    public async Task NonStreamRequest_AnsweredWithJson_IsAMessage()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context, Completion, "application/json; charset=utf-8"));
        var response = await s.PostAsync(Scenario.Body());
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var message = await s.JsonAsync(response);
        var content = message.GetProperty("content");
        Assert.Equal("thinking", content[0].GetProperty("type").GetString());
        Assert.Equal("Need the file.", content[0].GetProperty("thinking").GetString());
        Assert.Equal("Reading it.", content[1].GetProperty("text").GetString());
        Assert.Equal("/tmp/a.txt", content[2].GetProperty("input").GetProperty("file_path").GetString());
        Assert.Equal("tool_use", message.GetProperty("stop_reason").GetString());
        Assert.Equal(1200 - 1024, message.GetProperty("usage").GetProperty("input_tokens").GetInt64());
    }

    [Fact]
    public async Task JsonThatIsNotACompletion_IsAnErrorEvent_NotAFakeEndTurn()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context, "[1,2,3]", "application/json"));
        var response = await s.PostAsync(Scenario.Body(stream: true));
        var events = await SseEvents.ReadAllAsync(response, Ct);
        SseEvents.AssertGrammar(events, expectError: true);
        Assert.DoesNotContain(events, e => e.Name == "message_delta");
        Assert.Contains("not a chat completion", events.Last().Data.GetProperty("error").GetProperty("message").GetString());
    }

    // vLLM's context-length error, as a proxy in front of it passes it on: with a 200 and application/json.
    private const string ContextLengthError = """
        {"error":{"message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens (39000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}}
        """;

    [Fact]
    public async Task JsonErrorWith200_IsTheHttpErrorItStandsFor_NotAStream()
    {
        // Decided before the stream is committed (protocol.md §E): code 503 maps as an upstream 503 would.
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context, """{"error":{"message":"model is overloaded","type":"server_error","code":503}}""", "application/json"));
        var response = await s.PostAsync(Scenario.Body(stream: true));
        await ErrorAssert.IsErrorAsync(response, (HttpStatusCode)529, "overloaded_error", "overloaded");
    }

    [Fact]
    public async Task ContextLengthErrorWith200_NonStream_IsPromptIsTooLong()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context, ContextLengthError, "application/json"));
        var response = await s.PostAsync(Scenario.Body());
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", "prompt is too long: 40000 tokens > 32768 maximum");
    }

    [Fact]
    public async Task ContextLengthErrorWith200_Stream_Is400_WithoutMessageStart()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context, ContextLengthError, "application/json"));
        var response = await s.PostAsync(Scenario.Body(stream: true));
        Assert.StartsWith("application/json", response.Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
        var error = await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", "prompt is too long: 40000 tokens > 32768 maximum");
        Assert.DoesNotContain("message_start", error.GetRawText(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}""", 400, "invalid_request_error")]
    [InlineData("""{"error":{"object":"error","message":"The server is busy","type":"SERVICE_UNAVAILABLE","param":null,"code":"503"}}""", 529, "overloaded_error")]
    [InlineData("""{"object":"error","message":"Rate limit exceeded","type":"RateLimitError","param":null,"code":429}""", 429, "rate_limit_error")]
    public async Task ErrorBodiesWith200_MapByMeaning(string body, int status, string type)
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context, body, "application/json"));
        await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body(stream: true)), (HttpStatusCode)status, type);
        await ErrorAssert.IsErrorAsync(await s.PostAsync(Scenario.Body()), (HttpStatusCode)status, type);
    }
}

using System.Text;
using Melious.Gateway.Translation;
using Melious.Gateway.Upstream;

namespace Melious.Gateway.Tests.Translation;

/// <summary>
/// The look at an upstream stream's first events (before the client's response is committed): an error before any
/// output is the HTTP error it stands for, mapped as the same error in a 200 JSON answer; output, a finish or
/// <c>[DONE]</c> starts the response; a role-only chunk says nothing yet.
/// </summary>
public sealed class FirstEventTests
{
    private static readonly UpstreamContext Context = new("claude-sonnet-4-5", "qwen3-coder", "sk-upstream-secret", 32_768, 17_000);

    private static (FirstEventKind Kind, GatewayError? Error) Classify(string data, string eventType = "message")
    {
        var kind = FirstEvent.Classify(eventType, Encoding.UTF8.GetBytes(data), [], Context, out var error);
        return (kind, error);
    }

    [Theory]
    // vLLM's flat error object (golden x_flat_vllm_error_object, with the full message).
    [InlineData("""{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens (39000 in the messages, 1000 in the completion).","type":"BadRequestError","param":null,"code":400}""", 400, "invalid_request_error", "prompt is too long: 40000 tokens > 32768 maximum")]
    // The same in OpenAI's nested shape (newer vLLM, SGLang).
    [InlineData("""{"error":{"message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens (39000 in the messages, 1000 in the completion).","type":"BadRequestError","param":null,"code":400}}""", 400, "invalid_request_error", "prompt is too long: 40000 tokens > 32768 maximum")]
    // SGLang's wording, flat.
    [InlineData("""{"object":"error","message":"The input (40000 tokens) is longer than the model's context length (32768 tokens).","type":"BadRequestError","param":null,"code":400}""", 400, "invalid_request_error", "prompt is too long: 40000 tokens > 32768 maximum")]
    // llama.cpp's: no numbers in the message, so the model's window and the estimate.
    [InlineData("""{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":40000,"n_ctx":32768}}""", 400, "invalid_request_error", "prompt is too long: 32769 tokens > 32768 maximum")]
    [InlineData("""{"error":{"message":"The server is overloaded","type":"SERVICE_UNAVAILABLE","code":503}}""", 529, "overloaded_error", "The server is overloaded")]
    [InlineData("""{"error":{"message":"Provider returned error","code":429}}""", 429, "rate_limit_error", "Provider returned error")]
    [InlineData("""{"error":{"message":"CUDA out of memory","type":"InternalServerError","code":500}}""", 500, "api_error", "CUDA out of memory")]
    public void AnErrorChunk_IsTheHttpErrorOfItsStatus(string data, int status, string type, string message)
    {
        var (kind, error) = Classify(data);
        Assert.Equal(FirstEventKind.Error, kind);
        Assert.Equal(new GatewayError(status, type, message), error);
    }

    [Fact]
    public void AnErrorEvent_InPlainText_IsAnApiError_WithItsText()
    {
        var (kind, error) = Classify("upstream worker \"gpu-3\" crashed", "error");
        Assert.Equal(FirstEventKind.Error, kind);
        Assert.Equal(new GatewayError(500, "api_error", "upstream worker \"gpu-3\" crashed"), error);
    }

    [Fact]
    public void AnErrorEvent_WithJsonThatIsNoErrorBody_IsAnApiError_WithItsMessage()
    {
        var (kind, error) = Classify("""{"detail":"worker crashed"}""", "error");
        Assert.Equal(FirstEventKind.Error, kind);
        Assert.Equal(new GatewayError(500, "api_error", "worker crashed"), error);
    }

    [Fact]
    public void AnErrorMessage_NeverCarriesTheUpstreamKeyOrModel()
    {
        var (_, error) = Classify("""{"error":{"message":"qwen3-coder is overloaded (key sk-upstream-secret)","code":503}}""");
        Assert.Equal("claude-sonnet-4-5 is overloaded (key [redacted])", error!.Message);
    }

    [Theory]
    [InlineData("""{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}""")]
    [InlineData("""{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}""")]
    [InlineData("""{"choices":[{"index":0,"delta":{"reasoning_content":"Think"},"finish_reason":null}]}""")]
    [InlineData("""{"choices":[{"index":0,"delta":{"reasoning":"Think"},"finish_reason":null}]}""")]
    [InlineData("""{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"Read","arguments":""}}]},"finish_reason":null}]}""")]
    [InlineData("""{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}""")]
    [InlineData("[DONE]")]
    [InlineData("{not json")]
    public void OutputAFinishOrSomethingTheTranslatorReports_StartsTheResponse(string data)
    {
        var (kind, error) = Classify(data);
        Assert.Equal(FirstEventKind.Start, kind);
        Assert.Null(error);
    }

    [Theory]
    [InlineData("""{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}""", "message")]
    [InlineData("""{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}]}""", "message")]
    [InlineData("""{"choices":[{"index":0,"delta":{"reasoning_content":null,"role":"assistant","content":""},"finish_reason":null,"matched_stop":null}]}""", "message")]
    [InlineData("""{"choices":[{"index":1,"delta":{"content":"other choice"},"finish_reason":null}]}""", "message")]
    [InlineData("  ", "message")]
    [InlineData("keep-alive", "progress")]
    public void ARoleChunkOrASideEvent_SaysNothingYet(string data, string eventType)
    {
        var (kind, error) = Classify(data, eventType);
        Assert.Equal(FirstEventKind.None, kind);
        Assert.Null(error);
    }

    [Fact]
    public void ANullErrorMember_IsNoError()
    {
        var (kind, error) = Classify("""{"choices":[{"index":0,"delta":{"content":"x"}}],"error":null}""");
        Assert.Equal(FirstEventKind.Start, kind);
        Assert.Null(error);
    }
}

using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Melious.Bench;
using Melious.Gateway;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Protocol;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Protocol.OpenAI;
using Melious.Gateway.Routing;
using Melious.Gateway.Tokens;
using Melious.Gateway.Translation;
using Melious.Gateway.Upstream;
using Microsoft.Extensions.Options;

namespace Melious.Benchmarks;

/// <summary>
/// The per-request path before the upstream call, on the Claude Code–shaped body (25 tools): parse + validate,
/// token estimate, Anthropic → OpenAI translation, serialization of the upstream body, all four together, and what
/// is left before the send once the estimate is deferred.
/// "repeated tools" is Claude Code's case (the same tools bytes every turn, served from <see cref="ToolSetCache"/>);
/// "new tools" empties the cache first, as for a client's first request.
/// </summary>
[MemoryDiagnoser]
public class RequestBenchmarks
{
    private byte[] _body = [];
    private RequestParser _parser = null!;
    private MessagesRequest _request = null!;
    private ModelEntry _model = null!;
    private long _estimate;

    [GlobalSetup]
    public void Setup()
    {
        _body = BenchRequests.Messages();
        _parser = new RequestParser(Options.Create(new GatewayOptions()));
        var (request, error) = _parser.Parse(_body, requireMaxTokens: true);
        _request = request ?? throw new InvalidOperationException("benchmark body is invalid: " + error?.Message);
        _model = new ModelEntry { Id = "bench-sonnet", BaseUrl = "http://127.0.0.1:9/v1" };
        _estimate = TokenEstimator.EstimateRequest(_request);
    }

    [Benchmark(Description = "parse + validate request (25 tools, repeated tools)")]
    public MessagesRequest? ParseAndValidate() => _parser.Parse(_body, requireMaxTokens: true).Request;

    [Benchmark(Description = "parse + validate request (25 tools, new tools)")]
    public MessagesRequest? ParseAndValidateNewTools()
    {
        ToolSetCache.Clear();
        return _parser.Parse(_body, requireMaxTokens: true).Request;
    }

    [Benchmark(Description = "TokenEstimator.EstimateRequest (repeated tools)")]
    public long EstimateRequest() => TokenEstimator.EstimateRequest(_request);

    [Benchmark(Description = "TokenEstimator.EstimateRequest (new tools)")]
    public long EstimateRequestNewTools() => TokenEstimator.EstimateRequest(_request with { Tools = [.. _request.Tools!] });

    [Benchmark(Description = "OpenAIRequestTranslator.Translate")]
    public object Translate() => OpenAIRequestTranslator.Translate(_request, _model, _estimate);

    [Benchmark(Description = "translate + serialize upstream body")]
    public int TranslateAndSerialize() => Serialize(OpenAIRequestTranslator.Translate(_request, _model, _estimate));

    [Benchmark(Description = "all four (one request before upstream, repeated tools)")]
    public int FullRequestPath()
    {
        var request = _parser.Parse(_body, requireMaxTokens: true).Request!;
        var estimate = TokenEstimator.EstimateRequest(request);
        return Serialize(OpenAIRequestTranslator.Translate(request, _model, estimate));
    }

    /// <summary>What OpenAIForwarder does before the send when the estimate cannot change max_tokens (it is counted after).</summary>
    [Benchmark(Description = "before the send: parse, bound, translate, serialize (repeated tools)")]
    public int BeforeSend()
    {
        var request = _parser.Parse(_body, requireMaxTokens: true).Request!;
        var bound = TokenEstimator.UpperBound(request);
        if (!OpenAIRequestTranslator.ClampIgnores(request.MaxTokens ?? _model.MaxOutputTokens, _model, bound))
        {
            throw new InvalidOperationException("the benchmark body is expected to leave max_tokens unclamped");
        }

        return Serialize(OpenAIRequestTranslator.Translate(request, _model, bound));
    }

    [Benchmark(Description = "all four (one request before upstream, new tools)")]
    public int FullRequestPathNewTools()
    {
        ToolSetCache.Clear();
        var request = _parser.Parse(_body, requireMaxTokens: true).Request!;
        var estimate = TokenEstimator.EstimateRequest(request);
        return Serialize(OpenAIRequestTranslator.Translate(request, _model, estimate));
    }

    /// <summary>As OpenAIForwarder does it: a pooled 32 KB buffer, its writer options and the source-generated context.</summary>
    private static int Serialize(TranslatedRequest translated)
    {
        using var payload = new PooledBuffer(32 * 1024);
        using (var writer = new Utf8JsonWriter(payload, WireJson.WriterOptions))
        {
            JsonSerializer.Serialize(writer, translated.Request, OpenAIJsonContext.Default.ChatCompletionRequest);
        }

        return payload.WrittenCount;
    }
}

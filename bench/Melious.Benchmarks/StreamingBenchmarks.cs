using System.Net.ServerSentEvents;
using BenchmarkDotNet.Attributes;
using Melious.Bench;
using Melious.Gateway.Streaming;
using Melious.Gateway.Translation;
using Melious.Gateway.Usage;

namespace Melious.Benchmarks;

/// <summary>
/// The per-chunk path of a streamed response: one OpenAI chunk through <see cref="OpenAIStreamTranslator"/> into
/// <see cref="SseMessageWriter"/>, one event written on its own, one tool-call argument fragment, and a whole
/// 200-token upstream stream parsed with <see cref="SseParser"/> exactly as OpenAIForwarder does (no network).
/// </summary>
[MemoryDiagnoser]
public class StreamingBenchmarks
{
    private static readonly byte[] TextChunk = """{"id":"chatcmpl-bench7f3a9c","object":"chat.completion.chunk","created":1764000000,"model":"bench-model","choices":[{"index":0,"delta":{"content":" dereferences"},"logprobs":null,"finish_reason":null}]}"""u8.ToArray();
    private static readonly byte[] ToolStartChunk = """{"id":"chatcmpl-bench7f3a9c","object":"chat.completion.chunk","created":1764000000,"model":"bench-model","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"chatcmpl-tool-5b1e0c2d9f","type":"function","function":{"name":"Read","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"""u8.ToArray();
    private static readonly byte[] ToolFragmentChunk = """{"id":"chatcmpl-bench7f3a9c","object":"chat.completion.chunk","created":1764000000,"model":"bench-model","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"/src/Parser/Exp"}}]},"logprobs":null,"finish_reason":null}]}"""u8.ToArray();
    private static readonly byte[] EscapedText = " dereferences"u8.ToArray();

    private DiscardPipeWriter _pipe = null!;
    private SseMessageWriter _writer = null!;
    private OpenAIStreamTranslator _text = null!;
    private OpenAIStreamTranslator _tool = null!;
    private byte[] _stream200 = [];
    private byte[] _stream200Tool = [];

    [GlobalSetup]
    public void Setup()
    {
        _pipe = new DiscardPipeWriter();
        _writer = new SseMessageWriter(_pipe, BenchRequests.Model);
        _writer.MessageStart("msg_bench", new TokenUsage(1000, 0, 0, 0, 0));

        // Steady state: a text block is open, so each chunk is one text_delta event.
        _text = new OpenAIStreamTranslator(_writer, new ToolNameMap());
        _text.OnEvent("message", TextChunk);

        // Steady state: a tool_use block is open, so each fragment is one input_json_delta event.
        _tool = new OpenAIStreamTranslator(new SseMessageWriter(_pipe, BenchRequests.Model), new ToolNameMap());
        _tool.OnEvent("message", ToolStartChunk);

        _stream200 = new ScenarioPayload(new Scenario(200, 1, 0, 0, false)).Bytes;
        _stream200Tool = new ScenarioPayload(new Scenario(200, 1, 0, 0, true)).Bytes;
    }

    [Benchmark(Description = "translate 1 text chunk → SSE")]
    public void TranslateTextChunk() => _text.OnEvent("message", TextChunk);

    [Benchmark(Description = "write 1 text_delta event")]
    public void WriteTextDeltaEvent() => _writer.TextDelta(0, EscapedText);

    [Benchmark(Description = "translate 1 tool-call fragment → SSE")]
    public void TranslateToolFragment() => _tool.OnEvent("message", ToolFragmentChunk);

    [Benchmark(Description = "whole 200-token stream (text)")]
    public long Stream200Text() => TranslateWhole(_stream200);

    [Benchmark(Description = "whole 200-token stream + tool call")]
    public long Stream200Tool() => TranslateWhole(_stream200Tool);

    /// <summary>message_start, SseParser over the upstream bytes, the translator, message_delta and message_stop.</summary>
    private long TranslateWhole(byte[] upstream)
    {
        var pipe = _pipe;
        var writer = new SseMessageWriter(pipe, BenchRequests.Model);
        writer.MessageStart("msg_bench", new TokenUsage(1000, 0, 0, 0, 0));
        var translator = new OpenAIStreamTranslator(writer, new ToolNameMap());
        var parser = SseParser.Create(new MemoryStream(upstream, writable: false), (type, data) =>
        {
            translator.OnEvent(type, data);
            return 0;
        });
        foreach (var _ in parser.Enumerate())
        {
            if (translator.IsFinished)
            {
                break;
            }
        }

        translator.Finish();
        writer.MessageDelta(translator.StopReason, translator.StopSequence, new TokenUsage(928, 8192, 0, 200, 0), null, null);
        writer.MessageStop();
        return pipe.Written;
    }
}

using System.IO.Pipelines;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Streaming;
using Melious.Gateway.Translation;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Tests.Support;

/// <summary>Settings of one stream translation run.</summary>
internal sealed record StreamSettings
{
    public const string OriginalModel = "claude-sonnet-4-5-20250929";

    public string Model { get; init; } = OriginalModel;

    /// <summary>The gateway's estimate of the prompt, sent in message_start (and used when no usage arrives).</summary>
    public long EstimatedInputTokens { get; init; } = 5000;

    public IReadOnlyList<string>? StopSequences { get; init; }

    /// <summary>Names the request translation rewrote (long or invalid MCP names); a fresh map per run when null.</summary>
    public Func<ToolNameMap>? ToolNames { get; init; }

    /// <summary>Why the reader stopped early (the forwarder passes this on a broken connection).</summary>
    public string? EndedEarly { get; init; }

    /// <summary>Feeds the upstream bytes one at a time, to prove that read boundaries do not matter.</summary>
    public bool OneByteReads { get; init; }
}

/// <summary>The result of a run through <see cref="SseMessageWriter"/> (streaming) or <see cref="MessageAggregator"/> (non-streaming).</summary>
internal sealed record StreamRun(string Sse, StreamOutcome Outcome, OpenAIStreamTranslator Translator);

internal sealed record AggregateRun(MessageAggregator Aggregator, StreamOutcome Outcome, OpenAIStreamTranslator Translator)
{
    /// <summary>The non-streaming body the forwarder would send: the Message, or the error it maps a failure to.</summary>
    public string ResponseJson(string model)
    {
        if (Outcome == StreamOutcome.Completed)
        {
            return JsonSerializer.Serialize(Aggregator.Build(model), AnthropicJsonContext.Default.Message);
        }

        var (type, message) = Aggregator.Failure ?? ("api_error", "the upstream response ended unexpectedly");
        return JsonSerializer.Serialize(new ErrorResponse(new ErrorDetail(type, message), null), AnthropicJsonContext.Default.ErrorResponse);
    }
}

/// <summary>
/// Drives <see cref="OpenAIStreamTranslator"/> from OpenAI SSE bytes exactly as <c>OpenAIForwarder</c> does:
/// message_start with the estimate, <see cref="SseParser"/> feeding <see cref="OpenAIStreamTranslator.OnEvent"/>
/// until it is finished, <see cref="OpenAIStreamTranslator.Finish"/>, then message_delta (usage mapped like
/// <c>OpenAIForwarder.RecordTokens</c>) and message_stop when the stream completed.
/// </summary>
internal static class StreamHarness
{
    public static StreamRun RunStream(byte[] upstream, StreamSettings settings)
    {
        var output = new MemoryStream();
        var pipe = PipeWriter.Create(output);
        var writer = new SseMessageWriter(pipe, settings.Model);
        var (outcome, translator) = Drive(upstream, writer, settings);
        pipe.FlushAsync().AsTask().GetAwaiter().GetResult();
        pipe.Complete();
        return new StreamRun(Encoding.UTF8.GetString(output.ToArray()), outcome, translator);
    }

    public static AggregateRun RunAggregate(byte[] upstream, StreamSettings settings)
    {
        var aggregator = new MessageAggregator();
        var (outcome, translator) = Drive(upstream, aggregator, settings);
        return new AggregateRun(aggregator, outcome, translator);
    }

    /// <summary>Anthropic usage from the upstream's, as OpenAIForwarder.RecordTokens computes it.</summary>
    public static TokenUsage MapUsage(OpenAIStreamTranslator translator, long estimate)
    {
        var u = translator.UpstreamUsage;
        if (u.Present && (u.PromptTokens > 0 || u.CompletionTokens > 0))
        {
            var prompt = u.PromptTokens > 0 ? u.PromptTokens : estimate;
            var cached = Math.Min(u.CachedTokens, prompt);
            var written = Math.Min(u.CacheWriteTokens, prompt - cached);
            return new TokenUsage(prompt - cached - written, cached, written, u.CompletionTokens, Math.Min(u.ReasoningTokens, u.CompletionTokens));
        }

        return new TokenUsage(estimate, 0, 0, translator.Fragments, 0);
    }

    private static (StreamOutcome, OpenAIStreamTranslator) Drive(byte[] upstream, IMessageEventSink sink, StreamSettings settings)
    {
        sink.MessageStart(Ids.NewMessageId(), new TokenUsage(settings.EstimatedInputTokens, 0, 0, 0, 0));
        var translator = new OpenAIStreamTranslator(sink, settings.ToolNames?.Invoke() ?? new ToolNameMap(), settings.StopSequences);
        Stream body = settings.OneByteReads ? new OneByteStream(upstream) : new MemoryStream(upstream, writable: false);
        var parser = SseParser.Create(body, (eventType, data) =>
        {
            translator.OnEvent(eventType, data);
            return 0;
        });
        foreach (var _ in parser.Enumerate())
        {
            if (translator.IsFinished)
            {
                break;
            }
        }

        var outcome = translator.Finish(settings.EndedEarly);
        if (outcome == StreamOutcome.Completed)
        {
            sink.MessageDelta(translator.StopReason, translator.StopSequence, MapUsage(translator, settings.EstimatedInputTokens), null, null);
            sink.MessageStop();
        }

        return (outcome, translator);
    }

    /// <summary>A read-only stream that returns at most one byte per read.</summary>
    private sealed class OneByteStream(byte[] data) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => data.Length;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            if (_position >= data.Length || buffer.IsEmpty)
            {
                return 0;
            }

            buffer[0] = data[_position++];
            return 1;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Text.Json;
using Melious.Gateway.Protocol;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Protocol.OpenAI;
using Melious.Gateway.Routing;
using Melious.Gateway.Streaming;
using Melious.Gateway.Tokens;
using Melious.Gateway.Translation;
using Melious.Gateway.Upstream;
using Melious.Gateway.Usage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// Serves a Messages request from an OpenAI Chat Completions upstream. The upstream is always asked to stream
/// (with usage), so both response modes share one translator and the idle timeout applies to both: a streamed
/// request gets SSE as it arrives, a non-streamed one gets the aggregated <see cref="Message"/> at the end.
/// </summary>
public sealed partial class OpenAIForwarder(UpstreamClient upstream, UsageCalculator calculator, IOptions<GatewayOptions> options, TimeProvider time, ILogger<OpenAIForwarder> logger, Search.WebSearchService search)
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private static readonly MediaTypeWithQualityHeaderValue EventStream = new("text/event-stream");

    private readonly StreamingOptions _streaming = options.Value.Streaming;

    /// <summary>
    /// Everything needed from the parsed request is taken here, synchronously, so the request itself (often 100 KB
    /// and more) is not kept alive for the minutes a stream can last.
    /// </summary>
    internal Task ForwardAsync(RequestContext context, MessagesRequest request, ModelRoute route, UsageRecorder recorder)
    {
        var model = route.Model;

        // The estimate only matters before the call when the prompt may come near the context window; otherwise it
        // is counted while the upstream works (UpstreamCall.SendAsync), off the time to first token.
        var bound = TokenEstimator.UpperBound(request);
        var estimate = OpenAIRequestTranslator.ClampIgnores(request.MaxTokens ?? model.MaxOutputTokens, model, bound)
            ? InputEstimate.Deferred(request)
            : InputEstimate.Of(TokenEstimator.EstimateRequest(request));
        TranslatedRequest translated;
        try
        {
            translated = OpenAIRequestTranslator.Translate(request, model, estimate.IsDeferred ? bound : estimate.Value, search.Signer);
        }
        catch (RequestTranslationException ex)
        {
            if (ex.Message.StartsWith("prompt is too long", StringComparison.Ordinal) && recorder.FallbackOn.HasFlag(FallbackTriggers.ContextOverflow))
            {
                // Known too long for this model before any call: the next (longer-context) model may take it.
                recorder.Status = 400;
                recorder.ErrorType = "invalid_request_error";
                recorder.PendingFallback = (new GatewayError(400, "invalid_request_error", ex.Message), FallbackTriggers.ContextOverflow);
                return Task.CompletedTask;
            }

            return FailAsync(context, recorder, ex.Message);
        }

        var call = new PreparedCall(
            request.Model!,
            request.Stream == true,
            translated.ToolNames,
            request.StopSequences,
            new UpstreamContext(request.Model!, model.Id, model.ApiKey, model.ContextWindow, estimate) { Provider = model.Flavor })
        {
            Search = PlanSearch(request, translated),
            ContextManagement = translated.ContextManagement,
        };
        if (request.MaxTokens == 0)
        {
            // A cache pre-warm: nothing to generate.
            return WriteEmptyAsync(context, call, recorder);
        }

        try
        {
            using var writer = new Utf8JsonWriter(call.Payload, WireJson.WriterOptions);
            JsonSerializer.Serialize(writer, call.Search?.Request ?? translated.Request, OpenAIJsonContext.Default.ChatCompletionRequest);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            // Raw JSON kept from the request (a schema property name with an escaped lone surrogate) that cannot be
            // re-encoded: the client's mistake, not ours.
            call.Payload.Dispose();
            return FailAsync(context, recorder, "invalid request body: a tool schema or tool input contains text that cannot be encoded");
        }

        return RunAsync(context, call, model, recorder);
    }

    /// <summary>What the response side needs from the request, plus the upstream body (released once sent).</summary>
    private sealed record PreparedCall(string RequestedModel, bool Stream, ToolNameMap ToolNames, IReadOnlyList<string>? StopSequences, UpstreamContext Upstream)
    {
        public PooledBuffer Payload { get; } = new(32 * 1024);

        public long Estimate => Upstream.EstimatedInputTokens;

        /// <summary>Set when the request has the web_search server tool: the response runs the search loop.</summary>
        public SearchPlan? Search { get; init; }

        public ContextManagementResponse? ContextManagement { get; init; }
    }

    private static async Task FailAsync(RequestContext context, UsageRecorder recorder, string message)
    {
        recorder.Status = 400;
        recorder.ErrorType = "invalid_request_error";
        await ErrorWriter.WriteAsync(context.Http, 400, "invalid_request_error", message);
    }

    private async Task RunAsync(RequestContext context, PreparedCall call, ModelEntry model, UsageRecorder recorder)
    {
        var http = context.Http;
        var cancellationToken = http.RequestAborted;
        using var upstreamCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        HttpResponseMessage? sent;
        using (call.Payload)
        {
            sent = await UpstreamCall.SendAsync(upstream, context, model, e => CreateRequest(new Uri(e.BaseUrl + "/chat/completions"), call.Payload, e.ApiKey), call.Upstream, upstreamCts, _streaming, recorder);
        }

        if (sent is null)
        {
            return;
        }

        var answered = IsJson(sent)
            ? await ReadJsonAnswerAsync(context, sent, call.Upstream, recorder, upstreamCts)
            : await ReadFirstEventAsync(context, sent, call, recorder, upstreamCts);
        if (!answered)
        {
            sent.Dispose();
            return;
        }

        if (call.Search is { } plan)
        {
            await RunSearchLoopAsync(context, call, model, recorder, sent, upstreamCts, plan);
            return;
        }

        using var response = sent;

        var messageId = Ids.NewMessageId();
        var start = new TokenUsage(call.Estimate, 0, 0, 0, 0);
        if (call.Stream)
        {
            await using var session = new StreamingSession(http, call.RequestedModel, upstreamCts, _streaming.IdleTimeout, _streaming.PingInterval, time);
            await session.StartAsync(cancellationToken);
            session.Writer.MessageStart(messageId, start);
            session.Writer.ContextManagement = call.ContextManagement;
            var translator = new OpenAIStreamTranslator(session.Writer, call.ToolNames, call.StopSequences, call.Upstream, ReasoningModes.ModeOf(model));
            await PumpAsync(response, session, translator, session.Writer, recorder, model, call.Estimate, upstreamCts, cancellationToken, () => session.ClientGone);
            recorder.Status = 200;
            return;
        }

        var aggregator = new MessageAggregator();
        aggregator.MessageStart(messageId, start);
        aggregator.ContextManagement = call.ContextManagement;
        var nonStreaming = new OpenAIStreamTranslator(aggregator, call.ToolNames, call.StopSequences, call.Upstream, ReasoningModes.ModeOf(model));
        using var idle = new IdleDeadline(upstreamCts, _streaming.IdleTimeout, time);
        var completed = await PumpAsync(response, idle, nonStreaming, aggregator, recorder, model, call.Estimate, upstreamCts, cancellationToken, static () => false);
        if (!completed)
        {
            if (!recorder.Cancelled)
            {
                var (type, message) = aggregator.Failure ?? ("api_error", "the upstream response ended unexpectedly");
                recorder.Status = StatusFor(type);
                await ErrorWriter.WriteAsync(http, new GatewayError(recorder.Status, type, message));
            }

            return;
        }

        if (aggregator.InvalidToolInputs > 0)
        {
            Log.InvalidToolInput(logger, context.RequestId, aggregator.InvalidToolInputs);
        }

        recorder.Status = 200;
        await WriteJsonAsync(http, aggregator.Build(call.RequestedModel));
    }

    /// <summary>Reads the upstream SSE through the translator until it finishes; then writes the final events.</summary>
    private async Task<bool> PumpAsync(
        HttpResponseMessage response,
        IReadObserver observer,
        OpenAIStreamTranslator translator,
        IMessageEventSink sink,
        UsageRecorder recorder,
        ModelEntry model,
        long estimate,
        CancellationTokenSource upstreamCts,
        CancellationToken clientToken,
        Func<bool> clientGone)
    {
        string? endedEarly = null;
        var timedOut = false;
        try
        {
            await using var raw = await response.Content.ReadAsStreamAsync(upstreamCts.Token);
            await using var observed = new ObservedReadStream(raw, observer);
            if (IsJson(response))
            {
                // Asked for a stream, got one chat.completion: translate it as the one chunk it stands for.
                await TranslateCompletionAsync(observed, translator, upstreamCts.Token);
                if (recorder.TtftMs is null && translator.HasOutput)
                {
                    recorder.MarkFirstOutput();
                }
            }

            if (!translator.IsFinished)
            {
                var parser = SseParser.Create(observed, (eventType, data) =>
                {
                    translator.OnEvent(eventType, data);
                    return 0;
                });
                await foreach (var _ in parser.EnumerateAsync(upstreamCts.Token))
                {
                    if (recorder.TtftMs is null && translator.HasOutput)
                    {
                        recorder.MarkFirstOutput();
                    }

                    // Output counts against the key's tokens per minute as it streams (the upstream's running usage
                    // when it sends one, else one token per fragment).
                    recorder.StreamedOutput(Math.Max(translator.Fragments, translator.UpstreamUsage.CompletionTokens));

                    if (translator.IsFinished || clientGone())
                    {
                        break;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (clientToken.IsCancellationRequested || clientGone())
        {
            // The client left: stop, and bill what was streamed.
            RecordTokens(recorder, translator, estimate);
            recorder.Cancelled = true;
            recorder.Status = 499;
            return false;
        }
        catch (OperationCanceledException)
        {
            timedOut = true;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            endedEarly = "the upstream connection was lost mid-response";
            Log.UpstreamBroke(logger, ex.GetType().Name);
        }

        if (clientGone())
        {
            RecordTokens(recorder, translator, estimate);
            recorder.Cancelled = true;
            recorder.Status = 499;
            return false;
        }

        if (timedOut)
        {
            translator.Fail("timeout_error", $"the upstream sent nothing for {_streaming.IdleTimeout.TotalSeconds:0} s");
        }

        var outcome = translator.Finish(endedEarly);
        RecordTokens(recorder, translator, estimate);
        if (translator.LateFragments > 0)
        {
            Log.LateFragments(logger, translator.LateFragments);
        }

        if (outcome != StreamOutcome.Completed)
        {
            recorder.ErrorType = translator.FailureType ?? "api_error";
            return false;
        }

        var tokens = recorder.Tokens;
        var (cost, energy) = calculator.Compute(model, tokens, recorder.UpstreamSeconds);
        recorder.Cost = cost;
        recorder.Energy = energy;
        recorder.StopReason = translator.StopReason;
        sink.MessageDelta(translator.StopReason, translator.StopSequence, tokens, cost.ToWire(), energy.ToWire());
        sink.MessageStop();
        return true;
    }

    /// <summary>At most this much of a JSON answer is read (a completion is rarely more than a few hundred KB).</summary>
    private const int MaxJsonAnswer = 32 * 1024 * 1024;

    private static bool IsJson(HttpResponseMessage response) =>
        response.Content.Headers.ContentType?.MediaType is { } media
        && (media.Equals("application/json", StringComparison.OrdinalIgnoreCase) || media.EndsWith("+json", StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Asked for a stream, the upstream answered with one JSON body: it is read before anything is sent to the client,
    /// so an error body (<c>{"error":{…}}</c> with a 200) becomes the HTTP error it stands for, mapped like a real
    /// upstream error of that status (protocol.md §E: the status is decided before the stream is committed). Anything
    /// else is kept, in memory, as the response content for <see cref="PumpAsync"/>. False when an error was written
    /// or the client left.
    /// </summary>
    private async Task<bool> ReadJsonAnswerAsync(RequestContext context, HttpResponseMessage response, UpstreamContext upstreamContext, UsageRecorder recorder, CancellationTokenSource upstreamCts)
    {
        var http = context.Http;
        byte[] body;
        GatewayError? error = null;
        try
        {
            upstreamCts.CancelAfter(_streaming.IdleTimeout);
            await using var stream = await response.Content.ReadAsStreamAsync(upstreamCts.Token);
            using var buffer = await PooledBuffer.ReadToEndAsync(stream, MaxJsonAnswer, upstreamCts.Token);
            body = buffer?.WrittenSpan.ToArray() ?? [];
            if (buffer is null)
            {
                error = new GatewayError(502, "api_error", "the upstream's JSON answer is too large");
            }
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            recorder.Cancelled = true;
            recorder.Status = 499;
            return false;
        }
        catch (OperationCanceledException)
        {
            body = [];
            error = new GatewayError(504, "timeout_error", $"the upstream sent nothing for {_streaming.IdleTimeout.TotalSeconds:0} s");
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            Log.UpstreamBroke(logger, ex.GetType().Name);
            body = [];
            error = new GatewayError(502, "api_error", "the upstream connection was lost mid-response");
        }

        if (error is null && UpstreamErrors.FromErrorBody(body, upstreamContext) is { } upstreamError)
        {
            Log.ErrorBodyWith200(logger, context.RequestId, upstreamError.Status, upstreamError.Type);
            error = upstreamError;
        }

        if (error is not null)
        {
            // Nothing was generated: recorded as the HTTP error it stands for, and the next model tried if this one
            // falls back on it.
            if (!UpstreamCall.NoAnswer(recorder, error))
            {
                await ErrorWriter.WriteAsync(http, error);
            }

            return false;
        }

        var content = new ByteArrayContent(body);
        content.Headers.ContentType = response.Content.Headers.ContentType;
        response.Content.Dispose();
        response.Content = content;
        return true;
    }

    /// <summary>What the look at an upstream stream's first events keeps, at most (a role chunk is a few hundred bytes).</summary>
    internal const int MaxFirstEventBytes = 64 * 1024;

    /// <summary>
    /// Reads the upstream stream up to its first meaningful event (<see cref="FirstEvent"/>) before anything is sent to
    /// the client, so that an error the upstream sends before any output (vLLM's context-length error in a 200 stream,
    /// SGLang's overloaded scheduler) becomes the HTTP error it stands for, mapped like an upstream error of that status
    /// and, like one, falling back to the model's next model when the model falls back on it (protocol.md §E: the
    /// status is decided before the stream is committed). Otherwise the upstream body is given back, from its start,
    /// as the response content for <see cref="PumpAsync"/>; a failure of the upstream meanwhile is left for it to meet.
    /// <para>
    /// A streamed response does not wait long: after the ping interval (the time its first ping would be due) it is
    /// committed whatever the upstream has sent, so the client hears from the gateway as often as before and pings run
    /// through a long prefill. In the common case the first event is output and arrives with the first token: then
    /// message_start and the first delta leave in one write, when the first delta would have left anyway. A
    /// non-streamed response waits as long as the upstream keeps within the idle timeout. False when an error was
    /// written (or left for a fallback) or the client left.
    /// </para>
    /// </summary>
    private async Task<bool> ReadFirstEventAsync(RequestContext context, HttpResponseMessage response, PreparedCall call, UsageRecorder recorder, CancellationTokenSource upstreamCts)
    {
        var http = context.Http;
        Stream body;
        try
        {
            body = await response.Content.ReadAsStreamAsync(upstreamCts.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
        {
            // PumpAsync meets the same failure and reports it.
            return true;
        }

        // A streamed response's look is bounded by its wait; a non-streamed one's by the idle timeout, restarted by
        // every read as the translation loop's is.
        using var idle = call.Stream ? null : new IdleDeadline(upstreamCts, _streaming.IdleTimeout, time);
        var peeked = new RewindableReadStream(body, upstreamCts.Token, MaxFirstEventBytes, idle);
        GatewayError? error = null;
        using var deadline = call.Stream ? new CancellationTokenSource(TimeSpan.FromTicks(Math.Min(_streaming.PingInterval.Ticks, _streaming.IdleTimeout.Ticks)), time) : null;
        using (var look = CancellationTokenSource.CreateLinkedTokenSource(deadline?.Token ?? CancellationToken.None, upstreamCts.Token))
        {
            var fragments = new List<ToolCallFragment>(2);
            var upstreamContext = call.Upstream;
            var parser = SseParser.Create(peeked, (eventType, data) =>
            {
                var kind = FirstEvent.Classify(eventType, data, fragments, upstreamContext, out var found);
                return (Kind: kind, Error: found);
            });
            try
            {
                await foreach (var item in parser.EnumerateAsync(look.Token))
                {
                    if (item.Data.Kind != FirstEventKind.None)
                    {
                        error = item.Data.Error;
                        break;
                    }
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException)
            {
                // The wait is over (the stream is committed now), or the upstream failed: PumpAsync reads on from what
                // was kept and meets the failure, if any, as it would have without the look.
            }
        }

        if (error is not null)
        {
            // Nothing was generated: recorded as the HTTP error it stands for, and the next model tried if this one
            // falls back on it.
            Log.ErrorEventFirst(logger, context.RequestId, error.Status, error.Type);
            await peeked.DisposeAsync();
            if (!UpstreamCall.NoAnswer(recorder, error))
            {
                await ErrorWriter.WriteAsync(http, error);
            }

            return false;
        }

        if (http.RequestAborted.IsCancellationRequested)
        {
            // The client left before its response began: billed as PumpAsync bills a client that leaves before the
            // first output (the prompt at the estimate SendAsync recorded).
            await peeked.DisposeAsync();
            recorder.Cancelled = true;
            recorder.Status = 499;
            return false;
        }

        peeked.Rewind();
        var content = new StreamContent(peeked);
        content.Headers.ContentType = response.Content.Headers.ContentType;
        response.Content = content;
        return true;
    }

    private static async Task TranslateCompletionAsync(Stream body, OpenAIStreamTranslator translator, CancellationToken cancellationToken)
    {
        using var buffer = await PooledBuffer.ReadToEndAsync(body, MaxJsonAnswer, cancellationToken);
        if (buffer is null)
        {
            translator.Fail("api_error", "the upstream's JSON answer is too large");
            return;
        }

        if (CompletionAsChunk.Convert(buffer.WrittenMemory.Span) is not { } chunk)
        {
            translator.Fail("api_error", "upstream answered a streaming request with JSON that is not a chat completion");
            return;
        }

        translator.OnEvent("message", chunk);
        translator.OnEvent("message", "[DONE]"u8);
    }

    /// <summary>Upstream usage when it came (OpenAI counts cached tokens inside prompt_tokens); else the estimate.</summary>
    private static void RecordTokens(UsageRecorder recorder, OpenAIStreamTranslator translator, long estimate)
    {
        var u = translator.UpstreamUsage;
        if (u.Present && (u.PromptTokens > 0 || u.CompletionTokens > 0))
        {
            var prompt = u.PromptTokens > 0 ? u.PromptTokens : estimate;
            var cached = Math.Min(u.CachedTokens, prompt);
            var written = Math.Min(u.CacheWriteTokens, prompt - cached);
            recorder.Tokens = new TokenUsage(prompt - cached - written, cached, written, u.CompletionTokens, Math.Min(u.ReasoningTokens, u.CompletionTokens));
            recorder.Estimated = u.PromptTokens <= 0;
            return;
        }

        recorder.Tokens = new TokenUsage(estimate, 0, 0, translator.Fragments, 0);
        recorder.Estimated = true;
    }

    private async Task WriteEmptyAsync(RequestContext context, PreparedCall call, UsageRecorder recorder)
    {
        var http = context.Http;
        var usage = new TokenUsage(call.Estimate, 0, 0, 0, 0);
        recorder.Tokens = usage;
        recorder.Estimated = true;
        recorder.StopReason = "max_tokens";
        var (cost, energy) = calculator.Compute(recorder.Model!, usage, 0);
        recorder.Cost = cost;
        recorder.Energy = energy;
        var messageId = Ids.NewMessageId();
        if (call.Stream)
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
            await using var session = new StreamingSession(http, call.RequestedModel, cts, _streaming.IdleTimeout, _streaming.PingInterval, time);
            await session.StartAsync(http.RequestAborted);
            session.Writer.MessageStart(messageId, usage);
            session.Writer.MessageDelta("max_tokens", null, usage, cost.ToWire(), energy.ToWire());
            session.Writer.MessageStop();
            return;
        }

        var aggregator = new MessageAggregator();
        aggregator.MessageStart(messageId, usage);
        aggregator.MessageDelta("max_tokens", null, usage, cost.ToWire(), energy.ToWire());
        await WriteJsonAsync(http, aggregator.Build(call.RequestedModel));
    }

    internal static async Task WriteJsonAsync(HttpContext http, Message message)
    {
        http.Response.StatusCode = 200;
        http.Response.ContentType = "application/json";
        using var body = new PooledBuffer(8 * 1024);
        using (var writer = new Utf8JsonWriter(body, WireJson.WriterOptions))
        {
            JsonSerializer.Serialize(writer, message, AnthropicJsonContext.Default.Message);
        }

        http.Response.ContentLength = body.WrittenCount;
        await http.Response.Body.WriteAsync(body.WrittenMemory, http.RequestAborted);
    }

    internal static int StatusFor(string errorType) => errorType switch
    {
        "overloaded_error" => 529,
        "rate_limit_error" => 429,
        "timeout_error" => 504,
        "invalid_request_error" => 400,
        _ => 502,
    };

    private static HttpRequestMessage CreateRequest(Uri url, PooledBuffer payload, string? apiKey)
    {
        var message = new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new ReadOnlyMemoryContent(payload.WrittenMemory),
        };
        message.Content.Headers.ContentType = Json;
        message.Headers.Accept.Add(EventStream);
        UpstreamClient.SetBearer(message, apiKey);
        return message;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Upstream connection broke mid-response ({Error})")]
        public static partial void UpstreamBroke(ILogger logger, string error);

        [LoggerMessage(3, LogLevel.Warning, "{Count} tool-call argument fragments arrived after their block was closed and were dropped")]
        public static partial void LateFragments(ILogger logger, int count);

        [LoggerMessage(4, LogLevel.Warning, "Request {RequestId}: the upstream answered 200 with an error body, sent to the client as {Status} {ErrorType}")]
        public static partial void ErrorBodyWith200(ILogger logger, string requestId, int status, string errorType);

        [LoggerMessage(5, LogLevel.Warning, "Request {RequestId}: the upstream's stream began with an error, sent to the client as {Status} {ErrorType}")]
        public static partial void ErrorEventFirst(ILogger logger, string requestId, int status, string errorType);

        [LoggerMessage(2, LogLevel.Warning, "Request {RequestId}: {Count} tool inputs from the upstream were not valid JSON objects and were replaced by {{}}")]
        public static partial void InvalidToolInput(ILogger logger, string requestId, int count);
    }
}

using System.Buffers;
using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Gateway.Protocol;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Routing;
using Melious.Gateway.Streaming;
using Melious.Gateway.Tokens;
using Melious.Gateway.Translation;
using Melious.Gateway.Upstream;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// Serves a Messages request from an upstream that speaks Anthropic Messages natively (vLLM's and Ollama's
/// <c>/v1/messages</c>, or Anthropic itself). The body is forwarded byte for byte with only <c>model</c> replaced
/// (and blocks an Anthropic upstream would reject removed: thinking the gateway signed, blank assistant text; see
/// <see cref="WithoutRejectedBlocks"/>);
/// the response comes back event for event with only <c>message.model</c> restored and <c>billing_cost</c> /
/// <c>environment_impact</c> added, so events and fields the gateway does not know survive. Client headers are
/// not forwarded except <c>anthropic-version</c> and <c>anthropic-beta</c>.
/// </summary>
public sealed partial class AnthropicForwarder(UpstreamClient upstream, UsageCalculator calculator, IOptions<GatewayOptions> options, TimeProvider time, ILogger<AnthropicForwarder> logger)
{
    private const string DefaultVersion = "2023-06-01";
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    /// <summary>How a gateway thinking signature starts in the request JSON (the string's opening quote included).</summary>
    private static readonly byte[] GatewaySignatureStart = Encoding.UTF8.GetBytes("\"" + ThinkingSignature.Prefix);

    private readonly StreamingOptions _streaming = options.Value.Streaming;

    /// <summary>
    /// Takes what it needs from the request and the body synchronously, so neither is kept alive for the minutes a
    /// stream can last.
    /// </summary>
    internal Task ForwardAsync(RequestContext context, MessagesRequest request, PooledBuffer body, ModelRoute route, UsageRecorder recorder)
    {
        var model = route.Model;
        var source = body.WrittenSpan;
        var payload = ReplaceModel(WithoutRejectedBlocks(source) ?? source, model.Id);

        // The body goes upstream as the client sent it, so the estimate is counted while the upstream works.
        var upstreamContext = new UpstreamContext(request.Model!, model.Id, model.ApiKey, model.ContextWindow, InputEstimate.Deferred(request)) { Provider = model.Flavor };
        return RunAsync(context, payload, request.Stream == true, model, upstreamContext, recorder);
    }

    private async Task RunAsync(RequestContext context, PooledBuffer payload, bool stream, ModelEntry model, UpstreamContext upstreamContext, UsageRecorder recorder)
    {
        var http = context.Http;
        var version = http.Request.Headers["anthropic-version"].ToString();
        var betas = BetaFilter.Select(http.Request.Headers["anthropic-beta"], model.Betas);
        var beta = string.Join(",", betas);

        using var upstreamCts = CancellationTokenSource.CreateLinkedTokenSource(http.RequestAborted);
        HttpResponseMessage? sent;
        using (payload)
        {
            sent = await UpstreamCall.SendAsync(upstream, context, model, e => CreateRequest(MessagesUrl(e.BaseUrl), payload, e.ApiKey, version, beta), upstreamContext, upstreamCts, _streaming, recorder,
                error => BetaFilter.Explain(error, betas, model.Id));
        }

        using var response = sent;
        if (response is null)
        {
            return;
        }

        if (stream)
        {
            if (IsJson(response))
            {
                // Asked for a stream, got one JSON message (or an error): stream the message as its events.
                await JsonAnswerAsync(context, response, recorder, model, upstreamContext, upstreamCts);
                return;
            }

            await StreamAsync(context, response, recorder, model, upstreamContext, upstreamCts);
            return;
        }

        await NonStreamingAsync(context, upstreamContext, response, recorder, model, upstreamCts);
    }

    private async Task StreamAsync(RequestContext context, HttpResponseMessage response, UsageRecorder recorder, ModelEntry model, UpstreamContext upstreamContext, CancellationTokenSource upstreamCts)
    {
        var http = context.Http;
        var cancellationToken = http.RequestAborted;
        await using var session = new StreamingSession(http, upstreamContext.RequestedModel, upstreamCts, _streaming.IdleTimeout, _streaming.PingInterval, time);
        await session.StartAsync(cancellationToken);
        var state = new PassThroughState(upstreamContext.RequestedModel, upstreamContext.EstimatedInputTokens, upstreamContext);
        var output = http.Response.BodyWriter;
        string? failure = null;
        try
        {
            await using var raw = await response.Content.ReadAsStreamAsync(upstreamCts.Token);
            await using var observed = new ObservedReadStream(raw, session);
            var parser = SseParser.Create(observed, (eventType, data) =>
            {
                Relay(eventType, data, state, session.Writer, output, model, recorder);
                return 0;
            });
            await foreach (var _ in parser.EnumerateAsync(upstreamCts.Token))
            {
                if (recorder.TtftMs is null && state.Deltas > 0)
                {
                    recorder.MarkFirstOutput();
                }

                recorder.StreamedOutput(state.RunningOutput);

                if (state.Finished || session.ClientGone)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested || session.ClientGone)
        {
            recorder.Cancelled = true;
        }
        catch (OperationCanceledException)
        {
            failure = $"the upstream sent nothing for {_streaming.IdleTimeout.TotalSeconds:0} s";
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            failure = "the upstream connection was lost mid-response";
            Log.UpstreamBroke(logger, ex.GetType().Name);
        }

        Finish(state, session, recorder, failure);
    }

    /// <summary>Records what the stream carried; a stream that did not finish ends with an error event.</summary>
    private static void Finish(PassThroughState state, StreamingSession session, UsageRecorder recorder, string? failure)
    {
        recorder.Status = 200;
        recorder.Tokens = state.Usage();
        recorder.Estimated = !state.SawUsage;
        recorder.StopReason = state.StopReason;
        if (session.ClientGone)
        {
            recorder.Cancelled = true;
        }

        if (recorder.Cancelled || state.Failed)
        {
            recorder.ErrorType = state.Failed ? state.ErrorType ?? "api_error" : null;
            return;
        }

        if (!state.Finished)
        {
            // Never a made-up end: a stream without message_stop is an error.
            session.Writer.Error("api_error", failure ?? "the upstream stream ended unexpectedly");
            recorder.ErrorType = "api_error";
        }
    }

    /// <summary>
    /// Copies one upstream event to the client, rewriting only what the gateway owns. An event the gateway has to
    /// rewrite but cannot read (malformed JSON, <c>"stop_reason":5</c>) ends the stream with an <c>error</c> event, as
    /// every other failure does, never with an exception that leaves a started stream without a terminal event.
    /// </summary>
    private void Relay(string eventType, ReadOnlySpan<byte> data, PassThroughState state, SseMessageWriter writer, IBufferWriter<byte> output, ModelEntry model, UsageRecorder recorder)
    {
        if (state.Finished)
        {
            return;
        }

        try
        {
            RelayEvent(eventType, data, state, writer, output, model, recorder);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            Log.UnreadableEvent(logger, eventType, ex.GetType().Name);
            state.Failed = true;
            state.Finished = true;
            state.ErrorType = "api_error";
            writer.Error("api_error", $"the gateway could not read the upstream's {eventType} event");
        }

        writer.MarkPending();
    }

    private void RelayEvent(string eventType, ReadOnlySpan<byte> data, PassThroughState state, SseMessageWriter writer, IBufferWriter<byte> output, ModelEntry model, UsageRecorder recorder)
    {
        switch (eventType)
        {
            case "message_start":
                var start = ParseObject(data);
                if (start["message"] is JsonObject message)
                {
                    message["model"] = state.Model;
                    state.Read(message["usage"] as JsonObject);
                }

                WriteEvent(output, eventType, Encoding.UTF8.GetBytes(start.ToJsonString(WireJson.NodeOptions)));
                writer.MarkStarted();
                break;
            case "message_delta":
                var delta = ParseObject(data);
                state.Read(delta["usage"] as JsonObject);
                state.StopReason = delta["delta"]?["stop_reason"]?.GetValue<string>() ?? state.StopReason;
                var (cost, energy) = calculator.Compute(model, state.Usage(), recorder.UpstreamSeconds);
                recorder.Cost = cost;
                recorder.Energy = energy;
                delta["billing_cost"] = JsonSerializer.SerializeToNode(cost.ToWire(), AnthropicJsonContext.Default.BillingCost);
                delta["environment_impact"] = JsonSerializer.SerializeToNode(energy.ToWire(), AnthropicJsonContext.Default.EnvironmentImpact);
                WriteEvent(output, eventType, Encoding.UTF8.GetBytes(delta.ToJsonString(WireJson.NodeOptions)));
                break;
            case "content_block_delta":
                state.Deltas++;
                WriteEvent(output, eventType, data);
                break;
            case "message_stop":
                state.Finished = true;
                WriteEvent(output, eventType, data);
                break;
            case "error":
                state.Failed = true;
                state.Finished = true;
                WriteEvent(output, eventType, SanitizedError(data, state));
                break;
            default:
                WriteEvent(output, eventType, data);
                break;
        }
    }

    private static JsonObject ParseObject(ReadOnlySpan<byte> data) =>
        JsonNode.Parse(data) as JsonObject ?? throw new JsonException("the event's data is not a JSON object");

    /// <summary>An upstream error event with its message cleaned of the upstream's key and model name.</summary>
    private static byte[] SanitizedError(ReadOnlySpan<byte> data, PassThroughState state)
    {
        JsonObject error;
        try
        {
            error = JsonNode.Parse(data) as JsonObject ?? new JsonObject();
        }
        catch (JsonException)
        {
            error = new JsonObject { ["type"] = "error", ["error"] = new JsonObject { ["type"] = "api_error", ["message"] = System.Text.Encoding.UTF8.GetString(data) } };
        }

        var detail = error["error"] as JsonObject ?? new JsonObject { ["type"] = "api_error" };
        var message = detail["message"]?.GetValueKind() == JsonValueKind.String ? detail["message"]!.GetValue<string>() : null;
        detail["message"] = UpstreamErrors.Sanitize(message, state.Upstream) ?? "the upstream reported an error";
        error["type"] = "error";
        error["error"] = detail;
        state.ErrorType = detail["type"]?.GetValueKind() == JsonValueKind.String ? detail["type"]!.GetValue<string>() : "api_error";
        return Encoding.UTF8.GetBytes(error.ToJsonString(WireJson.NodeOptions));
    }

    private static void WriteEvent(IBufferWriter<byte> output, string eventType, ReadOnlySpan<byte> data)
    {
        output.Write("event: "u8);
        output.Write(Encoding.UTF8.GetBytes(eventType));
        // A multi-line data field must stay multi-line to keep the SSE framing.
        foreach (var line in data.Split((byte)'\n'))
        {
            output.Write("\ndata: "u8);
            output.Write(data[line]);
        }

        output.Write("\n\n"u8);
    }

    private async Task NonStreamingAsync(RequestContext context, UpstreamContext upstreamContext, HttpResponseMessage response, UsageRecorder recorder, ModelEntry model, CancellationTokenSource upstreamCts)
    {
        var http = context.Http;
        JsonObject message;
        try
        {
            upstreamCts.CancelAfter(_streaming.IdleTimeout);
            await using var stream = await response.Content.ReadAsStreamAsync(upstreamCts.Token);
            message = (await JsonNode.ParseAsync(stream, cancellationToken: upstreamCts.Token))!.AsObject();
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            recorder.Cancelled = true;
            recorder.Status = 499;
            return;
        }
        catch (Exception ex) when (ex is JsonException or HttpRequestException or IOException or OperationCanceledException or InvalidOperationException)
        {
            recorder.Status = 502;
            recorder.ErrorType = "api_error";
            await ErrorWriter.WriteAsync(http, 502, "api_error", "the upstream response could not be read");
            return;
        }

        if (MessageAsEvents.IsError(message))
        {
            // An error body that came with a 2xx status.
            await NoAnswerAsync(http, UpstreamErrorBody(message, upstreamContext), recorder);
            return;
        }

        var requestedModel = upstreamContext.RequestedModel;
        var state = new PassThroughState(requestedModel, 0, null);
        state.Read(message["usage"] as JsonObject);
        message["model"] = requestedModel;
        var tokens = state.Usage();
        var (cost, energy) = calculator.Compute(model, tokens, recorder.UpstreamSeconds);
        message["billing_cost"] = JsonSerializer.SerializeToNode(cost.ToWire(), AnthropicJsonContext.Default.BillingCost);
        message["environment_impact"] = JsonSerializer.SerializeToNode(energy.ToWire(), AnthropicJsonContext.Default.EnvironmentImpact);
        recorder.Tokens = tokens;
        recorder.Estimated = !state.SawUsage;
        recorder.Cost = cost;
        recorder.Energy = energy;
        recorder.StopReason = message["stop_reason"]?.GetValueKind() == JsonValueKind.String ? message["stop_reason"]!.GetValue<string>() : null;
        recorder.Status = 200;
        http.Response.StatusCode = 200;
        http.Response.ContentType = "application/json";
        var bytes = Encoding.UTF8.GetBytes(message.ToJsonString(WireJson.NodeOptions));
        http.Response.ContentLength = bytes.Length;
        await http.Response.Body.WriteAsync(bytes, http.RequestAborted);
    }

    /// <summary>Copies the request with only the top-level <c>model</c> value replaced.</summary>
    internal static PooledBuffer ReplaceModel(ReadOnlySpan<byte> body, string model)
    {
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 256 });
        reader.Read();
        long start = -1;
        long end = -1;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isModel = reader.CurrentDepth == 1 && reader.ValueTextEquals("model"u8);
            reader.Read();
            if (isModel)
            {
                start = reader.TokenStartIndex;
                reader.Skip();
                end = reader.BytesConsumed;
                break;
            }

            reader.Skip();
        }

        var buffer = new PooledBuffer(body.Length + model.Length + 16);
        if (start < 0)
        {
            buffer.Write(body);
            return buffer;
        }

        buffer.Write(body[..(int)start]);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStringValue(model);
        }

        buffer.Write(body[(int)end..]);
        return buffer;
    }

    /// <summary>
    /// The request without the blocks an Anthropic upstream rejects that Claude Code echoes back, or null when it has
    /// none, which cheap scans decide: thinking blocks the gateway itself signed (<see cref="ThinkingSignature"/>:
    /// reasoning an OpenAI upstream produced; "Invalid signature in thinking block", protocol.md §E), found by one
    /// vectorized scan for <c>"melious.</c>, and assistant text blocks that are empty or whitespace only ("text
    /// content blocks must contain non-whitespace text", claude-code.md §9.8; older gateways and other upstreams
    /// sent them), found by <see cref="MayHaveBlankText"/>. An assistant message left with no content is dropped
    /// (Anthropic joins the consecutive turns around it). Any other request is forwarded byte for byte.
    /// </summary>
    internal static byte[]? WithoutRejectedBlocks(ReadOnlySpan<byte> body)
    {
        if (body.IndexOf(GatewaySignatureStart) < 0 && !MayHaveBlankText(body))
        {
            return null;
        }

        try
        {
            if (JsonNode.Parse(body, documentOptions: new JsonDocumentOptions { MaxDepth = 256 }) is not JsonObject root || root["messages"] is not JsonArray messages)
            {
                return null;
            }

            var removed = false;
            for (var m = messages.Count - 1; m >= 0; m--)
            {
                if (messages[m] is not JsonObject message || message["content"] is not JsonArray content)
                {
                    continue;
                }

                var assistant = IsString(message["role"], out var role) && role == "assistant";
                var blocks = content.Count;
                for (var b = content.Count - 1; b >= 0; b--)
                {
                    if (content[b] is not JsonObject block || !IsString(block["type"], out var type))
                    {
                        continue;
                    }

                    if ((type == "thinking" && IsString(block["signature"], out var signature) && signature.StartsWith(ThinkingSignature.Prefix, StringComparison.Ordinal))
                        || (assistant && type == "text" && block["text"] is JsonValue text && text.GetValueKind() == JsonValueKind.String && string.IsNullOrWhiteSpace(text.GetValue<string>())))
                    {
                        content.RemoveAt(b);
                        removed = true;
                    }
                }

                if (content.Count == 0 && blocks > 0)
                {
                    messages.RemoveAt(m);
                }
            }

            return removed ? Encoding.UTF8.GetBytes(root.ToJsonString(WireJson.NodeOptions)) : null;
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException or InvalidOperationException)
        {
            // Not something the gateway can rewrite (it was parsed once already, so this should not happen): as sent.
            return null;
        }

        static bool IsString(JsonNode? node, out string value)
        {
            value = node is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : "";
            return value.Length > 0;
        }
    }

    /// <summary>
    /// True when some <c>"text"</c> member of the body has a value that is empty or whitespace only, written as is
    /// or escaped (<c>""</c>, <c>" "</c>, <c>"\n\n"</c>, <c>"\u00a0"</c>): a vectorized search for the member name,
    /// and for each hit a look at the start of its value, which in a real text block stops at the first letter.
    /// Where the member sits (a text block of an assistant message, or a tool's input) is for the parse to decide.
    /// </summary>
    internal static bool MayHaveBlankText(ReadOnlySpan<byte> body)
    {
        var rest = body;
        while (true)
        {
            var at = rest.IndexOf("\"text\""u8);
            if (at < 0)
            {
                return false;
            }

            rest = rest[(at + 6)..];
            var i = SkipJsonWhitespace(rest, 0);
            if (i < rest.Length && rest[i] == ':')
            {
                i = SkipJsonWhitespace(rest, i + 1);
                if (i < rest.Length && rest[i] == '"' && IsBlankString(rest[(i + 1)..]))
                {
                    return true;
                }
            }
        }

        static int SkipJsonWhitespace(ReadOnlySpan<byte> span, int i)
        {
            while (i < span.Length && span[i] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
            {
                i++;
            }

            return i;
        }

        // The string's content up to its closing quote holds only whitespace (char.IsWhiteSpace, as the parse checks).
        static bool IsBlankString(ReadOnlySpan<byte> value)
        {
            var i = 0;
            while (i < value.Length)
            {
                var b = value[i];
                if (b == '"')
                {
                    return true;
                }

                if (b == ' ')
                {
                    i++;
                }
                else if (b == '\\' && i + 1 < value.Length)
                {
                    switch (value[i + 1])
                    {
                        case (byte)'n' or (byte)'r' or (byte)'t' or (byte)'f':
                            i += 2;
                            break;
                        case (byte)'u' when i + 6 <= value.Length
                            && ushort.TryParse(value.Slice(i + 2, 4), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var code)
                            && char.IsWhiteSpace((char)code):
                            i += 6;
                            break;
                        default:
                            return false;
                    }
                }
                else if (b >= 0x80 && Rune.DecodeFromUtf8(value[i..], out var rune, out var length) == OperationStatus.Done && Rune.IsWhiteSpace(rune))
                {
                    i += length;
                }
                else
                {
                    return false;
                }
            }

            return false;
        }
    }

    private static Uri MessagesUrl(string baseUrl) => new(baseUrl.EndsWith("/v1", StringComparison.Ordinal) ? baseUrl + "/messages" : baseUrl + "/v1/messages");

    private static HttpRequestMessage CreateRequest(Uri url, PooledBuffer payload, string? apiKey, string version, string beta)
    {
        var message = new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new ReadOnlyMemoryContent(payload.WrittenMemory),
        };
        message.Content.Headers.ContentType = Json;
        message.Headers.TryAddWithoutValidation("anthropic-version", string.IsNullOrWhiteSpace(version) ? DefaultVersion : version);
        if (!string.IsNullOrWhiteSpace(beta))
        {
            message.Headers.TryAddWithoutValidation("anthropic-beta", beta);
        }

        if (!string.IsNullOrEmpty(apiKey))
        {
            message.Headers.TryAddWithoutValidation("x-api-key", apiKey);
        }

        return message;
    }

    /// <summary>Usage as the upstream reports it (cumulative: later values overwrite earlier ones).</summary>
    private sealed class PassThroughState(string model, long estimate, UpstreamContext? upstream)
    {
        public UpstreamContext Upstream { get; } = upstream ?? new UpstreamContext(model, model, null, 0, estimate);

        public string? ErrorType { get; set; }

        private long? _input;
        private long? _cacheRead;
        private long? _cacheWrite;
        private long? _output;
        private long? _thinking;

        public string Model { get; } = model;

        public int Deltas { get; set; }

        public bool Finished { get; set; }

        public bool Failed { get; set; }

        public bool SawUsage { get; private set; }

        public string? StopReason { get; set; }

        public void Read(JsonObject? usage)
        {
            if (usage is null)
            {
                return;
            }

            SawUsage = true;
            _input = Long(usage, "input_tokens") ?? _input;
            _cacheRead = Long(usage, "cache_read_input_tokens") ?? _cacheRead;
            _cacheWrite = Long(usage, "cache_creation_input_tokens") ?? _cacheWrite;
            _output = Long(usage, "output_tokens") ?? _output;
            _thinking = (usage["output_tokens_details"] as JsonObject) is { } details ? Long(details, "thinking_tokens") ?? _thinking : _thinking;
        }

        /// <summary>Output so far: the upstream's running count when it sends one, else one token per delta.</summary>
        public long RunningOutput => Math.Max(_output ?? 0, Deltas);

        public TokenUsage Usage() => new(
            _input ?? estimate,
            _cacheRead ?? 0,
            _cacheWrite ?? 0,
            _output is > 0 ? _output.Value : Deltas,
            _thinking ?? 0);

        private static long? Long(JsonObject node, string name) =>
            node[name] is JsonValue value && value.TryGetValue<long>(out var result) ? Math.Max(0, result) : null;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Anthropic upstream connection broke mid-response ({Error})")]
        public static partial void UpstreamBroke(ILogger logger, string error);

        [LoggerMessage(2, LogLevel.Warning, "Anthropic upstream sent a {EventType} event the gateway could not read ({Error}); the stream ends with an error event")]
        public static partial void UnreadableEvent(ILogger logger, string eventType, string error);
    }
}

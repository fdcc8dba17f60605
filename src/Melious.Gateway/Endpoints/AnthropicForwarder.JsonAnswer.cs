using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Gateway.Protocol;
using Melious.Gateway.Routing;
using Melious.Gateway.Streaming;
using Melious.Gateway.Translation;
using Melious.Gateway.Upstream;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// An Anthropic-native upstream that answers a <c>stream: true</c> request with one <c>application/json</c> body
/// (docs/upstream-compat.md "A JSON answer to a stream request"): a message is streamed to the client as its events
/// (<see cref="MessageAsEvents"/>) through the same relay as a real stream, so the model is restored and usage,
/// cost and energy come from the message's usage; an error body becomes the matching HTTP error; anything else a 502.
/// </summary>
public sealed partial class AnthropicForwarder
{
    /// <summary>At most this much of a JSON answer is read (a message is rarely more than a few hundred KB).</summary>
    private const int MaxJsonAnswer = 32 * 1024 * 1024;

    private static bool IsJson(HttpResponseMessage response) =>
        response.Content.Headers.ContentType?.MediaType is { } media
        && (media.Equals("application/json", StringComparison.OrdinalIgnoreCase) || media.EndsWith("+json", StringComparison.OrdinalIgnoreCase));

    private async Task JsonAnswerAsync(RequestContext context, HttpResponseMessage response, UsageRecorder recorder, ModelEntry model, UpstreamContext upstreamContext, CancellationTokenSource upstreamCts)
    {
        var http = context.Http;
        JsonObject? root = null;
        var tooLarge = true;
        try
        {
            upstreamCts.CancelAfter(_streaming.IdleTimeout);
            await using var body = await response.Content.ReadAsStreamAsync(upstreamCts.Token);
            using var buffer = await PooledBuffer.ReadToEndAsync(body, MaxJsonAnswer, upstreamCts.Token);
            if (buffer is not null)
            {
                tooLarge = false;
                root = JsonNode.Parse(buffer.WrittenMemory.Span, documentOptions: new JsonDocumentOptions { MaxDepth = 256 }) as JsonObject;
            }
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            recorder.Cancelled = true;
            recorder.Status = 499;
            return;
        }
        catch (Exception ex) when (ex is JsonException or HttpRequestException or IOException or OperationCanceledException)
        {
            tooLarge = false;
            root = null;
        }

        if (root is not null && MessageAsEvents.IsError(root))
        {
            await NoAnswerAsync(http, UpstreamErrorBody(root, upstreamContext), recorder);
            return;
        }

        if (root is null || !MessageAsEvents.IsMessage(root))
        {
            var problem = tooLarge ? "the upstream's JSON answer is too large" : "the upstream answered a streaming request with JSON that is not a message";
            await NoAnswerAsync(http, new GatewayError(502, "api_error", problem), recorder);
            return;
        }

        await using var session = new StreamingSession(http, upstreamContext.RequestedModel, upstreamCts, _streaming.IdleTimeout, _streaming.PingInterval, time);
        await session.StartAsync(http.RequestAborted);
        var state = new PassThroughState(upstreamContext.RequestedModel, upstreamContext.EstimatedInputTokens, upstreamContext);
        foreach (var (name, data) in MessageAsEvents.Convert(root))
        {
            Relay(name, Encoding.UTF8.GetBytes(data.ToJsonString(WireJson.NodeOptions)), state, session.Writer, http.Response.BodyWriter, model, recorder);
            if (recorder.TtftMs is null && state.Deltas > 0)
            {
                recorder.MarkFirstOutput();
            }
        }

        await session.FlushAsync();
        Finish(state, session, recorder, null);
    }

    /// <summary>Nothing was generated: recorded, not billed, as the error; the next model tried if this one falls back on it.</summary>
    private static Task NoAnswerAsync(Microsoft.AspNetCore.Http.HttpContext http, GatewayError error, UsageRecorder recorder) =>
        UpstreamCall.NoAnswer(recorder, error) ? Task.CompletedTask : ErrorWriter.WriteAsync(http, error);

    /// <summary>
    /// The client error for an error body that came with a 2xx: an Anthropic <c>{"type":"error","error":{"type":…}}</c>
    /// maps by its type, an OpenAI-style <c>{"error":{"code":…}}</c> by its code, both as the same status would
    /// (<see cref="UpstreamErrors.FromErrorBody(string?, string?, string?, UpstreamContext)"/>).
    /// </summary>
    internal static GatewayError UpstreamErrorBody(JsonObject root, UpstreamContext context)
    {
        string? type = null;
        string? message = null;
        string? code = null;
        switch (root["error"])
        {
            case JsonObject detail:
                type = Text(detail["type"]);
                message = Text(detail["message"]);
                code = detail["code"] is JsonValue v && v.GetValueKind() is JsonValueKind.Number or JsonValueKind.String
                    ? Text(v) ?? v.ToJsonString()
                    : null;
                break;
            case JsonValue value:
                message = Text(value);
                break;
        }

        message ??= Text(root["message"]);
        return UpstreamErrors.FromErrorBody(type, code, message, context);
    }

    private static string? Text(JsonNode? node) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;
}

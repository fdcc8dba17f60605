using Melious.Gateway.Routing;
using Melious.Gateway.Upstream;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Endpoints;

/// <summary>The part of a forward both protocols share: send, wait for headers, or answer with the mapped error.</summary>
internal static class UpstreamCall
{
    /// <summary>
    /// Sends the request to one of the model's endpoints with the headers timeout armed on <paramref name="upstreamCts"/>.
    /// On failure the Anthropic error is written and recorded and null comes back, unless the failure is one the
    /// model falls back on (<see cref="UsageRecorder.FallbackOn"/>): then nothing is written, the failure is left in
    /// <see cref="UsageRecorder.PendingFallback"/> for the endpoint to try the next model, and null comes back. On
    /// success the prompt starts being billed (at the estimate until the upstream reports usage) and the response is
    /// the caller's to read and dispose.
    /// </summary>
    public static async Task<HttpResponseMessage?> SendAsync(
        UpstreamClient upstream,
        RequestContext context,
        ModelEntry model,
        Func<UpstreamEndpoint, HttpRequestMessage> createRequest,
        UpstreamContext upstreamContext,
        CancellationTokenSource upstreamCts,
        StreamingOptions streaming,
        UsageRecorder recorder,
        Func<GatewayError, GatewayError>? explain = null)
    {
        upstreamCts.CancelAfter(streaming.HeadersTimeout);
        recorder.UpstreamStartTimestamp = context.Time.GetTimestamp();
        UpstreamResult result;
        try
        {
            var sending = upstream.SendAsync(createRequest, model.Pool, recorder.AffinityKey, upstreamContext, upstreamCts.Token);

            // The request is on the wire (or its connection is being opened): count a deferred estimate now, while
            // the upstream works (see InputEstimate).
            _ = upstreamContext.EstimatedInputTokens;
            result = await sending;
        }
        catch (OperationCanceledException) when (!context.Http.RequestAborted.IsCancellationRequested)
        {
            result = new UpstreamResult(null, new GatewayError(504, "timeout_error", $"the upstream sent no response within {streaming.HeadersTimeout.TotalSeconds:0} s"), 1)
            {
                Trigger = FallbackTriggers.ServerError,
            };
        }

        recorder.Endpoint = result.Endpoint;
        if (result.Error is { } error)
        {
            error = explain?.Invoke(error) ?? error;
            recorder.Status = error.Status;
            recorder.ErrorType = error.Type;
            if ((result.Trigger & recorder.FallbackOn) != 0)
            {
                recorder.PendingFallback = (error, result.Trigger);
                return null;
            }

            await ErrorWriter.WriteAsync(context.Http, error);
            return null;
        }

        recorder.Lease = result.Lease;
        recorder.Tokens = new TokenUsage(upstreamContext.EstimatedInputTokens, 0, 0, 0, 0);
        recorder.Estimated = true;
        return result.Response;
    }

    /// <summary>
    /// The upstream answered 2xx, but with no answer: an error body, or a JSON answer it did not finish. Nothing was
    /// generated, so nothing is billed, and the request is recorded as the error. True when the model falls back on
    /// that error, as it would on the same HTTP status: then the caller writes nothing, the failure is left in
    /// <see cref="UsageRecorder.PendingFallback"/> and the attempt's endpoint is released.
    /// </summary>
    public static bool NoAnswer(UsageRecorder recorder, GatewayError error)
    {
        recorder.Tokens = default;
        recorder.Status = error.Status;
        recorder.ErrorType = error.Type;
        var trigger = UpstreamClient.TriggerFor(error.Status, error);
        if ((trigger & recorder.FallbackOn) == 0)
        {
            return false;
        }

        recorder.Lease?.Fail(error.Type);
        recorder.Lease = null;
        recorder.PendingFallback = (error, trigger);
        return true;
    }
}

using Melious.Gateway.Upstream;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Endpoints;

/// <summary>The part of a forward both protocols share: send, wait for headers, or answer with the mapped error.</summary>
internal static class UpstreamCall
{
    /// <summary>
    /// Sends the request with the headers timeout armed on <paramref name="upstreamCts"/>. On failure the Anthropic
    /// error is written and recorded and null comes back; on success the prompt starts being billed (at the estimate
    /// until the upstream reports usage) and the response is the caller's to read and dispose.
    /// </summary>
    public static async Task<HttpResponseMessage?> SendAsync(
        UpstreamClient upstream,
        RequestContext context,
        Func<HttpRequestMessage> createRequest,
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
            var sending = upstream.SendAsync(createRequest, upstreamContext, upstreamCts.Token);

            // The request is on the wire (or its connection is being opened): count a deferred estimate now, while
            // the upstream works (see InputEstimate).
            _ = upstreamContext.EstimatedInputTokens;
            result = await sending;
        }
        catch (OperationCanceledException) when (!context.Http.RequestAborted.IsCancellationRequested)
        {
            result = new UpstreamResult(null, new GatewayError(504, "timeout_error", $"the upstream sent no response within {streaming.HeadersTimeout.TotalSeconds:0} s"), 1);
        }

        if (result.Error is { } error)
        {
            error = explain?.Invoke(error) ?? error;
            recorder.Status = error.Status;
            recorder.ErrorType = error.Type;
            await ErrorWriter.WriteAsync(context.Http, error);
            return null;
        }

        recorder.Tokens = new TokenUsage(upstreamContext.EstimatedInputTokens, 0, 0, 0, 0);
        recorder.Estimated = true;
        return result.Response;
    }
}

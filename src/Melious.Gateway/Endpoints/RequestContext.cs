using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.Endpoints;

/// <summary>Per-request identity and clock. Creating one stamps the <c>request-id</c> response header.</summary>
internal sealed class RequestContext
{
    public const string RequestIdHeader = "request-id";

    private RequestContext(HttpContext http, TimeProvider time)
    {
        Http = http;
        Time = time;
        RequestId = Ids.NewRequestId();
        StartTimestamp = time.GetTimestamp();
        StartedAt = time.GetUtcNow();
        http.Response.Headers[RequestIdHeader] = RequestId;
    }

    public HttpContext Http { get; }

    public TimeProvider Time { get; }

    public string RequestId { get; }

    public long StartTimestamp { get; }

    public DateTimeOffset StartedAt { get; }

    public long ElapsedMs => (long)Time.GetElapsedTime(StartTimestamp).TotalMilliseconds;

    public static RequestContext Start(HttpContext http, TimeProvider time) => new(http, time);

    /// <summary>The id of the request, creating the context (and header) if an endpoint has not yet.</summary>
    public static string EnsureRequestId(HttpContext http)
    {
        if (http.Response.Headers.TryGetValue(RequestIdHeader, out var existing) && existing.Count > 0)
        {
            return existing[0]!;
        }

        var id = Ids.NewRequestId();
        if (!http.Response.HasStarted)
        {
            http.Response.Headers[RequestIdHeader] = id;
        }

        return id;
    }
}

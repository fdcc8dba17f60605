using Melious.Bench;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Melious.LoadBench;

public enum Target
{
    Gateway,
    Direct,
    CountTokens,
}

/// <summary>One finished request: times in Stopwatch ticks from send, and the error (null when valid).</summary>
public readonly record struct Sample(long TtftTicks, long TotalTicks, string? Error);

/// <summary>
/// Sends the benchmark's requests: Anthropic streaming requests to the gateway (each response validated by
/// <see cref="AnthropicStreamValidator"/>), the equivalent OpenAI request straight to the upstream, and count_tokens.
/// One connection pool per target, no limit on connections, HTTP/1.1, no proxy, no decompression.
/// </summary>
public sealed class LoadClient : IDisposable
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    private readonly HttpMessageInvoker _gateway;
    private readonly HttpMessageInvoker _direct;
    private readonly Uri _messagesUri;
    private readonly Uri _countTokensUri;
    private readonly Uri _directUri;
    private readonly string _apiKey;

    public LoadClient(string gatewayBase, string upstreamBase, string apiKey)
    {
        _gateway = new HttpMessageInvoker(NewHandler(), disposeHandler: true);
        _direct = new HttpMessageInvoker(NewHandler(), disposeHandler: true);
        _messagesUri = new Uri(gatewayBase + "/v1/messages?beta=true");
        _countTokensUri = new Uri(gatewayBase + "/v1/messages/count_tokens?beta=true");
        _directUri = new Uri(upstreamBase + "/v1/chat/completions");
        _apiKey = apiKey;
    }

    public byte[] MessagesBody { get; set; } = [];

    public byte[] CountTokensBody { get; set; } = [];

    /// <summary>The OpenAI body the gateway sent upstream for <see cref="MessagesBody"/> (captured from the upstream).</summary>
    public byte[] DirectBody { get; set; } = [];

    public ScenarioPayload Expected { get; set; } = null!;

    private static SocketsHttpHandler NewHandler() => new()
    {
        MaxConnectionsPerServer = int.MaxValue,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
        AutomaticDecompression = DecompressionMethods.None,
        UseProxy = false,
        UseCookies = false,
        AllowAutoRedirect = false,
        ConnectTimeout = TimeSpan.FromSeconds(10),
    };

    /// <summary>Per-worker state: a reusable SSE buffer and validators.</summary>
    public sealed class Worker
    {
        public SseReader Reader { get; } = new();

        public AnthropicStreamValidator Anthropic { get; } = new();

        public OpenAIStreamReader OpenAI { get; } = new();

        public byte[] Scratch { get; } = new byte[8 * 1024];
    }

    public Task<Sample> SendAsync(Target target, Worker worker, CancellationToken cancellationToken) => target switch
    {
        Target.Gateway => GatewayAsync(worker, _messagesUri, MessagesBody, cancellationToken),
        Target.Direct => DirectAsync(worker, cancellationToken),
        _ => CountTokensAsync(worker, CountTokensBody, cancellationToken),
    };

    public HttpRequestMessage NewGatewayRequest(Uri uri, byte[] body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new ReadOnlyMemoryContent(body) };
        request.Content.Headers.ContentType = Json;
        var h = request.Headers;
        h.TryAddWithoutValidation("Accept", "application/json");
        h.TryAddWithoutValidation("User-Agent", "claude-cli/2.1.197 (external, sdk-cli)");
        h.TryAddWithoutValidation("X-Claude-Code-Session-Id", Melious.Bench.BenchRequests.SessionId);
        h.TryAddWithoutValidation("X-Stainless-Lang", "js");
        h.TryAddWithoutValidation("X-Stainless-Package-Version", "0.94.0");
        h.TryAddWithoutValidation("X-Stainless-Retry-Count", "0");
        h.TryAddWithoutValidation("X-Stainless-Timeout", "600");
        h.TryAddWithoutValidation("anthropic-beta", string.Join(',', Melious.Bench.BenchRequests.AnthropicBeta));
        h.TryAddWithoutValidation("anthropic-dangerous-direct-browser-access", "true");
        h.TryAddWithoutValidation("anthropic-version", "2023-06-01");
        h.TryAddWithoutValidation("x-app", "cli");
        h.TryAddWithoutValidation("x-api-key", _apiKey);
        return request;
    }

    /// <summary>One streamed Messages request through the gateway, validated event by event.</summary>
    public async Task<Sample> GatewayAsync(Worker worker, Uri uri, byte[] body, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var request = NewGatewayRequest(uri, body);
            using var response = await _gateway.SendAsync(request, cancellationToken);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return new Sample(0, Stopwatch.GetTimestamp() - start, $"HTTP {(int)response.StatusCode}: {await Snippet(response, cancellationToken)}");
            }

            if (response.Content.Headers.ContentType?.MediaType != "text/event-stream")
            {
                return new Sample(0, Stopwatch.GetTimestamp() - start, "content-type " + response.Content.Headers.ContentType);
            }

            worker.Anthropic.Reset(Expected);
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            await worker.Reader.ReadAllAsync(stream, worker.Anthropic, cancellationToken);
            var end = Stopwatch.GetTimestamp();
            var error = worker.Anthropic.Complete();
            var first = worker.Anthropic.FirstDeltaTimestamp;
            return new Sample(first == 0 ? 0 : first - start, end - start, error);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return new Sample(0, Stopwatch.GetTimestamp() - start, ex.GetType().Name + ": " + ex.Message);
        }
    }

    /// <summary>The same request as the gateway sends it, straight to the upstream (the baseline).</summary>
    public async Task<Sample> DirectAsync(Worker worker, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, _directUri) { Content = new ReadOnlyMemoryContent(DirectBody) };
            request.Content.Headers.ContentType = Json;
            request.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
            using var response = await _direct.SendAsync(request, cancellationToken);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return new Sample(0, Stopwatch.GetTimestamp() - start, $"HTTP {(int)response.StatusCode}");
            }

            worker.OpenAI.Reset(Expected);
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            await worker.Reader.ReadAllAsync(stream, worker.OpenAI, cancellationToken);
            var end = Stopwatch.GetTimestamp();
            var error = worker.OpenAI.Complete();
            var first = worker.OpenAI.FirstContentTimestamp;
            return new Sample(first == 0 ? 0 : first - start, end - start, error);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return new Sample(0, Stopwatch.GetTimestamp() - start, ex.GetType().Name + ": " + ex.Message);
        }
    }

    public async Task<Sample> CountTokensAsync(Worker worker, byte[] body, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var request = NewGatewayRequest(_countTokensUri, body);
            request.Headers.TryAddWithoutValidation("anthropic-beta", "token-counting-2024-11-01");
            using var response = await _gateway.SendAsync(request, cancellationToken);
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            var total = 0;
            int read;
            while ((read = await stream.ReadAsync(worker.Scratch.AsMemory(total), cancellationToken)) > 0)
            {
                total += read;
                if (total == worker.Scratch.Length)
                {
                    break;
                }
            }

            var end = Stopwatch.GetTimestamp();
            var text = worker.Scratch.AsSpan(0, total);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return new Sample(end - start, end - start, $"HTTP {(int)response.StatusCode}: {Encoding.UTF8.GetString(text)}");
            }

            return text.IndexOf("\"input_tokens\":"u8) < 0
                ? new Sample(end - start, end - start, "no input_tokens in " + Encoding.UTF8.GetString(text))
                : new Sample(end - start, end - start, null);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return new Sample(0, Stopwatch.GetTimestamp() - start, ex.GetType().Name + ": " + ex.Message);
        }
    }

    private static async Task<string> Snippet(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        return text.Length > 300 ? text[..300] : text;
    }

    public void Dispose()
    {
        _gateway.Dispose();
        _direct.Dispose();
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>
/// Seeded fuzzing of <c>POST /v1/messages</c> with mutated Claude Code requests, against the self-host as its own
/// process (a crash would show as an exited process; memory and threads are its own). Every answer must be a 2xx or
/// a 4xx Anthropic error with a request id; never a 5xx, a dropped connection, a stack trace or a broken stream; and
/// every request must leave exactly one billing row.
/// </summary>
[Collection(HeavyCollection.Name)]
public sealed class FuzzTests(AzuriteFixture azurite)
{
    private const int Seed = 20_261_123;
    private const int Cases = 10_000;
    private const int Parallelism = 16;
    // A hang bound, not a speed target (the rate is a printed figure): 10,000 cases take about 60 s on two quiet
    // cores and about 300 s with both cores hogged and Azurite starved; the test fails only if they never finish.
    private static readonly TimeSpan TimeBound = TimeSpan.FromSeconds(600);

    private static readonly HashSet<string> ErrorTypes =
    [
        "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
        "request_too_large", "rate_limit_error", "api_error", "timeout_error", "overloaded_error",
    ];

    [Fact]
    public async Task TenThousandMutatedRequests_Get2xxOr4xxAnthropicErrors_NoServerErrorsNoCrash_AndOneBillingRowEach()
    {
        ScriptedUpstream? self = null;
        await using var upstream = await ScriptedUpstream.StartAsync(async (_, context) =>
        {
            // Keep the recorded requests bounded (some cases carry megabytes).
            while (self is { Requests.Count: > 32 } u && u.Requests.TryDequeue(out UpstreamRequest? _))
            {
            }

            await Sse.WriteAsync(context, Sse.TextAnswer(["ok"], prompt: 12));
        });
        self = upstream;

        var prefix = AzuriteFixture.NewPrefix();
        var spool = Path.Combine(Path.GetTempPath(), "melious-spool-" + prefix);
        await using var gateway = await SelfHostProcess.StartAsync(SelfHostProcess.EnvironmentFor(azurite.ConnectionString, prefix, upstream.OpenAIBaseUrl, spool));
        var key = await BackPressureTests.CreateKeyAsync(azurite.ConnectionString, prefix);
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Parallelism * 2, UseProxy = false }) { BaseAddress = new Uri(gateway.BaseUrl), Timeout = TimeSpan.FromSeconds(60) };
        client.DefaultRequestHeaders.Add("x-api-key", key);
        client.DefaultRequestHeaders.Add("anthropic-version", "2023-06-01");

        var sent = 0;
        var warm = await SendAsync(client, new FuzzCase(-1, JsonSerializer.SerializeToUtf8Bytes(FuzzCorpus.Base(0)), "none"));
        Interlocked.Increment(ref sent);
        Assert.Equal("200 stream", warm.Category);
        var rssBefore = gateway.RssBytes;
        var threadsBefore = gateway.Threads;
        var before = await gateway.MeasureAsync();

        var corpus = new FuzzCorpus(Seed);
        var next = 0;
        var histogram = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var byMutation = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var failures = new ConcurrentQueue<string>();
        var clock = Stopwatch.StartNew();
        long peakRss = rssBefore;
        var peakThreads = threadsBefore;

        var storage = StorageFor(azurite.ConnectionString, prefix);
        var limit = Cases / 2;
        Task RunAsync() => Task.WhenAll(Enumerable.Range(0, Parallelism).Select(async worker =>
        {
            while (clock.Elapsed < TimeBound)
            {
                FuzzCase fuzz;
                lock (corpus)
                {
                    if (next >= limit)
                    {
                        return;
                    }

                    fuzz = corpus.Next(next++);
                }

                var result = await SendAsync(client, fuzz);
                Interlocked.Increment(ref sent);
                histogram.AddOrUpdate(result.Category, 1, (_, n) => n + 1);
                byMutation.AddOrUpdate($"{fuzz.Mutations} → {result.Category}", 1, (_, n) => n + 1);
                if (result.Failure is { } failure)
                {
                    failures.Enqueue($"case {fuzz.Index} [{fuzz.Mutations}] {failure}");
                    SaveFailure(fuzz);
                }

                if (worker == 0 && fuzz.Index % 200 == 0 && gateway.IsRunning)
                {
                    peakRss = Math.Max(peakRss, gateway.RssBytes);
                    peakThreads = Math.Max(peakThreads, gateway.Threads);
                }
            }
        }));

        // Two halves; after each, once the usage backlog has drained, the live heap. Growth from the first half to
        // the second would be a leak; what the first half leaves is what the process keeps (pools, caches).
        await RunAsync();
        var pause = Stopwatch.StartNew();
        await WaitUntilAsync(async () => await CountAsync(storage) >= sent, TimeSpan.FromSeconds(60), pollMs: 500);
        var half = await gateway.MeasureAsync();
        pause.Stop();
        limit = Cases;
        await RunAsync();
        var elapsed = clock.Elapsed - pause.Elapsed;

        Figure($"fuzz: seed {Seed}, {next} cases in {elapsed.TotalSeconds:0.0} s ({next / elapsed.TotalSeconds:0} /s) at {Parallelism} in parallel");
        Figure("fuzz status histogram: " + string.Join(", ", histogram.OrderByDescending(h => h.Value).Select(h => $"{h.Key}: {h.Value}")));
        Figure("fuzz outcomes by mutation: " + string.Join("; ", byMutation.Where(m => !m.Key.Contains('+', StringComparison.Ordinal)).OrderBy(m => m.Key, StringComparer.Ordinal).Select(m => $"{m.Key} ×{m.Value}")));
        Figure($"fuzz failures: {failures.Count}" + string.Concat(failures.Take(20).Select(f => "\n  " + f)));

        Assert.True(gateway.IsRunning, $"the gateway process exited ({gateway.ExitCode}): {Tail(gateway.Output)}");
        Assert.True(next >= Cases, $"only {next} cases ran within {TimeBound.TotalSeconds} s");

        // Healthy afterwards: a normal request succeeds; threads and memory are reasonable.
        var health = await SendAsync(client, new FuzzCase(-2, JsonSerializer.SerializeToUtf8Bytes(FuzzCorpus.Base(2)), "none"));
        Interlocked.Increment(ref sent);
        Assert.Equal("200 json", health.Category);
        var rows = 0;
        var complete = await WaitUntilAsync(async () => (rows = await CountAsync(storage)) >= sent, TimeSpan.FromSeconds(300), pollMs: 1000);
        var rssAfter = gateway.RssBytes;
        var after = await gateway.MeasureAsync();
        Figure($"fuzz health: RSS {Mb(rssBefore)} before, peak ≥{Mb(peakRss)}, {Mb(rssAfter)} after; live heap {Mb(before.HeapBytes)} before, {Mb(half.HeapBytes)} after half " +
               $"({Mb(half.SmallObjectHeapBytes)} small objects, {Mb(half.LargeObjectHeapBytes)} large), {Mb(after.HeapBytes)} after all ({Mb(after.SmallObjectHeapBytes)} small, {Mb(after.LargeObjectHeapBytes)} large); " +
               $"threads {threadsBefore} before, peak ≥{peakThreads}, {after.Threads} after ({after.PoolThreads} in the pool)");
        Assert.True(after.Threads < 100, $"{after.Threads} threads after the fuzz");

        // Per-request state lives in small objects: it must not grow from the first half to the second. Large buffers
        // (request bodies up to megabytes) are pooled and kept by the pool, so they only have an absolute bound.
        Assert.True(after.SmallObjectHeapBytes - half.SmallObjectHeapBytes < 8L * 1024 * 1024, $"small-object heap grew from {Mb(half.SmallObjectHeapBytes)} after half the cases to {Mb(after.SmallObjectHeapBytes)} after all");
        Assert.True(after.HeapBytes < 512L * 1024 * 1024, $"live heap {Mb(after.HeapBytes)} after the fuzz");
        Assert.True(rssAfter < 1024L * 1024 * 1024, $"RSS {Mb(rssAfter)} after the fuzz");

        // One billing row per request, none poisoned.
        rows = await CountAsync(storage);
        var poison = (await storage.Queue(prefix + "-usage-poison").GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount;
        Figure($"fuzz billing: {sent} requests, {rows} billing rows, {poison} poisoned messages");
        Assert.True(complete, $"{sent} requests but {rows} billing rows");
        Assert.Equal(sent, rows);
        Assert.Equal(0, poison);

        // Last, so that the figures above are there either way: every answer was a 2xx or a 4xx Anthropic error.
        Assert.True(failures.IsEmpty, $"{failures.Count} bad answers, e.g.:\n{string.Join('\n', failures.Take(10))}");
        Assert.DoesNotContain(histogram.Keys, k => k.StartsWith('5'));
        Assert.DoesNotContain("failed inside the gateway", gateway.Output, StringComparison.Ordinal);
    }

    private static async Task<int> CountAsync(StorageClients storage)
    {
        var count = 0;
        await foreach (var _ in storage.Table(TableNames.Billing).QueryAsync<Azure.Data.Tables.TableEntity>(select: ["RowKey"], cancellationToken: Ct))
        {
            count++;
        }

        return count;
    }

    private static async Task<(string Category, string? Failure)> SendAsync(HttpClient client, FuzzCase fuzz)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, fuzz.Index % 2 == 0 ? "/v1/messages?beta=true" : "/v1/messages") { Content = new ByteArrayContent(fuzz.Body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        HttpResponseMessage response;
        string text;
        try
        {
            response = await client.SendAsync(request, HttpCompletionOption.ResponseContentRead, Ct);
            text = await response.Content.ReadAsStringAsync(Ct);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            return ("transport error", $"transport: {ex.GetType().Name}: {ex.Message}");
        }

        using (response)
        {
            var status = (int)response.StatusCode;
            var mediaType = response.Content.Headers.ContentType?.MediaType;
            var requestId = response.Headers.TryGetValues("request-id", out var ids) ? ids.FirstOrDefault() : null;
            if (text.Contains("   at ", StringComparison.Ordinal) || text.Contains("Exception", StringComparison.Ordinal))
            {
                return ($"{status} stack trace", $"{status}: the body shows an exception: {Cut(text)}");
            }

            if (requestId is null)
            {
                return ($"{status} no request-id", $"{status} without a request-id header");
            }

            if (status is >= 200 and < 300)
            {
                if (mediaType == "text/event-stream")
                {
                    if (!text.StartsWith("event: message_start", StringComparison.Ordinal))
                    {
                        return ("200 bad stream", "stream does not start with message_start: " + Cut(text));
                    }

                    if (text.Contains("event: error", StringComparison.Ordinal))
                    {
                        return ("200 stream error event", "stream has an error event: " + Cut(text[text.IndexOf("event: error", StringComparison.Ordinal)..]));
                    }

                    return text.TrimEnd().EndsWith("data: {\"type\":\"message_stop\"}", StringComparison.Ordinal)
                        ? ("200 stream", null)
                        : ("200 bad stream", "stream does not end with message_stop: " + Cut(text[Math.Max(0, text.Length - 300)..]));
                }

                try
                {
                    var json = JsonDocument.Parse(text).RootElement;
                    return json.GetProperty("type").GetString() == "message" && json.GetProperty("content").ValueKind == JsonValueKind.Array
                        ? ("200 json", null)
                        : ("200 bad json", "not a message: " + Cut(text));
                }
                catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
                {
                    return ("200 bad json", "2xx body is not a message: " + Cut(text));
                }
            }

            if (status is >= 400 and < 500)
            {
                try
                {
                    var json = JsonDocument.Parse(text).RootElement;
                    var error = json.GetProperty("error");
                    var type = error.GetProperty("type").GetString()!;
                    var message = error.GetProperty("message").GetString();
                    if (json.GetProperty("type").GetString() != "error" || !ErrorTypes.Contains(type) || string.IsNullOrWhiteSpace(message) || json.GetProperty("request_id").GetString() != requestId)
                    {
                        return ($"{status} malformed error", "error body is not Anthropic-shaped: " + Cut(text));
                    }

                    return ($"{status} {type}", null);
                }
                catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
                {
                    return ($"{status} malformed error", "4xx body is not an Anthropic error: " + Cut(text));
                }
            }

            return ($"{status}", $"status {status}: {Cut(text)}");
        }
    }

    private static void SaveFailure(FuzzCase fuzz)
    {
        try
        {
            var directory = Path.Combine(RepoPaths.Root, "artifacts", "fuzz-failures");
            Directory.CreateDirectory(directory);
            File.WriteAllBytes(Path.Combine(directory, $"case-{fuzz.Index}.json"), fuzz.Body);
        }
        catch (IOException)
        {
        }
    }

    private static string Cut(string text) => text.Length > 400 ? text[..400] + "…" : text;

    private static string Tail(string text) => text.Length > 4000 ? text[^4000..] : text;
}

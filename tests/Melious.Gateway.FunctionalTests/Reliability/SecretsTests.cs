using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Azure.Data.Tables;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Http;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Microsoft.AspNetCore.Http;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>
/// Secrets: gateway keys, Authorization headers, the upstream's API key and the storage account key never appear in
/// logs, tables or answers; client headers do not reach the upstream. (Http/AuthTests.KeysAreStoredOnlyAsHashes checks
/// the apikeys table; Http/UpstreamErrorTests.UpstreamAuthFailure_IsTheGatewaysProblem_AndLeaksNothing the upstream
/// 401 body.)
/// </summary>
public sealed class SecretsTests(AzuriteFixture azurite)
{
    private static readonly string UpstreamKey = "sk-upstream-SECRET-" + Guid.NewGuid().ToString("N");

    /// <summary>The scripted upstream's behaviours, chosen by the prompt; several echo the upstream key back.</summary>
    private static Task Upstream(UpstreamRequest request, HttpContext context)
    {
        var prompt = request.BodyText;
        var echo = $"Invalid API key provided: {UpstreamKey}";
        if (prompt.Contains("http-401", StringComparison.Ordinal))
        {
            return Sse.ErrorAsync(context, 401, echo);
        }

        if (prompt.Contains("http-500", StringComparison.Ordinal))
        {
            return Sse.ErrorAsync(context, 500, echo);
        }

        if (prompt.Contains("http-400", StringComparison.Ordinal))
        {
            return Sse.ErrorAsync(context, 400, echo);
        }

        if (prompt.Contains("http-429", StringComparison.Ordinal))
        {
            return Sse.ErrorAsync(context, 429, echo, retryAfter: "30");
        }

        if (prompt.Contains("chunk-error", StringComparison.Ordinal))
        {
            return Sse.WriteAsync(context, [Sse.Role(), Sse.Content("par"), $$$"""{"error":{"message":"{{{echo}}}","code":401}}"""]);
        }

        if (prompt.Contains("event-error", StringComparison.Ordinal))
        {
            return Sse.WriteRawAsync(context, $"data: {Sse.Role()}\n\nevent: error\ndata: {echo}\n\n");
        }

        if (prompt.Contains("anthropic-error-event", StringComparison.Ordinal))
        {
            return Sse.WriteRawAsync(context,
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n" +
                $"event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"authentication_error\",\"message\":\"{echo}\"}}}}\n\n");
        }

        if (prompt.Contains("anthropic-http-", StringComparison.Ordinal))
        {
            return Sse.ErrorAsync(context, prompt.Contains("anthropic-http-500", StringComparison.Ordinal) ? 500 : 400, echo);
        }

        if (request.Path.EndsWith("/messages", StringComparison.Ordinal) && prompt.Contains("\"stream\":true", StringComparison.Ordinal))
        {
            return Sse.WriteRawAsync(context,
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n" +
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\n" +
                "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":1}}\n\n" +
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        }

        if (request.Path.EndsWith("/messages", StringComparison.Ordinal))
        {
            return Sse.WriteRawAsync(context, """{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}""", "application/json");
        }

        return Sse.WriteAsync(context, Sse.TextAnswer(["ok"]));
    }

    public static TheoryData<string, bool, bool> UpstreamErrorsEchoingTheKey => new()
    {
        // (prompt, stream, anthropic-protocol upstream)
        { "http-401", false, false },
        { "http-500", false, false },
        { "http-400", false, false },
        { "http-429", true, false },
        { "chunk-error", true, false },
        { "chunk-error", false, false },
        { "event-error", true, false },
        { "event-error", false, false },
        { "anthropic-http-500", false, true },
        { "anthropic-http-400", true, true },
        { "anthropic-error-event", true, true },
    };

    [Theory]
    [MemberData(nameof(UpstreamErrorsEchoingTheKey))]
    public async Task UpstreamKey_EchoedByTheUpstream_NeverReachesTheClient(string behaviour, bool stream, bool anthropic)
    {
        await using var s = await Scenario.StartAsync(azurite, Upstream, new Dictionary<string, string?> { ["Melious:Upstream:ApiKey"] = UpstreamKey }, anthropicUpstream: anthropic);
        using var response = await s.PostAsync(Scenario.Body(stream: stream, prompt: behaviour));
        var text = await response.Content.ReadAsStringAsync(Ct);
        var headers = string.Join('\n', response.Headers.Concat(response.Content.Headers).Select(h => $"{h.Key}: {string.Join(",", h.Value)}"));
        Figure($"{behaviour} (stream={stream}, {(anthropic ? "anthropic" : "openai")} upstream): client got {(int)response.StatusCode} {Cut(text)}");
        Assert.DoesNotContain(UpstreamKey, text, StringComparison.Ordinal);
        Assert.DoesNotContain(UpstreamKey, headers, StringComparison.Ordinal);
        Assert.DoesNotContain(UpstreamKey[..24], text, StringComparison.Ordinal);
        Assert.True((int)response.StatusCode is 200 or >= 400, text);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AFullRun_LeavesNoKeyInLogsTablesOrUpstreamRequests(bool anthropic)
    {
        // Every category at Trace (overriding appsettings.json), so nothing is filtered out of what is checked.
        await using var s = await Scenario.StartAsync(azurite, Upstream, new Dictionary<string, string?>
        {
            ["Melious:Upstream:ApiKey"] = UpstreamKey,
            ["Logging:LogLevel:Default"] = "Trace",
            ["Logging:LogLevel:Microsoft"] = "Trace",
            ["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Trace",
            ["Logging:LogLevel:System"] = "Trace",
            ["Logging:LogLevel:System.Net.Http.HttpClient"] = "Trace",
        }, anthropicUpstream: anthropic);
        var accountKey = azurite.ConnectionString.Split(';').Single(p => p.StartsWith("AccountKey=", StringComparison.Ordinal))["AccountKey=".Length..];
        var wrongKey = "sk-mel-WRONGKEY" + Guid.NewGuid().ToString("N") + "xyz";
        const string NotOurs = "sk-ant-api03-someone-elses-real-anthropic-key-0000";
        using var viaHeader = s.Gateway.Client(s.Key);
        using var viaBearer = s.Gateway.Client(s.Key, bearer: true);
        using var wrongHeader = s.Gateway.Client(wrongKey);
        using var wrongBearer = s.Gateway.Client(wrongKey, bearer: true);
        using var foreign = s.Gateway.Client(NotOurs, bearer: true);

        var ids = new List<string>();
        foreach (var client in new[] { viaHeader, viaBearer })
        {
            var runs = anthropic
                ? new[] { ("ok", true), ("ok", false), ("anthropic-http-500", false), ("http-401", true), ("anthropic-error-event", true), ("http-429", false) }
                : new[] { ("ok", true), ("ok", false), ("http-500", false), ("http-401", true), ("chunk-error", true), ("event-error", false), ("http-429", false) };
            foreach (var (prompt, stream) in runs)
            {
                using var response = await client.SendAsync(Post(Scenario.Body(stream: stream, prompt: prompt).ToJsonString()), Ct);
                _ = await response.Content.ReadAsStringAsync(Ct);
                ids.Add(RequestId(response));
            }

            using var count = await client.SendAsync(Post(Scenario.Body().ToJsonString(), "/v1/messages/count_tokens"), Ct);
            Assert.Equal(HttpStatusCode.OK, count.StatusCode);
            using var models = await client.GetAsync("/v1/models", Ct);
            Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        }

        foreach (var client in new[] { wrongHeader, wrongBearer, foreign })
        {
            await ErrorAssert.IsErrorAsync(await client.SendAsync(Post(Scenario.Body().ToJsonString()), Ct), HttpStatusCode.Unauthorized, "authentication_error");
        }

        // The usage pipeline ran for every request (its logs are part of what is checked).
        foreach (var id in ids)
        {
            await BillingRowAsync(s.Gateway, id);
        }

        var secrets = new Dictionary<string, string>
        {
            ["gateway key"] = s.Key,
            ["gateway key body"] = s.Key["sk-mel-".Length..],
            ["gateway key as a bearer"] = "Bearer " + s.Key,
            ["wrong key"] = wrongKey,
            ["foreign key"] = NotOurs,
            ["upstream key"] = UpstreamKey,
            ["upstream key body"] = UpstreamKey["sk-upstream-".Length..],
            ["storage account key"] = accountKey,
        };

        var logs = s.Gateway.Logs.AllText;
        Figure($"full run: {s.Gateway.Logs.Lines.Count} log lines ({logs.Length} chars), {s.Upstream.Requests.Count} upstream requests, {ids.Count} billed requests checked for {secrets.Count} secrets");
        Assert.True(s.Gateway.Logs.Lines.Count > 100, "the logs should hold the whole run at Trace level");
        foreach (var (name, secret) in secrets)
        {
            Assert.False(logs.Contains(secret, StringComparison.Ordinal), $"the {name} appears in the logs: {Around(logs, secret)}");
        }

        // The upstream got the gateway's own credential and nothing of the client's.
        foreach (var request in s.Upstream.Requests)
        {
            var seen = string.Join('\n', request.Headers.Select(h => $"{h.Key}: {h.Value}")) + "\n" + request.BodyText;
            foreach (var (name, secret) in secrets.Where(x => !x.Key.StartsWith("upstream", StringComparison.Ordinal)))
            {
                Assert.False(seen.Contains(secret, StringComparison.Ordinal), $"the upstream received the {name}");
            }

            Assert.Equal(anthropic ? UpstreamKey : "Bearer " + UpstreamKey, request.Headers[anthropic ? "x-api-key" : "authorization"]);
        }

        // No table stores a key: only its SHA-256 (apikeys RowKey) and key id (first 16 hex digits of the hash).
        var storage = StorageFor(s.Gateway);
        foreach (var table in TableNames.All)
        {
            await foreach (var entity in storage.Table(table).QueryAsync<TableEntity>(cancellationToken: Ct))
            {
                var values = entity.PartitionKey + "|" + entity.RowKey + "|" + string.Join("|", entity.Select(p => p.Value?.ToString()));
                foreach (var (name, secret) in secrets)
                {
                    Assert.False(values.Contains(secret, StringComparison.Ordinal), $"table {table} stores the {name}");
                }
            }
        }

        var stored = await storage.Table(TableNames.ApiKeys).GetEntityAsync<TableEntity>(ApiKeyStore.Partition, ApiKeys.Hash(s.Key), cancellationToken: Ct);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(s.Key))), stored.Value.RowKey);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClientHeaders_AreNotPassedToTheUpstream(bool anthropic)
    {
        await using var s = await Scenario.StartAsync(azurite, Upstream, new Dictionary<string, string?> { ["Melious:Upstream:ApiKey"] = UpstreamKey }, anthropicUpstream: anthropic);
        var clientHeaders = new Dictionary<string, string>
        {
            ["x-api-key"] = s.Key,
            ["authorization"] = "Bearer " + s.Key,
            ["cookie"] = "session=cookie-secret-1234",
            ["x-secret-tenant"] = "tenant-secret-5678",
            ["anthropic-beta"] = "interleaved-thinking-2025-05-14,client-beta-9012",
            ["anthropic-version"] = "2023-06-01",
            ["user-agent"] = "claude-cli/2.1.197 (external, cli) agent-secret-3456",
            ["x-forwarded-for"] = "203.0.113.77",
            ["x-real-ip"] = "203.0.113.78",
            ["x-claude-code-session-id"] = "5b1c2a9e-8f5e-4a53-9a3c-1c2d3e4f5a6b",
            ["x-stainless-retry-count"] = "0",
            ["proxy-authorization"] = "Basic cHJveHktc2VjcmV0",
            ["x-amz-security-token"] = "amz-secret-7890",
            ["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ["baggage"] = "tenant=baggage-secret-1111",
            ["tracestate"] = "vendor=tracestate-secret-2222",
        };
        using var client = new HttpClient { BaseAddress = new Uri(s.Gateway.BaseUrl) };
        foreach (var stream in new[] { true, false })
        {
            var request = Post(Scenario.Body(stream: stream).ToJsonString());
            foreach (var (name, value) in clientHeaders)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }

            using var response = await client.SendAsync(request, Ct);
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync(Ct));
        }

        // What the gateway itself sends: transport headers, its own credential, and for Anthropic the protocol headers.
        // traceparent is the gateway's own span (its trace id continues the client's trace: W3C trace context).
        var allowed = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "host", "content-type", "content-length", "transfer-encoding", "accept", "traceparent" };
        allowed.Add(anthropic ? "x-api-key" : "authorization");
        if (anthropic)
        {
            allowed.UnionWith(["anthropic-version", "anthropic-beta"]);
        }

        foreach (var sent in s.Upstream.Requests)
        {
            Figure($"{(anthropic ? "anthropic" : "openai")} upstream received: {string.Join(", ", sent.Headers.Select(h => h.Key == "authorization" || h.Key == "x-api-key" ? $"{h.Key}: [upstream key]" : $"{h.Key}: {h.Value}"))}");
            Assert.DoesNotContain(sent.Headers.Keys, k => !allowed.Contains(k));
            if (anthropic)
            {
                Assert.Equal(UpstreamKey, sent.Headers["x-api-key"]);
                Assert.Equal(clientHeaders["anthropic-beta"], sent.Headers["anthropic-beta"]);
                Assert.False(sent.Headers.ContainsKey("authorization"));
            }
            else
            {
                Assert.Equal("Bearer " + UpstreamKey, sent.Headers["authorization"]);
                Assert.False(sent.Headers.ContainsKey("anthropic-beta"));
            }

            // No client value travels in any header, under any name (the anthropic-beta list is the one allowed).
            var values = string.Join('\n', sent.Headers.Where(h => !(anthropic && h.Key == "anthropic-beta")).Select(h => h.Value));
            foreach (var secret in new[] { s.Key, "cookie-secret", "tenant-secret", "agent-secret", "203.0.113", "cHJveHktc2VjcmV0", "amz-secret", "baggage-secret", "tracestate-secret", "5b1c2a9e" })
            {
                Assert.DoesNotContain(secret, values, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void KeyHashComparison_IsConstantTime()
    {
        // ApiKeys.HashesEqual is CryptographicOperations.FixedTimeEquals over the hex digests. Smoke check of the
        // property (the lookup itself is a point read by SHA-256, so the stored hash is never compared by prefix):
        // a mismatch in the first and in the last character take the same time, within noise.
        var stored = ApiKeys.Hash(ApiKeys.Generate());
        var first = (stored[0] == 'a' ? "b" : "a") + stored[1..];
        var last = stored[..^1] + (stored[^1] == 'a' ? "b" : "a");
        Assert.True(ApiKeys.HashesEqual(stored, stored));
        Assert.False(ApiKeys.HashesEqual(stored, first));
        Assert.False(ApiKeys.HashesEqual(stored, last));
        Assert.False(ApiKeys.HashesEqual(stored, stored[..^1]));

        // Timing on a shared 2-core machine, next to the rest of the suite: whole rounds get preempted, and the first
        // rounds may still run the unoptimized (tier-0) code. Comparing the two lists' medians breaks when about half
        // the rounds of one list are slowed and half of the other's are not (the medians then land on different sides
        // of the slowdown). So: warm up first, and compare within each round (the two candidates back to back, in
        // alternating order), taking the median of the per-round ratios; short rounds rarely straddle a preemption,
        // and one that does is an outlier the median ignores.
        const int Iterations = 2_000;
        const int Rounds = 201;
        for (var i = 0; i < 50_000; i++)
        {
            _ = ApiKeys.HashesEqual(stored, i % 2 == 0 ? first : last);
        }

        var firstTimes = new List<double>(Rounds);
        var lastTimes = new List<double>(Rounds);
        var ratios = new List<double>(Rounds);
        for (var round = 0; round < Rounds; round++)
        {
            double firstTime = 0, lastTime = 0;
            foreach (var candidate in round % 2 == 0 ? new[] { first, last } : new[] { last, first })
            {
                var clock = Stopwatch.StartNew();
                for (var i = 0; i < Iterations; i++)
                {
                    _ = ApiKeys.HashesEqual(stored, candidate);
                }

                var elapsed = clock.Elapsed.TotalMilliseconds;
                if (ReferenceEquals(candidate, first))
                {
                    firstTime = elapsed;
                }
                else
                {
                    lastTime = elapsed;
                }
            }

            firstTimes.Add(firstTime);
            lastTimes.Add(lastTime);
            ratios.Add(lastTime / firstTime);
        }

        var ratio = Median(ratios);
        Figure($"HashesEqual: median {Median(firstTimes) * 1e6 / Iterations:0} ns (first char differs) vs {Median(lastTimes) * 1e6 / Iterations:0} ns (last char differs), median per-round ratio {ratio:0.00}");
        Assert.InRange(ratio, 0.7, 1.43);
    }

    private static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);

    private static string Cut(string text) => text.Length > 300 ? text[..300] + "…" : text;

    private static string Around(string text, string secret)
    {
        var at = text.IndexOf(secret, StringComparison.Ordinal);
        return at < 0 ? "" : text[Math.Max(0, at - 200)..Math.Min(text.Length, at + secret.Length + 50)];
    }
}

using System.Diagnostics;
using System.Net;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Routing;
using Melious.Gateway.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Melious.Gateway.FunctionalTests.Scaling;

/// <summary>
/// The gateway's OpenTelemetry output through the official SDK and its in-memory exporters: GenAI metric names,
/// units, attributes and values for a streamed request, an error and a fallback; spans; and no prompt or completion
/// text anywhere. Other tests' gateways in this process use the same meter name, so points are picked by model.
/// </summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class TelemetryTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task MetricsAndSpans_FollowTheGenAIConventions_AndCarryNoContent()
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        var ok = "otel-ok-" + id;
        var failing = "otel-err-" + id;
        var main = "otel-main-" + id;
        var backup = "otel-backup-" + id;
        var prompt = "PROMPT-SECRET-" + Guid.NewGuid().ToString("N");
        const string completion = "COMPLETION-SECRET";

        await using var upstream = await ScriptedUpstream.StartAsync((request, context) =>
        {
            var model = request.Json.GetProperty("model").GetString();
            return model == failing ? Sse.ErrorAsync(context, 500, "boom")
                : model == main ? Sse.ErrorAsync(context, 503, "busy", retryAfter: "60")
                : Sse.WriteAsync(context, Sse.TextAnswer([completion, " done"], prompt: 120, cached: 20));
        });

        var metrics = new List<MetricSnapshot>();
        var exportedSpans = new List<Activity>();
        var spans = exportedSpans;
        await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, upstream.OpenAIBaseUrl, configure: builder =>
            builder.Services.AddOpenTelemetry()
                .WithMetrics(m => m.AddMeter(GatewayMetrics.MeterName).AddInMemoryExporter(metrics))
                .WithTracing(t => t.AddSource(GatewayMetrics.ActivitySourceName).AddInMemoryExporter(exportedSpans)));
        var key = await gateway.CreateKeyAsync(account: "otel-acct");
        var store = gateway.Services.GetRequiredService<ModelCatalogStore>();
        await store.UpsertModelAsync(main, new Dictionary<string, object?> { ["Fallbacks"] = backup }, Ct);
        await store.UpsertModelAsync(backup, new Dictionary<string, object?>(), Ct);
        await gateway.RefreshCatalogAsync();

        using var client = gateway.Client(key);
        async Task<HttpStatusCode> PostAsync(string model, bool stream)
        {
            var body = Scenario.Body(model: model, stream: stream, prompt: prompt).ToJsonString();
            using var response = await client.PostAsync("/v1/messages", new StringContent(body, System.Text.Encoding.UTF8, "application/json"), Ct);
            await response.Content.ReadAsStringAsync(Ct);
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.OK, await PostAsync(ok, stream: true));
        Assert.Equal(HttpStatusCode.InternalServerError, await PostAsync(failing, stream: false));
        Assert.Equal(HttpStatusCode.OK, await PostAsync(main, stream: false));

        // The usage event (and so the measurement) is published after the response is complete, by the handler's own
        // thread: the client can have read all three responses before the first request's handler has recorded it.
        // Wait for all three requests' durations, not only the last one's.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        List<MetricPoint> Points(string name, string model)
        {
            metrics.Clear();
            gateway.Services.GetRequiredService<MeterProvider>().ForceFlush();
            return metrics.Where(m => m.Name == name).SelectMany(m => m.MetricPoints).Where(p => Tag(p, "gen_ai.request.model") == model).ToList();
        }

        while ((Points("gen_ai.server.request.duration", main).Count == 0
                || Points("gen_ai.server.request.duration", ok).Count == 0
                || Points("gen_ai.server.request.duration", failing).Count == 0) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, Ct);
        }

        metrics.Clear();
        gateway.Services.GetRequiredService<MeterProvider>().ForceFlush();
        gateway.Services.GetRequiredService<TracerProvider>().ForceFlush();
        var snapshot = metrics.ToList();

        // Units as the conventions give them.
        string UnitOf(string name) =>
            snapshot.FirstOrDefault(m => m.Name == name)?.Unit
            ?? throw new Xunit.Sdk.XunitException($"no {name} metric was exported; exported: {string.Join(", ", snapshot.Select(m => m.Name).Distinct())}");
        Assert.Equal("{token}", UnitOf("gen_ai.client.token.usage"));
        Assert.Equal("s", UnitOf("gen_ai.server.time_to_first_token"));
        Assert.Equal("s", UnitOf("gen_ai.server.request.duration"));

        IEnumerable<MetricPoint> Of(string name, string model) =>
            snapshot.Where(m => m.Name == name).SelectMany(m => m.MetricPoints).Where(p => Tag(p, "gen_ai.request.model") == model);

        // The streamed request: tokens by type (input counts the cached part too), TTFT, duration without error.type.
        var tokens = Of("gen_ai.client.token.usage", ok).ToList();
        Assert.Equal(120, Sum(tokens, "input"));
        Assert.Equal(2, Sum(tokens, "output"));
        Assert.Equal(20, Sum(tokens, "cache_read"));
        var point = tokens.First();
        Assert.Equal(ok, Tag(point, "gen_ai.response.model"));
        Assert.Equal("vllm", Tag(point, "gen_ai.provider.name"));
        Assert.Equal("chat", Tag(point, "gen_ai.operation.name"));
        Assert.Equal($"127.0.0.1:{upstream.Port}", Tag(point, "server.address"));
        Assert.Equal(upstream.OpenAIBaseUrl, Tag(point, "melious.endpoint"));
        Assert.Equal("otel-acct", Tag(point, "melious.account"));
        Assert.Matches("^[0-9a-f]{16}$", Tag(point, "melious.key_id"));
        Assert.Equal(1, Of("gen_ai.server.time_to_first_token", ok).Sum(p => p.GetHistogramCount()));
        var okDuration = Assert.Single(Of("gen_ai.server.request.duration", ok));
        Assert.Null(Tag(okDuration, "error.type"));
        Assert.InRange(okDuration.GetHistogramSum(), 0.0001, 60);

        // The error: duration with error.type, no token usage.
        var errDuration = Assert.Single(Of("gen_ai.server.request.duration", failing));
        Assert.Equal("api_error", Tag(errDuration, "error.type"));
        Assert.Empty(Of("gen_ai.client.token.usage", failing));

        // The fallback: counted, and the tokens are attributed to the model that served.
        var fallback = Assert.Single(Of("melious.gateway.fallbacks", main));
        Assert.Equal(1, fallback.GetSumLong());
        Assert.Equal(backup, Tag(fallback, "melious.fallback.to"));
        Assert.Equal("overloaded", Tag(fallback, "melious.fallback.reason"));
        Assert.All(Of("gen_ai.client.token.usage", main), p => Assert.Equal(backup, Tag(p, "gen_ai.response.model")));

        // Spans: the request, with the upstream call as a "chat" child. A request's span ends when its handler returns,
        // which can be just after the client has read the response; the exporter appends from that thread, so the
        // list is read as copies until both requests' spans (and the ok request's child) are there, bounded.
        Activity[] exported = [];
        for (var wait = Stopwatch.StartNew(); wait.Elapsed < TimeSpan.FromSeconds(10); await Task.Delay(50, Ct))
        {
            exported = CopyOf(spans);
            if (exported.Any(s => s.DisplayName == "messages" && (string?)s.GetTagItem("gen_ai.request.model") == ok)
                && exported.Any(s => s.DisplayName == "messages" && (string?)s.GetTagItem("gen_ai.request.model") == failing)
                && exported.Any(s => s.DisplayName == "chat " + ok))
            {
                break;
            }
        }

        spans = [.. exported];
        var request = spans.SingleOrDefault(s => s.DisplayName == "messages" && (string?)s.GetTagItem("gen_ai.request.model") == ok);
        Assert.True(request is not null, string.Join("; ", spans.Select(s => $"{s.DisplayName} {s.Source.Name} parent={s.ParentSpanId} {string.Join(",", s.TagObjects.Select(t => t.Key + "=" + t.Value))}")));
        var chat = spans.SingleOrDefault(s => s.ParentSpanId == request.SpanId);
        Assert.True(chat is not null, "no child span of the request; spans: " + string.Join("; ", spans.Select(s => $"{s.DisplayName} parent={s.ParentSpanId} id={s.SpanId}")));
        Assert.Equal(ActivityKind.Client, chat.Kind);
        Assert.Equal("chat", chat.GetTagItem("gen_ai.operation.name"));
        Assert.Equal("chat " + ok, chat.DisplayName);
        Assert.Equal(20L, chat.GetTagItem("gen_ai.usage.cache_read.input_tokens"));
        var failed = spans.Single(s => s.DisplayName == "messages" && (string?)s.GetTagItem("gen_ai.request.model") == failing);
        Assert.Equal(ActivityStatusCode.Error, failed.Status);

        // No prompt, completion or key text in any attribute of any metric point or span.
        var everything = snapshot.SelectMany(m => m.MetricPoints).SelectMany(AllTags)
            .Concat(spans.SelectMany(s => s.TagObjects.Select(t => $"{t.Key}={t.Value}").Append(s.DisplayName).Concat(s.Events.Select(e => e.Name))))
            .ToList();
        Assert.NotEmpty(everything);
        Assert.DoesNotContain(everything, t => t.Contains(prompt, StringComparison.Ordinal) || t.Contains(completion, StringComparison.Ordinal) || t.Contains(key, StringComparison.Ordinal));
    }

    private static long Sum(IEnumerable<MetricPoint> points, string type) =>
        (long)points.Where(p => Tag(p, "gen_ai.token.type") == type).Sum(p => p.GetHistogramSum());

    private static string? Tag(MetricPoint point, string name)
    {
        foreach (var tag in point.Tags)
        {
            if (tag.Key == name)
            {
                return tag.Value?.ToString();
            }
        }

        return null;
    }

    private static IEnumerable<string> AllTags(MetricPoint point)
    {
        foreach (var tag in point.Tags)
        {
            yield return $"{tag.Key}={tag.Value}";
        }
    }

    /// <summary>A copy of a list another thread appends to (List.ToArray copies under no lock; a concurrent growth is retried).</summary>
    private static Activity[] CopyOf(List<Activity> list)
    {
        while (true)
        {
            try
            {
                return [.. list.ToArray().Where(a => a is not null)];
            }
            catch (ArgumentException)
            {
            }
        }
    }
}

/// <summary>
/// Every gateway in this process creates a meter named <see cref="GatewayMetrics.MeterName"/> with the same
/// instruments, and the OpenTelemetry SDK folds same-named instruments into one metric stream. When another test
/// disposes its gateway, its meter's instruments complete, and the SDK drops that shared stream at its next collect:
/// this test's measurements then go nowhere ("no gen_ai.client.token.usage metric was exported", seen in CI). One
/// gateway per process, as deployed, never sees this; the test runs on its own, after the parallel ones.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TelemetryTestGroup
{
    public const string Name = "Telemetry (process-wide meter name)";
}

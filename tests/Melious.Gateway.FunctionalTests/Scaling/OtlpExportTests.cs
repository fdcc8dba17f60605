using System.Net;
using System.Text;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.FunctionalTests.Scaling;

/// <summary>
/// The self-host's own OpenTelemetry wiring (SelfHostApp: OTLP export only when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is
/// set), against a real OTLP/HTTP receiver on loopback: spans, metrics and log records arrive under the service name,
/// and no payload carries the prompt, the completion or the API key. Without the setting nothing is registered to export.
/// </summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class OtlpExportTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task WithAnOtlpEndpoint_SpansMetricsAndLogsAreExported_WithoutContentOrKeys()
    {
        var prompt = "PROMPT-SECRET-" + Guid.NewGuid().ToString("N");
        const string completion = "COMPLETION-SECRET";
        var model = "otlp-" + Guid.NewGuid().ToString("N")[..8];

        // The OTLP/HTTP receiver: a scripted server that records every request (path, headers, raw protobuf body) and
        // answers 200 with an empty export response.
        await using var receiver = await ScriptedUpstream.StartAsync((_, context) =>
        {
            context.Response.ContentType = "application/x-protobuf";
            return Task.CompletedTask;
        });
        var received = receiver.Requests;

        await using var upstream = await ScriptedUpstream.StartAsync((_, context) => Sse.WriteAsync(context, Sse.TextAnswer([completion, " done"])));
        // The test host replaces the app's logger providers with its capturing one; the OpenTelemetry provider that
        // UseOtlpExporter registers is added back. The gateway's own categories log down to Trace here, so every log
        // line a request can produce is checked for secrets, not only the Information ones a deployment exports.
        var logLevels = new Dictionary<string, string?> { ["Logging:LogLevel:Melious"] = "Trace" };
        await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, upstream.OpenAIBaseUrl, logLevels, configure: b => b.Logging.AddOpenTelemetry(), args:
        [
            "--OTEL_EXPORTER_OTLP_ENDPOINT=" + receiver.BaseUrl,
            "--OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            "--OTEL_BSP_SCHEDULE_DELAY=100",
            "--OTEL_METRIC_EXPORT_INTERVAL=200",
        ]);
        var key = await gateway.CreateKeyAsync(account: "otlp-acct");
        using var client = gateway.Client(key);
        var request = Scenario.Body(model: model, stream: true, prompt: prompt).ToJsonString();
        string requestId;
        using (var response = await client.PostAsync("/v1/messages", new StringContent(request, Encoding.UTF8, "application/json"), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains(completion, await response.Content.ReadAsStringAsync(Ct));
            requestId = response.Headers.GetValues("request-id").Single();
        }

        // Protobuf keeps strings as UTF-8 bytes: the span's name and the model show up as text in the payloads.
        bool Has(string path, string text) => received.Any(r => r.Path == path && Contains(r.Body, text));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!(Has("/v1/traces", model) && Has("/v1/metrics", model) && Has("/v1/logs", requestId)) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, Ct);
        }

        var paths = string.Join(", ", received.Select(r => r.Path).Distinct());
        Assert.True(Has("/v1/traces", model), $"no span for {model} arrived (got: {paths})");
        Assert.True(Has("/v1/traces", "messages"), "the request's span (\"messages\") is missing");
        Assert.True(Has("/v1/traces", "melious-gateway"), "spans do not carry the service name");
        Assert.True(Has("/v1/metrics", model), $"no metric point for {model} arrived (got: {paths})");
        Assert.True(Has("/v1/metrics", "gen_ai.server.request.duration"), "the GenAI request duration metric is missing");
        Assert.True(Has("/v1/logs", requestId), $"no log record of request {requestId} arrived (got: {paths})");
        Assert.True(Has("/v1/logs", "routed"), "the gateway's own routing log is missing");
        Assert.All(received, r => Assert.Equal("application/x-protobuf", r.Headers["content-type"]));
        foreach (var secret in new[] { prompt, completion, key })
        {
            Assert.DoesNotContain(received, r => Contains(r.Body, secret));
        }
    }

    [Fact]
    public async Task WithoutAnOtlpEndpoint_NoExporterIsRegistered()
    {
        await using var upstream = await ScriptedUpstream.StartAsync((_, context) => Sse.WriteAsync(context, Sse.TextAnswer(["ok"])));
        await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, upstream.OpenAIBaseUrl);
        Assert.Null(gateway.Services.GetService<OpenTelemetry.Trace.TracerProvider>());
        Assert.Null(gateway.Services.GetService<OpenTelemetry.Metrics.MeterProvider>());
    }

    private static bool Contains(byte[] body, string text) => body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;
}

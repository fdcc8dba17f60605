using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.FunctionalTests.Scaling;

/// <summary>
/// The self-host's own OpenTelemetry wiring (SelfHostApp: OTLP export only when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is
/// set), against a real OTLP/HTTP receiver on loopback: spans and metrics arrive under the service name, and no
/// payload carries the prompt, the completion or the API key. Without the setting nothing is registered to export.
/// </summary>
[Collection(TelemetryTestGroup.Name)]
public sealed class OtlpExportTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task WithAnOtlpEndpoint_SpansAndMetricsAreExported_WithoutContentOrKeys()
    {
        var prompt = "PROMPT-SECRET-" + Guid.NewGuid().ToString("N");
        const string completion = "COMPLETION-SECRET";
        var model = "otlp-" + Guid.NewGuid().ToString("N")[..8];
        var received = new ConcurrentQueue<(string Path, string ContentType, byte[] Body)>();

        var receiverBuilder = WebApplication.CreateSlimBuilder();
        receiverBuilder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        receiverBuilder.Logging.ClearProviders();
        await using var receiver = receiverBuilder.Build();
        receiver.MapPost("/v1/{signal}", async (HttpContext context) =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
            received.Enqueue((context.Request.Path, context.Request.ContentType ?? "", body.ToArray()));
            context.Response.ContentType = "application/x-protobuf";
        });
        await receiver.StartAsync(Ct);
        var endpoint = receiver.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();

        await using var upstream = await ScriptedUpstream.StartAsync((_, context) => Sse.WriteAsync(context, Sse.TextAnswer([completion, " done"])));
        await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, upstream.OpenAIBaseUrl, args:
        [
            "--OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint,
            "--OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
            "--OTEL_BSP_SCHEDULE_DELAY=100",
            "--OTEL_METRIC_EXPORT_INTERVAL=200",
        ]);
        var key = await gateway.CreateKeyAsync(account: "otlp-acct");
        using var client = gateway.Client(key);
        var request = Scenario.Body(model: model, stream: true, prompt: prompt).ToJsonString();
        using (var response = await client.PostAsync("/v1/messages", new StringContent(request, Encoding.UTF8, "application/json"), Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains(completion, await response.Content.ReadAsStringAsync(Ct));
        }

        // Protobuf keeps strings as UTF-8 bytes: the span's name and the model show up as text in the payloads.
        bool Has(string path, string text) => received.Any(r => r.Path == path && Contains(r.Body, text));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!(Has("/v1/traces", model) && Has("/v1/metrics", model)) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, Ct);
        }

        var paths = string.Join(", ", received.Select(r => r.Path).Distinct());
        Assert.True(Has("/v1/traces", model), $"no span for {model} arrived (got: {paths})");
        Assert.True(Has("/v1/traces", "messages"), "the request's span (\"messages\") is missing");
        Assert.True(Has("/v1/traces", "melious-gateway"), "spans do not carry the service name");
        Assert.True(Has("/v1/metrics", model), $"no metric point for {model} arrived (got: {paths})");
        Assert.True(Has("/v1/metrics", "gen_ai.server.request.duration"), "the GenAI request duration metric is missing");
        Assert.All(received, r => Assert.Equal("application/x-protobuf", r.ContentType));
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

using Azure.Monitor.OpenTelemetry.Exporter;
using Melious.Functions;
using Melious.Gateway.Telemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.UseMiddleware<HttpInvocationCancel>();
builder.Services
    .AddApplicationInsightsTelemetryWorkerService()
    .ConfigureFunctionsApplicationInsights();
builder.Services.AddMeliousGateway(builder.Configuration);

// The gateway's GenAI metrics (tokens, TTFT, duration, fallbacks, circuit opens, limit rejections) and its spans go
// to Application Insights through the Azure Monitor OpenTelemetry exporter, when the app has a connection string.
if (!string.IsNullOrWhiteSpace(builder.Configuration["APPLICATIONINSIGHTS_CONNECTION_STRING"]))
{
    builder.Services.AddOpenTelemetry()
        .ConfigureResource(resource => resource.AddService("melious-functions"))
        .WithMetrics(metrics => metrics.AddMeter(GatewayMetrics.MeterName).AddAzureMonitorMetricExporter())
        .WithTracing(tracing => tracing.AddSource(GatewayMetrics.ActivitySourceName).AddAzureMonitorTraceExporter());
}

builder.Services.AddMeliousFunctionsHost();
builder.Build().Run();

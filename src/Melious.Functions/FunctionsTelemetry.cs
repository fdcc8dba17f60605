using Azure.Core;
using Azure.Identity;
using Azure.Monitor.OpenTelemetry.Exporter;
using Melious.Gateway.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Melious.Functions;

/// <summary>
/// The gateway's GenAI metrics (tokens, TTFT, duration, fallbacks, circuit opens, limit rejections) and its spans, sent
/// to Application Insights through the Azure Monitor OpenTelemetry exporter when the app has a connection string.
/// </summary>
public static class FunctionsTelemetry
{
    public const string ConnectionStringSetting = "APPLICATIONINSIGHTS_CONNECTION_STRING";
    public const string AuthenticationStringSetting = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING";

    public static IServiceCollection AddMeliousFunctionsTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        if (string.IsNullOrWhiteSpace(configuration[ConnectionStringSetting]))
        {
            return services;
        }

        // The deployed Application Insights accepts Entra-authenticated telemetry only (infra: DisableLocalAuth). The
        // host and the worker's Application Insights SDK read the authentication string; this exporter does not, so
        // it gets the same managed identity explicitly, or all it sends is refused.
        var credential = CredentialFrom(configuration[AuthenticationStringSetting]);
        if (credential is not null)
        {
            services.ConfigureAll<AzureMonitorExporterOptions>(o => o.Credential ??= credential);
        }

        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("melious-functions"))
            .WithMetrics(metrics => metrics.AddMeter(GatewayMetrics.MeterName).AddAzureMonitorMetricExporter(o => o.Credential ??= credential))
            .WithTracing(tracing => tracing.AddSource(GatewayMetrics.ActivitySourceName).AddAzureMonitorTraceExporter(o => o.Credential ??= credential));
        return services;
    }

    /// <summary>
    /// The credential an <c>APPLICATIONINSIGHTS_AUTHENTICATION_STRING</c> names: <c>Authorization=AAD</c> with a
    /// <c>ClientId=…</c> for a user-assigned managed identity, without one for the system-assigned identity; null
    /// when there is no string or it does not ask for Entra authentication.
    /// </summary>
    public static TokenCredential? CredentialFrom(string? authenticationString)
    {
        if (string.IsNullOrWhiteSpace(authenticationString))
        {
            return null;
        }

        string? clientId = null;
        var entra = false;
        foreach (var part in authenticationString.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var pair = part.Split('=', 2, StringSplitOptions.TrimEntries);
            if (pair.Length != 2)
            {
                continue;
            }

            if (pair[0].Equals("Authorization", StringComparison.OrdinalIgnoreCase))
            {
                entra = pair[1].Equals("AAD", StringComparison.OrdinalIgnoreCase);
            }
            else if (pair[0].Equals("ClientId", StringComparison.OrdinalIgnoreCase) && pair[1].Length > 0)
            {
                clientId = pair[1];
            }
        }

        if (!entra)
        {
            return null;
        }

        return new ManagedIdentityCredential(clientId is null ? ManagedIdentityId.SystemAssigned : ManagedIdentityId.FromUserAssignedClientId(clientId));
    }
}

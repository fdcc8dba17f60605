using Azure.Identity;
using Azure.Monitor.OpenTelemetry.Exporter;
using Melious.Functions;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// The deployed Application Insights takes Entra-authenticated telemetry only (infra/app/monitoring.bicep:
/// DisableLocalAuth), so the gateway's own exporter must carry the identity the app settings name.
/// </summary>
public sealed class FunctionsTelemetryTests
{
    private const string ConnectionString = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/";

    [Theory]
    [InlineData("ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD")]
    [InlineData("Authorization=AAD")]
    [InlineData(" authorization = aad ; clientid = 11111111-2222-3333-4444-555555555555 ")]
    public void AnEntraAuthenticationString_IsAManagedIdentity(string value) =>
        Assert.IsType<ManagedIdentityCredential>(FunctionsTelemetry.CredentialFrom(value));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("ClientId=11111111-2222-3333-4444-555555555555")]
    [InlineData("Authorization=Other")]
    public void NoEntraAuthenticationString_IsNoCredential(string? value) =>
        Assert.Null(FunctionsTelemetry.CredentialFrom(value));

    [Fact]
    public void TheExporters_CarryTheCredential()
    {
        using var provider = Build(new()
        {
            [FunctionsTelemetry.ConnectionStringSetting] = ConnectionString,
            [FunctionsTelemetry.AuthenticationStringSetting] = "ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD",
        });
        // The exporter options every exporter of the app is built from, whatever name it asks for.
        var options = provider.GetRequiredService<IOptionsMonitor<AzureMonitorExporterOptions>>();
        Assert.IsType<ManagedIdentityCredential>(options.Get(Options.DefaultName).Credential);
        Assert.IsType<ManagedIdentityCredential>(options.Get("AzureMonitorMetricExporter").Credential);
    }

    [Fact]
    public void WithoutAConnectionString_NothingIsExported()
    {
        using var provider = Build(new() { [FunctionsTelemetry.AuthenticationStringSetting] = "Authorization=AAD" });
        Assert.Null(provider.GetService<OpenTelemetry.Metrics.MeterProvider>());
    }

    private static ServiceProvider Build(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfiguration>(configuration);
        services.AddMeliousFunctionsTelemetry(configuration);
        return services.BuildServiceProvider();
    }
}

using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Hosting;

/// <summary>
/// Secrets the Azure deployment passes as Key Vault references (<c>@Microsoft.KeyVault(SecretUri=…)</c>). When the
/// platform cannot resolve one (the app's role on the vault not in effect yet on the first deployment, a deleted
/// secret), the app receives the reference text itself, and the platform tries again only on a restart, a settings
/// change or after 24 hours. The gateway says so on start, fails readiness, and never uses that text as a secret.
/// </summary>
public static partial class KeyVaultReferences
{
    private const string Prefix = "@Microsoft.KeyVault(";

    /// <summary>True when <paramref name="value"/> is a Key Vault reference the platform left unresolved.</summary>
    public static bool IsUnresolved(string? value) =>
        value is not null && value.AsSpan().TrimStart().StartsWith(Prefix, StringComparison.OrdinalIgnoreCase);

    /// <summary>The settings (by name) that hold an unresolved reference.</summary>
    public static IReadOnlyList<string> Unresolved(GatewayOptions options)
    {
        var names = new List<string>(2);
        if (IsUnresolved(options.Upstream.ApiKey))
        {
            names.Add("Melious:Upstream:ApiKey");
        }

        if (IsUnresolved(options.Dashboard.SessionSecret))
        {
            names.Add("Melious:Dashboard:SessionSecret");
        }

        return names;
    }

    /// <summary>Logs each unresolved reference once at start.</summary>
    internal sealed class Check(IOptions<GatewayOptions> options, ILogger<Check> logger) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            foreach (var name in Unresolved(options.Value))
            {
                Log.Unresolved(logger, name);
            }

            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "{Setting} is a Key Vault reference the platform could not resolve; it is not used as a secret and /healthz/ready fails. Check the app identity's 'Key Vault Secrets User' role and the secret, then restart the app (az functionapp restart) so the reference is resolved again")]
        public static partial void Unresolved(ILogger logger, string setting);
    }
}

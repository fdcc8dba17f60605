using Melious.Gateway;
using Melious.Gateway.Auth;
using Melious.Gateway.Routing;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Melious.Admin;

/// <summary>
/// The gateway's own stores, resolved from the same composition root as the gateway (<c>AddMeliousGateway</c>) but
/// without starting any hosted service. Opening a session creates missing tables, so a fresh Azurite works.
/// </summary>
internal sealed class AdminSession : IAsyncDisposable
{
    private readonly ServiceProvider _provider;

    private AdminSession(ServiceProvider provider)
    {
        _provider = provider;
        Options = provider.GetRequiredService<IOptions<GatewayOptions>>().Value;
        try
        {
            Storage = provider.GetRequiredService<StorageClients>();
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException or UriFormatException)
        {
            // A malformed connection string or service URI. The SDK's message names the bad part, never a key.
            throw new CliException("invalid storage settings: " + ErrorMessages.FirstLine(ex.Message));
        }

        Keys = provider.GetRequiredService<ApiKeyStore>();
        Catalog = provider.GetRequiredService<ModelCatalogStore>();
        Usage = provider.GetRequiredService<UsageReader>();
    }

    public GatewayOptions Options { get; }

    public StorageClients Storage { get; }

    public ApiKeyStore Keys { get; }

    public ModelCatalogStore Catalog { get; }

    public UsageReader Usage { get; }

    public static async Task<AdminSession> OpenAsync(IConfiguration configuration, CancellationToken cancellationToken)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(configuration);
        services.AddMeliousGateway(configuration);
        var provider = services.BuildServiceProvider();
        try
        {
            var session = new AdminSession(provider);
            ValidateTablePrefix(session.Options.Storage.TablePrefix);
            if (session.Options.Storage.CreateIfMissing)
            {
                await Task.WhenAll(TableNames.All.Select(name => session.Storage.Table(name).CreateIfNotExistsAsync(cancellationToken)));
            }

            return session;
        }
        catch
        {
            await provider.DisposeAsync();
            throw;
        }
    }

    public ValueTask DisposeAsync() => _provider.DisposeAsync();

    /// <summary>Table names are 3-63 letters and digits starting with a letter, so the prefix must be letters and digits too.</summary>
    private static void ValidateTablePrefix(string? prefix)
    {
        if (string.IsNullOrEmpty(prefix))
        {
            return;
        }

        var longest = TableNames.All.Max(n => n.Length);
        if (!char.IsAsciiLetter(prefix[0]) || !prefix.All(char.IsAsciiLetterOrDigit) || prefix.Length + longest > 63)
        {
            throw new CliException($"the table prefix must start with a letter, contain only letters and digits and be at most {63 - longest} characters (got '{prefix}')");
        }
    }
}

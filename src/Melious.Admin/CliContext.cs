using System.CommandLine;
using Melious.Gateway;
using Microsoft.Extensions.Configuration;

namespace Melious.Admin;

/// <summary>
/// What every command shares: the output writers, the base configuration, the global storage options and the
/// error handling that turns any failure into one line on stderr.
/// </summary>
internal sealed class CliContext(TextWriter stdout, TextWriter stderr, IConfiguration configuration)
{
    private const string StorageSection = GatewayOptions.SectionName + ":Storage:";

    public TextWriter Out { get; } = stdout;

    public TextWriter Error { get; } = stderr;

    public Option<string?> ConnectionString { get; } = new("--connection-string")
    {
        Description = "Storage connection string (overrides Melious__Storage__ConnectionString and any identity-based settings).",
        Recursive = true,
    };

    public Option<string?> TablePrefix { get; } = new("--table-prefix")
    {
        Description = "Prefix of every table name (overrides Melious__Storage__TablePrefix).",
        Recursive = true,
    };

    /// <summary>Wraps a command body: any exception becomes one line on stderr and a non-zero exit code.</summary>
    public Func<ParseResult, CancellationToken, Task<int>> Action(Func<ParseResult, CancellationToken, Task<int>> body) => async (result, cancellationToken) =>
    {
        try
        {
            return await body(result, cancellationToken);
        }
        catch (Exception ex)
        {
            return Fail(ex, cancellationToken);
        }
    };

    public int Fail(Exception exception, CancellationToken cancellationToken)
    {
        var (message, exitCode) = ErrorMessages.Describe(exception, cancellationToken);
        Error.WriteLine("error: " + message);
        return exitCode;
    }

    public void Warn(string message) => Error.WriteLine("warning: " + message);

    /// <summary>Opens the stores with the configuration plus the global options of this invocation.</summary>
    public Task<AdminSession> ConnectAsync(ParseResult result, CancellationToken cancellationToken)
    {
        var overrides = new Dictionary<string, string?>
        {
            // Reading the catalog must never write to it: seeding is the gateway's job, with the gateway's configuration.
            [GatewayOptions.SectionName + ":Catalog:SeedWhenEmpty"] = "false",
        };
        if (result.GetValue(ConnectionString) is { } connectionString)
        {
            if (string.IsNullOrWhiteSpace(connectionString))
            {
                throw new CliException("--connection-string is empty");
            }

            overrides[StorageSection + "ConnectionString"] = connectionString;
            overrides[StorageSection + "TableServiceUri"] = "";
            overrides[StorageSection + "QueueServiceUri"] = "";
            overrides[StorageSection + "AccountName"] = "";
        }

        if (result.GetValue(TablePrefix) is { } prefix)
        {
            overrides[StorageSection + "TablePrefix"] = prefix.Trim();
        }

        var merged = new ConfigurationBuilder()
            .AddConfiguration(configuration)
            .AddInMemoryCollection(overrides)
            .Build();
        return AdminSession.OpenAsync(merged, cancellationToken);
    }
}

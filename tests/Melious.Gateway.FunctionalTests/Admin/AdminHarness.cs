using Azure.Data.Tables;
using Melious.Admin;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Admin;

/// <summary>
/// Runs <see cref="AdminCli"/> in-process against the shared Azurite with a table prefix of its own, and offers the
/// gateway's services built from the very same configuration (to write usage, read keys back, …).
/// </summary>
public sealed class AdminHarness : IAsyncDisposable
{
    private readonly ServiceProvider _services;

    public AdminHarness(AzuriteFixture azurite, IDictionary<string, string?>? settings = null)
    {
        Prefix = AzuriteFixture.NewPrefix();
        var values = new Dictionary<string, string?>
        {
            ["Melious:Storage:ConnectionString"] = azurite.ConnectionString,
            ["Melious:Storage:TablePrefix"] = Prefix,
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            values[key] = value;
        }

        Configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton(Configuration);
        services.AddMeliousGateway(Configuration);
        _services = services.BuildServiceProvider();
    }

    public string Prefix { get; }

    public IConfiguration Configuration { get; }

    public T Get<T>()
        where T : notnull => _services.GetRequiredService<T>();

    public TableClient Table(string name) => Get<StorageClients>().Table(name);

    public async Task<CliResult> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var exitCode = await AdminCli.RunAsync(args, stdout, stderr, Configuration);
        return new CliResult(exitCode, stdout.ToString(), stderr.ToString());
    }

    public async Task<List<TableEntity>> RowsAsync(string table)
    {
        var rows = new List<TableEntity>();
        await foreach (var row in Table(table).QueryAsync<TableEntity>(cancellationToken: TestContext.Current.CancellationToken))
        {
            rows.Add(row);
        }

        return rows;
    }

    public ValueTask DisposeAsync() => _services.DisposeAsync();

    /// <summary>An error is exactly one line on stderr, prefixed <c>error:</c>, with no stack trace.</summary>
    public static void AssertOneLineError(CliResult result, string? contains = null)
    {
        Assert.True(result.ExitCode != 0, result.ToString());
        var line = Assert.Single(result.StderrLines);
        Assert.StartsWith("error: ", line);
        Assert.DoesNotContain("   at ", result.Stderr);
        Assert.DoesNotContain(" at Melious.", result.Stderr);
        Assert.DoesNotContain("--- End of", result.Stderr);
        if (contains is not null)
        {
            Assert.Contains(contains, line, StringComparison.OrdinalIgnoreCase);
        }
    }
}

using Melious.Admin;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.Extensions.Configuration;

namespace Melious.Gateway.FunctionalTests.Admin;

/// <summary>Global options, help and the error contract: one line on stderr, a non-zero exit code, never a stack trace.</summary>
public sealed class AdminCliTests(AzuriteFixture azurite)
{
    [Fact]
    public async Task UnreachableStorage_FailsWithOneLine()
    {
        var closed = Ports.Free();
        var connectionString =
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
            $"TableEndpoint=http://127.0.0.1:{closed}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{closed}/devstoreaccount1;";
        await using var admin = new AdminHarness(azurite, new Dictionary<string, string?> { ["Melious:Storage:ConnectionString"] = connectionString });

        var result = await admin.RunAsync("keys", "list");

        AdminHarness.AssertOneLineError(result, "storage unreachable");
        Assert.Equal(ExitCodes.Failure, result.ExitCode);
        Assert.DoesNotContain("AccountKey", result.Stderr);
        Assert.Equal("", result.Stdout);
    }

    [Fact]
    public async Task GlobalOptions_OverrideTheConfiguredStorage()
    {
        // The configuration points at nothing usable; the options point at the test Azurite.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Melious:Storage:AccountName"] = "doesnotexist",
            ["Melious:Storage:TablePrefix"] = "ignored",
        }).Build();
        var prefix = AzuriteFixture.NewPrefix();
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        var created = await AdminCli.RunAsync(
            ["keys", "create", "--account", "acme", "--name", "n", "--connection-string", azurite.ConnectionString, "--table-prefix", prefix], stdout, stderr, configuration);

        Assert.True(created == 0, stderr.ToString());
        using var listOut = new StringWriter();
        Assert.Equal(0, await AdminCli.RunAsync(["--connection-string", azurite.ConnectionString, "--table-prefix", prefix, "keys", "list", "--format", "json"], listOut, stderr, configuration));
        Assert.Contains("\"acme\"", listOut.ToString());
    }

    [Theory]
    [InlineData]
    [InlineData("keys")]
    [InlineData("frobnicate")]
    [InlineData("keys", "create", "--account", "acme", "--name", "n", "--unknown-option", "1")]
    [InlineData("models", "set")]
    [InlineData("models", "alias", "only-one")]
    [InlineData("keys", "list", "--table-prefix", "9starts-with-a-digit")]
    [InlineData("keys", "list", "--connection-string", "this is not a connection string")]
    public async Task BadCommandLines_FailWithOneLine(params string[] args)
    {
        await using var admin = new AdminHarness(azurite);

        AdminHarness.AssertOneLineError(await admin.RunAsync(args));
    }

    [Fact]
    public async Task InvalidGatewayConfiguration_FailsWithOneLine()
    {
        await using var admin = new AdminHarness(azurite, new Dictionary<string, string?> { ["Melious:Upstream:BaseUrl"] = "not-a-url" });

        AdminHarness.AssertOneLineError(await admin.RunAsync("models", "list"), "invalid configuration");
    }

    [Fact]
    public async Task Help_PrintsUsageToStdout()
    {
        await using var admin = new AdminHarness(azurite);

        var result = await admin.RunAsync("usage", "report", "--help");

        Assert.Equal(0, result.ExitCode);
        Assert.Contains("--from", result.Stdout);
        Assert.Contains("--by", result.Stdout);
        Assert.Equal("", result.Stderr);
    }
}

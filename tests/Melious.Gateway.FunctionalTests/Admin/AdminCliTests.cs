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

    /// <summary>
    /// Storage that accepts the connection and never answers: every attempt runs into the network timeout (made 2 s
    /// here with Melious__Storage__NetworkTimeout). That is unreachable storage (exit 1), not an interruption (130);
    /// only the command's own token being cancelled (Ctrl-C) is "cancelled".
    /// </summary>
    [Fact]
    public async Task SilentStorage_TimesOutAsUnreachable_OnlyCtrlCIsCancelled()
    {
        var silent = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        var held = new List<System.Net.Sockets.TcpClient>();
        using var stop = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    held.Add(await silent.AcceptTcpClientAsync(stop.Token));
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        try
        {
            var port = ((System.Net.IPEndPoint)silent.LocalEndpoint).Port;
            var connectionString =
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
                $"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;";
            await using var admin = new AdminHarness(azurite, new Dictionary<string, string?>
            {
                ["Melious:Storage:ConnectionString"] = connectionString,
                ["Melious:Storage:NetworkTimeout"] = "00:00:02",
            });

            var clock = System.Diagnostics.Stopwatch.StartNew();
            var result = await admin.RunAsync("keys", "list");
            AdminHarness.AssertOneLineError(result, "storage unreachable: timed out (no answer within 2 s, 4 attempts)");
            Assert.Equal(ExitCodes.Failure, result.ExitCode);
            Assert.DoesNotContain("cancel", result.Stderr, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("AccountKey", result.Stderr);
            Assert.InRange(clock.Elapsed.TotalSeconds, 7, 30);

            // Ctrl-C while waiting for the same silent storage.
            using var ctrlC = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            var cancelled = await AdminCli.RunAsync(["keys", "list"], stdout, stderr, admin.Configuration, ctrlC.Token);
            Assert.Equal(ExitCodes.Cancelled, cancelled);
            Assert.Equal("error: cancelled", stderr.ToString().Trim());
        }
        finally
        {
            await stop.CancelAsync();
            await accepting;
            silent.Stop();
            foreach (var client in held)
            {
                client.Dispose();
            }
        }
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

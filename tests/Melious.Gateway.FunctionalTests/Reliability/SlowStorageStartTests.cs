using System.Net;
using System.Net.Sockets;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Routing;
using Microsoft.Extensions.DependencyInjection;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>
/// A gateway started while storage does not answer (an overloaded emulator, a storage account that hangs) still
/// starts: the catalog's first load is bounded at 10 s, after which the configured routes serve and the background
/// refresh keeps trying. Found by the stress runs (docs/reliability.md, section 7): the bound ended the host instead.
/// </summary>
public sealed class SlowStorageStartTests
{
    [Fact]
    public async Task StorageThatNeverAnswers_AtStart_TheGatewayStillStarts_OnTheConfiguredRoutes()
    {
        // A listener that is never accepted from: the kernel completes the TCP handshakes (backlog) and nothing ever
        // answers, so every storage call waits for its own timeout, like a storage emulator starved of CPU.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        var connectionString = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" +
            "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" +
            $"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;";

        await using var gateway = await TestGateway.StartAsync(connectionString, "http://127.0.0.1:9/v1", new Dictionary<string, string?>
        {
            ["Melious:Usage:RunConsumer"] = "false",
        });

        var catalog = gateway.Services.GetRequiredService<ModelCatalog>().Current;
        Figure($"silent storage at start: the gateway started; catalog from storage: {catalog.FromStorage}, {catalog.Models.Count} configured models");
        Assert.False(catalog.FromStorage);
        Assert.Contains(catalog.Models.Keys, m => m == "main-model");
        Assert.Contains(gateway.Logs.Lines, l => l.Contains("first load took longer than 10 s", StringComparison.Ordinal));

        using var client = new HttpClient { BaseAddress = new Uri(gateway.BaseUrl) };
        using var root = await client.GetAsync("/", Ct);
        Assert.Equal(HttpStatusCode.OK, root.StatusCode);
    }
}

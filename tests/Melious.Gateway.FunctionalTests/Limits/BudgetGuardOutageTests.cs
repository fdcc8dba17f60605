using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.FunctionalTests.Limits;

/// <summary>
/// A key with a monthly budget while the usage ledger cannot be read: the request is served on the last known figure,
/// and the next requests do not each wait for another failing read.
/// </summary>
public sealed class BudgetGuardOutageTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task LedgerUnreadable_IsReadAgainOnlyAfterTheCachePeriod()
    {
        await using var proxy = await StorageProxy.StartAsync(azurite.Azurite);
        var reads = 0;
        proxy.BeforeForward = _ =>
        {
            Interlocked.Increment(ref reads);
            throw new InvalidOperationException("storage is failing (a 500 from the proxy)");
        };
        var storage = new StorageClients(new StorageOptions { ConnectionString = proxy.ConnectionString });
        var guard = new BudgetGuard(new UsageReader(storage), Options.Create(new GatewayOptions()), TimeProvider.System, NullLogger<BudgetGuard>.Instance);
        var key = new ApiKeyRecord { Hash = "h", KeyId = "0123456789abcdef", Account = "acme", Name = "budget", MonthlyBudget = 10m };

        Assert.True((await guard.CheckAsync(key, Ct)).Allowed);
        var first = Volatile.Read(ref reads);
        Assert.True(first > 0, "the first check read the ledger");

        for (var i = 0; i < 5; i++)
        {
            Assert.True((await guard.CheckAsync(key, Ct)).Allowed);
        }

        Assert.Equal(first, Volatile.Read(ref reads));
    }
}

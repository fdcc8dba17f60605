using Azure.Data.Tables;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Limits;
using Melious.Gateway.Storage;
using Melious.Gateway.Tests.Support;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Limits;

/// <summary>
/// Tokens per minute for a stream that outlives its minute (a long Claude Code turn): the prompt counts in the minute
/// the request started, the output it streams after the boundary counts in the next minute, on the shared counter,
/// and nothing counts twice. One limiter on Azurite, with a clock the test moves.
/// </summary>
public sealed class TokensWindowBoundaryTests(AzuriteFixture azurite)
{
    private const long Prompt = 30_000;

    [Fact]
    public async Task OutputAfterTheBoundary_CountsInTheNextMinute_EvenWithNoOtherRequest()
    {
        var (limiter, storage, time, key) = await StartAsync();
        var stream = await limiter.AcquireAsync(key, Prompt, Ct);
        stream.Ticket!.Streamed(1_000);

        time.Advance(TimeSpan.FromSeconds(20)); // 00:01:10: the next minute
        stream.Ticket.Streamed(3_000);

        Assert.True(
            await WaitUntilAsync(async () => await UsedAsync(limiter, storage, time, key) == 2_000, TimeSpan.FromSeconds(10)),
            $"the next minute counts {await UsedAsync(limiter, storage, time, key)} tokens, not the 2,000 streamed after the boundary");
    }

    [Fact]
    public async Task AStreamAcrossTheBoundary_DoesNotCountItsPromptAgain_WhenTheKeyIsUsedInTheNextMinute()
    {
        var (limiter, storage, time, key) = await StartAsync();
        var stream = await limiter.AcquireAsync(key, Prompt, Ct);
        stream.Ticket!.Streamed(1_000);

        time.Advance(TimeSpan.FromSeconds(20));
        var next = await limiter.AcquireAsync(key, 100, Ct);
        Assert.NotNull(next.Ticket);
        stream.Ticket.Streamed(3_000);
        stream.Ticket.Complete(new TokenUsage(Prompt, 0, 0, 3_000, 0));
        next.Ticket!.Complete(new TokenUsage(100, 0, 0, 0, 0));

        // 100 for the new request, 2,000 output after the boundary; the 30,000-token prompt stays in the first minute.
        Assert.True(
            await WaitUntilAsync(async () => await UsedAsync(limiter, storage, time, key) == 2_100, TimeSpan.FromSeconds(10)),
            $"the next minute counts {await UsedAsync(limiter, storage, time, key)} tokens, not 2,100");
    }

    private async Task<(KeyRateLimiter Limiter, StorageClients Storage, ManualTimeProvider Time, ApiKeyRecord Key)> StartAsync()
    {
        var storage = new StorageClients(new StorageOptions { ConnectionString = azurite.ConnectionString, TablePrefix = AzuriteFixture.NewPrefix() });
        await storage.Table(TableNames.RateLimits).CreateIfNotExistsAsync(Ct);
        var time = new ManualTimeProvider();
        time.Advance(TimeSpan.FromSeconds(50)); // 00:00:50, ten seconds before a boundary
        var options = Options.Create(new GatewayOptions { RateLimits = new RateLimitOptions { Window = TimeSpan.FromMinutes(1), StreamChargeTokens = 50 } });
        var limiter = new KeyRateLimiter(new QuotaStore(storage), options, time, NullLogger<KeyRateLimiter>.Instance);
        var key = new ApiKeyRecord { Hash = "h", KeyId = "w" + Guid.NewGuid().ToString("N")[..15], Account = "acme", Name = "boundary", TokensPerMinute = 1_000_000 };
        return (limiter, storage, time, key);
    }

    /// <summary>Tokens the key used in the clock's current minute: granted on the shared counter less what this instance holds unspent.</summary>
    private static async Task<long> UsedAsync(KeyRateLimiter limiter, StorageClients storage, ManualTimeProvider time, ApiKeyRecord key)
    {
        var row = $"{KeyRateLimiter.TokensKind}-{QuotaMath.WindowIndex(time.GetUtcNow(), TimeSpan.FromMinutes(1)):D20}";
        var entity = await storage.Table(TableNames.RateLimits).GetEntityIfExistsAsync<TableEntity>(key.KeyId, row, cancellationToken: Ct);
        var granted = entity.HasValue ? EntityValues.Long(entity.Value!, "Granted") ?? 0 : 0;
        return granted - limiter.UnspentFor(key.KeyId, KeyRateLimiter.TokensKind);
    }
}

using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Limits;
using Melious.Gateway.Storage;
using static Melious.Gateway.FunctionalTests.Reliability.ReliabilityKit;

namespace Melious.Gateway.FunctionalTests.Limits;

/// <summary>The shared rows against real Azurite: ETag races, concurrency leases that expire, heartbeats.</summary>
[Collection("Limits")]
public sealed class QuotaStoreTests(AzuriteFixture azurite)
{
    private async Task<QuotaStore> StoreAsync()
    {
        var storage = StorageFor(azurite.ConnectionString, AzuriteFixture.NewPrefix());
        await storage.Table(TableNames.RateLimits).CreateIfNotExistsAsync(Ct);
        return new QuotaStore(storage);
    }

    [Fact]
    public async Task Lease_ManyRacingInstances_HandOutExactlyTheLimit()
    {
        // Six "instances" leasing one unit at a time, all at once: the ETag makes every read-modify-write either win
        // or retry, so the counter ends at the limit and the units handed out add up to it.
        var store = await StoreAsync();
        var taken = await Task.WhenAll(Enumerable.Range(0, 6).Select(async _ =>
        {
            long mine = 0;
            for (var i = 0; i < 30; i++)
            {
                var (took, _) = await store.LeaseAsync("key1", "rpm-1", 100, 1, 6, 0, Ct);
                mine += took;
            }

            return mine;
        }));
        var (none, granted) = await store.LeaseAsync("key1", "rpm-1", 100, 1, 6, 0, Ct);
        Figure($"6 racing instances, limit 100: took {string.Join('/', taken)} = {taken.Sum()}, counter {granted}");
        Assert.Equal(100, taken.Sum());
        Assert.Equal(0, none);
        Assert.Equal(100, granted);

        await store.ReturnAsync("key1", "rpm-1", 7, Ct);
        Assert.Equal((7L, 100L), await store.LeaseAsync("key1", "rpm-1", 100, 7, 6, 0, Ct));
    }

    [Fact]
    public async Task Slots_OfACrashedInstance_ComeBackWhenItsLeaseExpires()
    {
        var store = await StoreAsync();
        var now = DateTimeOffset.UtcNow;
        var ttl = TimeSpan.FromSeconds(30);

        // The "crashed" instance took all 4 slots and never renews.
        Assert.Equal(4, await store.UpdateSlotsAsync("key2", "crashed", (others, mine) => QuotaMath.SlotsAfter(4, others, mine, 4), now, ttl, Ct));
        Assert.Equal(0, await store.UpdateSlotsAsync("key2", "alive", (others, mine) => QuotaMath.SlotsAfter(4, others, mine, 1), now.AddSeconds(29), ttl, Ct));

        // After its lease: its slots are free again, and pruned from the row.
        Assert.Equal(1, await store.UpdateSlotsAsync("key2", "alive", (others, mine) => QuotaMath.SlotsAfter(4, others, mine, 1), now.AddSeconds(31), ttl, Ct));
        var othersSeen = -1;
        await store.UpdateSlotsAsync("key2", "third", (others, mine) => { othersSeen = others; return 0; }, now.AddSeconds(32), ttl, Ct);
        Assert.Equal(1, othersSeen);
    }

    [Fact]
    public async Task Heartbeat_CountsInstancesSeenRecently()
    {
        var store = await StoreAsync();
        var t0 = DateTimeOffset.UtcNow;
        var alive = TimeSpan.FromSeconds(15);
        Assert.Equal(1, await store.HeartbeatAsync("a", t0, alive, Ct));
        Assert.Equal(2, await store.HeartbeatAsync("b", t0.AddSeconds(5), alive, Ct));
        Assert.Equal(2, await store.HeartbeatAsync("c", t0.AddSeconds(18), alive, Ct));   // a is stale, b and c are alive
        await store.RemoveInstanceAsync("b", Ct);
        Assert.Equal(1, await store.HeartbeatAsync("c", t0.AddSeconds(19), alive, Ct));
    }
}

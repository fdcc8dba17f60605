using System.Collections.Concurrent;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Auth;

/// <summary>
/// Enforces a key's monthly spend budget against the usage ledger. The spend figure is read from the ledger and
/// reused for <see cref="AuthOptions.BudgetCacheTtl"/>; the ledger itself trails live traffic by the queue's
/// processing lag. So a key may overspend by at most what it can consume in (cache TTL + queue lag), typically
/// under a minute of traffic. If the ledger cannot be read, the last known figure is used (and the ledger is not read
/// again for a cache period), and with none the request is allowed (availability over strictness; the overspend is
/// still billed).
/// </summary>
public sealed partial class BudgetGuard(UsageReader reader, IOptions<GatewayOptions> options, TimeProvider time, ILogger<BudgetGuard> logger)
{
    private readonly ConcurrentDictionary<string, (long Nanos, long At)> _cache = new(StringComparer.Ordinal);

    /// <summary>True when the key has budget left (or no budget). Spend is in nano-units of the budget currency.</summary>
    public async ValueTask<(bool Allowed, long SpentNanos)> CheckAsync(ApiKeyRecord key, CancellationToken cancellationToken)
    {
        if (key.MonthlyBudget is not { } budget)
        {
            return (true, 0);
        }

        var now = time.GetUtcNow();
        var cacheKey = $"{key.KeyId}|{key.BudgetCurrency}|{now:yyyy-MM}";
        long spent;
        if (_cache.TryGetValue(cacheKey, out var cached) && time.GetElapsedTime(cached.At) < options.Value.Auth.BudgetCacheTtl)
        {
            spent = cached.Nanos;
        }
        else
        {
            try
            {
                spent = await reader.KeyMonthSpendNanosAsync(key.Account, key.KeyId, key.BudgetCurrency, now, cancellationToken);
                _cache[cacheKey] = (spent, time.GetTimestamp());
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The last known figure stands for a cache period too: with storage unreachable, every request of a
                // budget key would otherwise wait out a full read (its retries and timeouts) again.
                Log.LedgerUnavailable(logger, key.KeyId, ex.GetType().Name);
                spent = cached.Nanos;
                _cache[cacheKey] = (spent, time.GetTimestamp());
            }
        }

        return (spent < Pricing.ToNanos(budget), spent);
    }

    /// <summary>Forgets cached spend figures (tests).</summary>
    public void Clear() => _cache.Clear();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Could not read the spend of key {KeyId} ({Error}); using the last known figure")]
        public static partial void LedgerUnavailable(ILogger logger, string keyId, string error);
    }
}

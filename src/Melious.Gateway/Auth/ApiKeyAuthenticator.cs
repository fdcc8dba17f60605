using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Melious.Gateway.Auth;

public enum AuthStatus
{
    Ok,

    /// <summary>No key in <c>x-api-key</c> or <c>Authorization: Bearer</c>.</summary>
    Missing,

    /// <summary>A key that is not in the table.</summary>
    Unknown,

    /// <summary>A revoked key.</summary>
    Disabled,

    /// <summary>Storage is unreachable and the key is not in the cache.</summary>
    Unavailable,
}

/// <summary>The outcome of a key check.</summary>
/// <param name="Status">Accepted, or why not.</param>
/// <param name="Key">The key's record (when found).</param>
/// <param name="Problem">What is wrong with the presented key(s), for the error message; never contains a key.</param>
public readonly record struct AuthResult(AuthStatus Status, ApiKeyRecord? Key, string? Problem = null);

/// <summary>
/// Checks <c>x-api-key</c> or <c>Authorization: Bearer</c> against the hashed keys in the <c>apikeys</c> table.
/// Lookups are cached per key hash: valid keys for <see cref="AuthOptions.CacheTtl"/> (so a revocation applies
/// within that time), unknown keys for <see cref="AuthOptions.NegativeCacheTtl"/>. While storage is unreachable,
/// keys that were valid keep working for <see cref="AuthOptions.StaleIfErrorFor"/> (storage is retried for such a key at
/// most every 5 s, and a slow store delays its requests by at most 1 s); keys never seen before cannot be verified and
/// get 503 until storage is back. Concurrent lookups of one key share a single storage read.
/// </summary>
public sealed partial class ApiKeyAuthenticator(ApiKeyStore store, IOptions<GatewayOptions> options, TimeProvider time, ILogger<ApiKeyAuthenticator> logger)
{
    private const int MaxCacheEntries = 100_000;
    private const int MaxKeyLength = 256;

    private readonly ConcurrentDictionary<string, CacheEntry> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Task<CacheEntry>> _inflight = new(StringComparer.Ordinal);

    private static readonly TimeSpan StaleFetchWait = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan StaleRetryInterval = TimeSpan.FromSeconds(5);

    /// <summary>A lookup result; <see cref="RetryAt"/> (a timestamp) defers the next storage attempt after a failure.</summary>
    private sealed record CacheEntry(ApiKeyRecord? Record, long FetchedAt, long RetryAt = 0);

    public async ValueTask<AuthResult> AuthenticateAsync(IHeaderDictionary headers, CancellationToken cancellationToken)
    {
        var apiKey = headers["x-api-key"].ToString().Trim();
        var bearer = BearerToken(headers[HeaderNames.Authorization].ToString());

        if (apiKey.Length == 0 && bearer.Length == 0)
        {
            return new AuthResult(AuthStatus.Missing, null);
        }

        // Claude Code sends both headers when both variables are set; accept the request if either key is good.
        var first = apiKey.Length > 0 ? await CheckAsync(apiKey, cancellationToken) : new AuthResult(AuthStatus.Missing, null);
        if (first.Status is AuthStatus.Ok || bearer.Length == 0 || bearer == apiKey)
        {
            return first.Status == AuthStatus.Missing ? new AuthResult(AuthStatus.Unknown, null) : first;
        }

        var second = await CheckAsync(bearer, cancellationToken);
        if (first.Status == AuthStatus.Missing || second.Status == AuthStatus.Ok)
        {
            return second;
        }

        return Both(first, second);
    }

    /// <summary>Drops every cached lookup (tests, and the admin CLI after a revocation in-process).</summary>
    public void Clear() => _cache.Clear();

    /// <summary>
    /// Two different keys, neither accepted: the most informative failure (disabled &gt; unavailable &gt; unknown) decides
    /// the status, and the message names the header it came from, the one ignored, and what is wrong with each.
    /// </summary>
    private static AuthResult Both(AuthResult apiKey, AuthResult bearer)
    {
        static int Rank(AuthStatus s) => s switch { AuthStatus.Disabled => 3, AuthStatus.Unavailable => 2, AuthStatus.Unknown => 1, _ => 0 };
        var useApiKey = Rank(apiKey.Status) >= Rank(bearer.Status);
        // The x-api-key header is named "the api-key header" on purpose: Claude Code replaces any error whose message
        // contains "x-api-key" with its own "Invalid API key · Fix external API key", which would hide this one.
        var (used, usedName, ignored, ignoredName) = useApiKey
            ? (apiKey, ApiKeyHeader, bearer, BearerHeader)
            : (bearer, BearerHeader, apiKey, ApiKeyHeader);
        var problem = $"two different keys were sent, one in the api-key header (ANTHROPIC_API_KEY) and one as Authorization: Bearer (ANTHROPIC_AUTH_TOKEN); " +
            $"the gateway accepts either, but neither is valid. Used {usedName}: {Describe(used)}; ignored {ignoredName}: {Describe(ignored)}";
        return used with { Problem = problem };
    }

    private const string ApiKeyHeader = "the api-key header";
    private const string BearerHeader = "Authorization: Bearer";

    private static string Describe(AuthResult result) => result.Status switch
    {
        AuthStatus.Disabled => "this API key has been revoked",
        AuthStatus.Unavailable => "the key store is temporarily unavailable",
        _ => result.Problem ?? KeyFormat.UnknownKeyMessage,
    };

    private static string BearerToken(string authorization)
    {
        const string scheme = "Bearer ";
        return authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) ? authorization[scheme.Length..].Trim() : "";
    }

    /// <summary>Checks one key given on its own (the dashboard's sign-in form), exactly as a header key is checked.</summary>
    public ValueTask<AuthResult> AuthenticateKeyAsync(string key, CancellationToken cancellationToken) =>
        key.Trim() is { Length: > 0 } trimmed ? CheckAsync(trimmed, cancellationToken) : ValueTask.FromResult(new AuthResult(AuthStatus.Missing, null));

    /// <summary>
    /// Checks a key by its hash (a dashboard session holds the hash, never the key), with the same cache, so a
    /// revocation ends a session within <see cref="AuthOptions.CacheTtl"/>.
    /// </summary>
    public ValueTask<AuthResult> AuthenticateHashAsync(string hash, CancellationToken cancellationToken) =>
        hash.Length == 64 && hash.All(char.IsAsciiHexDigitLower) ? CheckHashAsync(hash, cancellationToken) : ValueTask.FromResult(new AuthResult(AuthStatus.Unknown, null));

    private ValueTask<AuthResult> CheckAsync(string key, CancellationToken cancellationToken)
    {
        if (key.Length > MaxKeyLength)
        {
            return ValueTask.FromResult(new AuthResult(AuthStatus.Unknown, null, "the key is far too long to be a Melious key"));
        }

        // Classified by format only: a malformed key never reaches the store, a well-formed one always does.
        if (KeyFormat.Problem(key) is { } problem)
        {
            return ValueTask.FromResult(new AuthResult(AuthStatus.Unknown, null, problem));
        }

        return CheckHashAsync(ApiKeys.Hash(key), cancellationToken);
    }

    private async ValueTask<AuthResult> CheckHashAsync(string hash, CancellationToken cancellationToken)
    {
        var now = time.GetTimestamp();
        _cache.TryGetValue(hash, out var cached);
        if (cached is not null && (time.GetElapsedTime(cached.FetchedAt, now) < Ttl(cached) || now < cached.RetryAt))
        {
            return ToResult(cached.Record, hash);
        }

        var fetch = FetchAsync(hash);
        try
        {
            // With a known-good key in hand, a slow key store costs a request at most a second.
            var entry = cached?.Record is not null
                ? await fetch.WaitAsync(StaleFetchWait, time, cancellationToken)
                : await fetch.WaitAsync(cancellationToken);
            return ToResult(entry.Record, hash);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // A lookup that timed out on its own (storage slower than 10 s) is storage being unavailable, not the
            // caller cancelling: before, it escaped as an unhandled exception and the client got a bare 500.
            if (cached?.Record is not null && time.GetElapsedTime(cached.FetchedAt, now) < options.Value.Auth.StaleIfErrorFor)
            {
                // Storage is down (or slow): keep the key working and try storage again in a few seconds, not on
                // every request. Unless the lookup finished meanwhile: its fresh answer (a revocation) wins.
                _cache.TryUpdate(hash, cached with { RetryAt = now + (long)(StaleRetryInterval.TotalSeconds * time.TimestampFrequency) }, cached);
                Log.ServingStale(logger, cached.Record.KeyId, ex.GetType().Name);
                return ToResult(cached.Record, hash);
            }

            if (cached is not null && cached.Record is null)
            {
                return new AuthResult(AuthStatus.Unknown, null);
            }

            Log.StoreUnavailable(logger, ex.GetType().Name, ex.Message);
            return new AuthResult(AuthStatus.Unavailable, null);
        }
    }

    private TimeSpan Ttl(CacheEntry entry) => entry.Record is null ? options.Value.Auth.NegativeCacheTtl : options.Value.Auth.CacheTtl;

    private static AuthResult ToResult(ApiKeyRecord? record, string hash)
    {
        if (record is null || !ApiKeys.HashesEqual(record.Hash, hash))
        {
            return new AuthResult(AuthStatus.Unknown, null);
        }

        return record.Enabled ? new AuthResult(AuthStatus.Ok, record) : new AuthResult(AuthStatus.Disabled, record);
    }

    private Task<CacheEntry> FetchAsync(string hash)
    {
        var completion = new TaskCompletionSource<CacheEntry>(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = _inflight.GetOrAdd(hash, completion.Task);
        if (running != completion.Task)
        {
            return running;
        }

        _ = CompleteAsync(hash, completion);
        return completion.Task;
    }

    private async Task CompleteAsync(string hash, TaskCompletionSource<CacheEntry> completion)
    {
        try
        {
            completion.SetResult(await FetchCoreAsync(hash));
        }
        catch (Exception ex)
        {
            completion.SetException(ex);
        }
        finally
        {
            _inflight.TryRemove(new KeyValuePair<string, Task<CacheEntry>>(hash, completion.Task));
        }
    }

    private async Task<CacheEntry> FetchCoreAsync(string hash)
    {
        // Not tied to any one caller's token: a shared lookup must not be cancelled by one client leaving.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var record = await store.FindByHashAsync(hash, timeout.Token);
        var entry = new CacheEntry(record, time.GetTimestamp());
        if (_cache.Count >= MaxCacheEntries)
        {
            Trim();
        }

        _cache[hash] = entry;
        return entry;
    }

    private void Trim()
    {
        foreach (var (key, value) in _cache)
        {
            if (value.Record is null)
            {
                _cache.TryRemove(key, out _);
            }
        }

        if (_cache.Count >= MaxCacheEntries)
        {
            _cache.Clear();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Key store unreachable ({Error}); accepting cached key {KeyId}")]
        public static partial void ServingStale(ILogger logger, string keyId, string error);

        [LoggerMessage(2, LogLevel.Error, "Key store unreachable and key not cached ({Error}: {Message})")]
        public static partial void StoreUnavailable(ILogger logger, string error, string message);
    }
}

using System.Collections.Concurrent;

namespace Melious.Gateway.Auth;

/// <summary>
/// Per-key request-rate and concurrency limits, enforced in this process (each gateway instance enforces the
/// key's limits on its own traffic). The rate limit is a one-minute fixed window.
/// </summary>
public sealed class KeyLimiter(TimeProvider time)
{
    private readonly ConcurrentDictionary<string, RateWindow> _windows = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StrongBox> _active = new(StringComparer.Ordinal);

    private sealed class RateWindow
    {
        public long Minute;
        public int Count;
    }

    private sealed class StrongBox
    {
        public int Value;
    }

    /// <summary>Counts one request against the key's per-minute limit. Returns the seconds to wait when over it.</summary>
    public bool TryCountRequest(ApiKeyRecord key, out int retryAfterSeconds)
    {
        retryAfterSeconds = 0;
        if (key.RequestsPerMinute <= 0)
        {
            return true;
        }

        var now = time.GetUtcNow();
        var minute = now.ToUnixTimeSeconds() / 60;
        var window = _windows.GetOrAdd(key.KeyId, static _ => new RateWindow());
        lock (window)
        {
            if (window.Minute != minute)
            {
                window.Minute = minute;
                window.Count = 0;
            }

            if (window.Count >= key.RequestsPerMinute)
            {
                retryAfterSeconds = (int)Math.Max(1, 60 - (now.ToUnixTimeSeconds() % 60));
                return false;
            }

            window.Count++;
            return true;
        }
    }

    /// <summary>Takes a concurrency slot; dispose the lease when the request ends.</summary>
    public bool TryEnter(ApiKeyRecord key, out Lease lease)
    {
        lease = default;
        if (key.MaxConcurrentStreams <= 0)
        {
            return true;
        }

        var box = _active.GetOrAdd(key.KeyId, static _ => new StrongBox());
        if (Interlocked.Increment(ref box.Value) > key.MaxConcurrentStreams)
        {
            Interlocked.Decrement(ref box.Value);
            return false;
        }

        lease = new Lease(box);
        return true;
    }

    public int ActiveFor(string keyId) => _active.TryGetValue(keyId, out var box) ? Volatile.Read(ref box.Value) : 0;

    public readonly struct Lease : IDisposable
    {
        private readonly StrongBox? _box;

        internal Lease(object box) => _box = (StrongBox)box;

        public void Dispose()
        {
            if (_box is not null)
            {
                Interlocked.Decrement(ref _box.Value);
            }
        }
    }
}

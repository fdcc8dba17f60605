using System.Collections.Concurrent;
using Melious.Gateway.Auth;
using Melious.Gateway.Upstream;
using Melious.Gateway.Usage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Limits;

/// <summary>What a limit looked like when a request was checked: for the <c>anthropic-ratelimit-*</c> headers.</summary>
public readonly record struct RateLimitStatus(long Limit, long Remaining, DateTimeOffset Reset);

/// <summary>The answer to "may this request run?": a ticket to complete when it ends, or the 429 to send.</summary>
public sealed class LimitDecision
{
    public LimitTicket? Ticket { get; init; }

    public GatewayError? Error { get; init; }

    public RateLimitStatus? Requests { get; init; }

    public RateLimitStatus? Tokens { get; init; }

    /// <summary>Which limit refused the request (<c>rpm</c>, <c>tpm</c> or <c>concurrency</c>), for the rejection metric.</summary>
    public string? Limit { get; init; }

    internal static readonly LimitDecision Unlimited = new() { Ticket = LimitTicket.None };
}

/// <summary>
/// Per-key requests per minute, input+output tokens per minute and concurrent requests, enforced across every
/// instance sharing the storage account (docs/limits.md).
/// <list type="bullet">
/// <item>Per-minute limits: each instance leases quota in slices from a per-window counter row (<see cref="QuotaStore"/>)
/// and spends it locally; a request costs a storage round trip only when the local slice runs out. Idle slices are
/// returned on the heartbeat; once the shared counter says "exhausted", the instance refuses locally for
/// <see cref="RateLimitOptions.ExhaustedRecheck"/>.</item>
/// <item>Tokens: the estimated input is taken before the call; output is charged as it streams (every
/// <see cref="RateLimitOptions.StreamChargeTokens"/> tokens, from the slice); when the request ends, the difference
/// between what was charged and the upstream's usage (uncached input + cache writes + output) is charged or given
/// back.</item>
/// <item>Concurrency: slots held per instance in one row, under leases renewed by the heartbeat, so a crashed
/// instance's slots come back after <see cref="RateLimitOptions.ConcurrencyLeaseTtl"/>. Spare slots are kept until a
/// heartbeat sees them unused.</item>
/// <item>Storage unreachable: each instance enforces limit ÷ last known instance count on its own, logged once when
/// it starts and once when storage is back.</item>
/// </list>
/// </summary>
public sealed partial class KeyRateLimiter(QuotaStore store, IOptions<GatewayOptions> options, TimeProvider time, ILogger<KeyRateLimiter> logger) : BackgroundService
{
    internal const string RequestsKind = "rpm";
    internal const string TokensKind = "tpm";

    private readonly RateLimitOptions _options = options.Value.RateLimits;
    private readonly ConcurrentDictionary<(string KeyId, string Kind), RateBucket> _rates = new();
    private readonly ConcurrentDictionary<string, SlotState> _slots = new(StringComparer.Ordinal);
    private volatile bool _degraded;
    private volatile int _instances = 1;

    /// <summary>This process's id in the shared rows.</summary>
    public string InstanceId { get; } = Guid.NewGuid().ToString("N");

    /// <summary>Live instances as of the last heartbeat (1 until the first one).</summary>
    public int Instances => _instances;

    /// <summary>True while storage is unreachable and limits are enforced per instance.</summary>
    public bool Degraded => _degraded;

    /// <summary>Concurrent requests of a key running in this instance.</summary>
    public int ActiveFor(string keyId) => _slots.TryGetValue(keyId, out var slot) ? Volatile.Read(ref slot.Active) : 0;

    /// <summary>Quota of a key this instance has leased for the current window and not spent (negative: owed).</summary>
    public long UnspentFor(string keyId, string kind)
    {
        if (!_rates.TryGetValue((keyId, kind), out var bucket))
        {
            return 0;
        }

        lock (bucket.Sync)
        {
            return bucket.Window == QuotaMath.WindowIndex(time.GetUtcNow(), _options.Window) ? bucket.Available : 0;
        }
    }

    /// <summary>The 429 message of the requests-per-minute limit ("1 request", "3 requests").</summary>
    internal static string RequestsRefusal(long perMinute) =>
        perMinute == 1 ? "this key allows 1 request per minute" : $"this key allows {perMinute} requests per minute";

    /// <summary>The 429 message of the concurrency limit ("1 concurrent request", "2 concurrent requests").</summary>
    internal static string ConcurrencyRefusal(long max) =>
        max == 1 ? "this key allows at most 1 concurrent request" : $"this key allows at most {max} concurrent requests";

    /// <summary>Checks and takes the key's limits for one request with <paramref name="estimatedInputTokens"/>.</summary>
    public async ValueTask<LimitDecision> AcquireAsync(ApiKeyRecord key, long estimatedInputTokens, CancellationToken cancellationToken)
    {
        if (key.RequestsPerMinute <= 0 && key.TokensPerMinute <= 0 && key.MaxConcurrentStreams <= 0)
        {
            return LimitDecision.Unlimited;
        }

        var now = time.GetUtcNow();
        Take? requests = null;
        Take? tokens = null;
        if (key.RequestsPerMinute > 0)
        {
            requests = await TakeAsync(Bucket(key.KeyId, RequestsKind), key.RequestsPerMinute, 1, now, cancellationToken);
            if (!requests.Value.Ok)
            {
                return Reject(key, requests.Value, null, RequestsRefusal(key.RequestsPerMinute));
            }
        }

        if (key.TokensPerMinute > 0)
        {
            var estimate = Math.Max(1, estimatedInputTokens);
            tokens = await TakeAsync(Bucket(key.KeyId, TokensKind), key.TokensPerMinute, estimate, now, cancellationToken);
            if (!tokens.Value.Ok)
            {
                Refund(requests);
                var message = estimate > key.TokensPerMinute
                    ? $"this request's estimated {estimate} input tokens exceed the key's limit of {key.TokensPerMinute} tokens per minute"
                    : $"this key allows {key.TokensPerMinute} input and output tokens per minute";
                return Reject(key, requests, tokens.Value, message);
            }
        }

        SlotState? slot = null;
        if (key.MaxConcurrentStreams > 0)
        {
            slot = _slots.GetOrAdd(key.KeyId, static _ => new SlotState());
            if (!await EnterAsync(key.KeyId, slot, key.MaxConcurrentStreams, now, cancellationToken))
            {
                Refund(requests);
                Refund(tokens);
                return Reject(key, requests, tokens, ConcurrencyRefusal(key.MaxConcurrentStreams), concurrency: true);
            }
        }

        return new LimitDecision
        {
            Ticket = new LimitTicket(this, tokens, slot, _options.StreamChargeTokens),
            Requests = requests?.Status,
            Tokens = tokens?.Status,
        };
    }

    /// <summary>
    /// The one place a request is refused for a key limit (a hook for rejection metrics belongs here). The 429 says
    /// which limit, with retry-after: the end of the window for the per-minute limits, 1 s for concurrency.
    /// </summary>
    private LimitDecision Reject(ApiKeyRecord key, Take? requests, Take? tokens, string message, bool concurrency = false)
    {
        var now = time.GetUtcNow();
        var refused = concurrency ? (Take?)null : tokens is { Ok: false } ? tokens : requests;
        var retryAfter = refused is { } r ? QuotaMath.SecondsUntil(now, r.RetryAt) : 1;
        var limit = concurrency ? "concurrency" : refused?.Bucket.Kind ?? "?";
        Log.Refused(logger, key.KeyId, limit, retryAfter);
        return new LimitDecision
        {
            Limit = limit,
            Error = new GatewayError(429, "rate_limit_error", message) { RetryAfter = retryAfter.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            Requests = requests?.Status,
            Tokens = tokens?.Status,
        };
    }

    private RateBucket Bucket(string keyId, string kind) => _rates.GetOrAdd((keyId, kind), static k => new RateBucket(k.KeyId, k.Kind));

    private static string Row(string kind, long window) => $"{kind}-{window:D20}";

    private async ValueTask<Take> TakeAsync(RateBucket bucket, long limit, long amount, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var window = QuotaMath.WindowIndex(now, _options.Window);
        if (!_options.Distributed || _degraded)
        {
            return TakeLocal(bucket, limit, amount, now, window);
        }

        lock (bucket.Sync)
        {
            bucket.Limit = limit;
            if (TryTakeLeased(bucket, amount, window) is { } taken)
            {
                return taken;
            }

            if (now < bucket.ExhaustedUntil)
            {
                return Denied(bucket, limit, window, bucket.Granted - bucket.Available);
            }
        }

        await bucket.Gate.WaitAsync(cancellationToken);
        try
        {
            if (_degraded)
            {
                return TakeLocal(bucket, limit, amount, now, window);
            }

            long want;
            long debt;
            lock (bucket.Sync)
            {
                if (TryTakeLeased(bucket, amount, window) is { } taken)
                {
                    return taken;
                }

                if (now < bucket.ExhaustedUntil)
                {
                    return Denied(bucket, limit, window, bucket.Granted - bucket.Available);
                }

                debt = Math.Max(0, -bucket.Available);
                want = amount - bucket.Available;
            }

            var (took, granted) = await store.LeaseAsync(bucket.KeyId, Row(bucket.Kind, window), limit, want, _instances, debt, cancellationToken);
            long leftover;
            lock (bucket.Sync)
            {
                Roll(bucket, window);
                if (bucket.Window > window)
                {
                    // The window ended while the lease was under way (a stream's charge moved the bucket on): that
                    // slice is worth nothing now. The request is charged to the current window, as a debt the next
                    // lease or heartbeat settles.
                    bucket.Available -= amount;
                    bucket.Spent += amount;
                    bucket.Used = true;
                    return new Take(true, bucket, bucket.Window, amount, false, new RateLimitStatus(limit, Math.Max(0, limit - amount), QuotaMath.WindowEnd(bucket.Window, _options.Window)), default);
                }

                bucket.Available += took;
                bucket.Granted = granted;
                if (TryTakeLeased(bucket, amount, window) is { } taken)
                {
                    return taken;
                }

                bucket.ExhaustedUntil = now + _options.ExhaustedRecheck;
                leftover = Math.Max(0, bucket.Available);
                bucket.Available -= leftover;
            }

            // Refused with a remainder too small for this request: give it back at once, another instance (or a
            // smaller request) can use it.
            if (leftover > 0)
            {
                await ReturnSafelyAsync(bucket, Row(bucket.Kind, window), leftover, window, cancellationToken);
            }

            lock (bucket.Sync)
            {
                return Denied(bucket, limit, window, bucket.Granted - Math.Max(0, bucket.Available));
            }
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            EnterDegraded(ex);
            return TakeLocal(bucket, limit, amount, now, window);
        }
        finally
        {
            bucket.Gate.Release();
        }
    }

    /// <summary>Spends from the local slice (caller holds the bucket's lock).</summary>
    private Take? TryTakeLeased(RateBucket bucket, long amount, long window)
    {
        Roll(bucket, window);
        if (bucket.Available < amount)
        {
            return null;
        }

        bucket.Available -= amount;
        bucket.Spent += amount;
        bucket.Used = true;
        var remaining = Math.Max(0, bucket.Limit - bucket.Granted + bucket.Available);
        return new Take(true, bucket, window, amount, false, new RateLimitStatus(bucket.Limit, remaining, QuotaMath.WindowEnd(window, _options.Window)), default);
    }

    private Take Denied(RateBucket bucket, long limit, long window, long used)
    {
        var end = QuotaMath.WindowEnd(window, _options.Window);
        var remaining = Math.Max(0, limit - used);
        return new Take(false, bucket, window, 0, false, new RateLimitStatus(limit, remaining, end), end);
    }

    private Take TakeLocal(RateBucket bucket, long limit, long amount, DateTimeOffset now, long window)
    {
        var perInstance = QuotaMath.PerInstance(limit, _instances);
        lock (bucket.Sync)
        {
            // The instance's share counts what it spent this window before storage went away; what it spends now is
            // owed to the shared counter (negative Available) and charged once storage answers again.
            Roll(bucket, window);
            var end = QuotaMath.WindowEnd(window, _options.Window);
            if (bucket.Spent + amount > perInstance)
            {
                return new Take(false, bucket, window, 0, true, new RateLimitStatus(perInstance, Math.Max(0, perInstance - bucket.Spent), end), end);
            }

            bucket.Spent += amount;
            bucket.Available -= amount;
            bucket.Used = true;
            return new Take(true, bucket, window, amount, true, new RateLimitStatus(perInstance, perInstance - bucket.Spent, end), default);
        }
    }

    /// <summary>
    /// Moves a bucket to a later window: the old window's slice is worth nothing there (caller holds the lock). Never
    /// back: a take whose clock was read before a stream's charge moved the bucket on spends from the current window.
    /// </summary>
    private static void Roll(RateBucket bucket, long window)
    {
        if (bucket.Window >= window)
        {
            return;
        }

        bucket.Window = window;
        bucket.Available = 0;
        bucket.Granted = 0;
        bucket.Spent = 0;
        bucket.ExhaustedUntil = default;
    }

    private static void Refund(Take? take) => Charge(take, 0);

    /// <summary>Settles a take against what was really used (0 = refund; more than taken = debt owed to the counter).</summary>
    private static void Charge(Take? take, long actual)
    {
        if (take is not { Ok: true } t)
        {
            return;
        }

        var bucket = t.Bucket;
        lock (bucket.Sync)
        {
            if (bucket.Window == t.Window)
            {
                bucket.Available -= actual - t.Amount;
                bucket.Spent += actual - t.Amount;
            }
            else if (bucket.Window > t.Window)
            {
                // The request ran into the next window: its tokens count there.
                bucket.Available -= actual;
                bucket.Spent += actual;
            }
        }
    }

    private async ValueTask<bool> EnterAsync(string keyId, SlotState slot, int limit, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!_options.Distributed || _degraded)
        {
            return EnterLocal(slot, limit);
        }

        lock (slot.Sync)
        {
            if (slot.Active < slot.Held)
            {
                slot.Active++;
                slot.Used = true;
                return true;
            }

            if (now < slot.DeniedUntil)
            {
                return false;
            }
        }

        await slot.Gate.WaitAsync(cancellationToken);
        try
        {
            if (_degraded)
            {
                return EnterLocal(slot, limit);
            }

            int mine;
            lock (slot.Sync)
            {
                if (slot.Active < slot.Held)
                {
                    slot.Active++;
                    slot.Used = true;
                    return true;
                }

                mine = Math.Max(slot.Held, slot.Active);
            }

            var held = await store.UpdateSlotsAsync(keyId, InstanceId, (others, _) => QuotaMath.SlotsAfter(limit, others, mine, 1), now, _options.ConcurrencyLeaseTtl, cancellationToken);
            lock (slot.Sync)
            {
                slot.Held = held;
                if (slot.Active < slot.Held)
                {
                    slot.Active++;
                    slot.Used = true;
                    return true;
                }

                slot.DeniedUntil = now + _options.ExhaustedRecheck;
                return false;
            }
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            EnterDegraded(ex);
            return EnterLocal(slot, limit);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    private bool EnterLocal(SlotState slot, int limit)
    {
        var perInstance = (int)QuotaMath.PerInstance(limit, _instances);
        lock (slot.Sync)
        {
            if (slot.Active >= perInstance)
            {
                return false;
            }

            slot.Active++;
            slot.Used = true;
            return true;
        }
    }

    private static void Leave(SlotState slot)
    {
        lock (slot.Sync)
        {
            slot.Active = Math.Max(0, slot.Active - 1);
        }
    }

    private static bool IsStorageFailure(Exception ex, CancellationToken cancellationToken) =>
        ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested;

    private void EnterDegraded(Exception ex)
    {
        if (!_degraded)
        {
            _degraded = true;
            Log.StorageDown(logger, _instances, ex.GetType().Name, ex.Message);
        }
    }

    /// <summary>The heartbeat: instance count, concurrency lease renewal, idle quota returned, token debts settled.</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Distributed)
        {
            return;
        }

        while (!stoppingToken.IsCancellationRequested)
        {
            await TickAsync(stoppingToken);
            try
            {
                await Task.Delay(_options.HeartbeatInterval, time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One heartbeat (public for tests and benchmarks that drive it by hand).</summary>
    public async Task TickAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        try
        {
            _instances = await store.HeartbeatAsync(InstanceId, now, _options.HeartbeatInterval * 3, cancellationToken);

            var window = QuotaMath.WindowIndex(now, _options.Window);
            foreach (var (id, bucket) in _rates)
            {
                await SettleAsync(bucket, window, cancellationToken);
                lock (bucket.Sync)
                {
                    if (bucket.Window < window - 1 && !bucket.Used)
                    {
                        _rates.TryRemove(id, out _);
                    }
                }
            }

            foreach (var (keyId, slot) in _slots)
            {
                await RenewAsync(keyId, slot, now, cancellationToken);
            }

            // Back to sharing only once what was spent during an outage is charged to the shared counters.
            if (_degraded)
            {
                _degraded = false;
                Log.StorageBack(logger, _instances);
            }
        }
        catch (Exception ex) when (IsStorageFailure(ex, cancellationToken))
        {
            EnterDegraded(ex);
        }
    }

    private async Task SettleInBackgroundAsync(RateBucket bucket, bool leaseSlice)
    {
        // One settle in flight per bucket: streams charging every few tokens must not queue a storage request each.
        if (Interlocked.CompareExchange(ref bucket.Settling, 1, 0) != 0)
        {
            return;
        }

        try
        {
            // A debt that grew while the first write was under way is settled by a second one (bounded: the slice
            // leased with the first usually covers it).
            for (var round = 0; round < 3 && !_degraded && Volatile.Read(ref bucket.Available) < 0; round++)
            {
                await SettleAsync(bucket, QuotaMath.WindowIndex(time.GetUtcNow(), _options.Window), CancellationToken.None, debtOnly: true, leaseSlice);
            }
        }
        catch (Exception ex)
        {
            EnterDegraded(ex);
        }
        finally
        {
            Volatile.Write(ref bucket.Settling, 0);
        }
    }

    private async Task SettleAsync(RateBucket bucket, long window, CancellationToken cancellationToken, bool debtOnly = false, bool leaseSlice = false)
    {
        await bucket.Gate.WaitAsync(cancellationToken);
        try
        {
            long debt;
            long unused;
            lock (bucket.Sync)
            {
                if (bucket.Window != window)
                {
                    return;
                }

                debt = Math.Max(0, -bucket.Available);
                unused = !debtOnly && !bucket.Used && bucket.Available > 0 ? bucket.Available : 0;
                if (!debtOnly)
                {
                    bucket.Used = false;
                }

                bucket.Available -= unused;
            }

            var row = Row(bucket.Kind, window);
            if (debt > 0)
            {
                // Already spent: charged even beyond the limit (limit 0 leaves exactly the debt to take). Settled for
                // a running stream, the write also leases a slice when the counter has room, so the stream's next
                // output tokens are spent locally again.
                long limit;
                lock (bucket.Sync)
                {
                    limit = leaseSlice ? bucket.Limit : 0;
                }

                var (took, granted) = await store.LeaseAsync(bucket.KeyId, row, limit, debt, _instances, debt, cancellationToken);
                lock (bucket.Sync)
                {
                    if (bucket.Window == window)
                    {
                        bucket.Available += took;
                        bucket.Granted = granted;
                    }
                }
            }

            if (unused > 0)
            {
                await ReturnSafelyAsync(bucket, row, unused, window, cancellationToken);
            }
        }
        finally
        {
            bucket.Gate.Release();
        }
    }

    private async Task ReturnSafelyAsync(RateBucket bucket, string row, long unused, long window, CancellationToken cancellationToken)
    {
        try
        {
            await store.ReturnAsync(bucket.KeyId, row, unused, cancellationToken);
            lock (bucket.Sync)
            {
                if (bucket.Window == window)
                {
                    bucket.Granted = QuotaMath.Return(bucket.Granted, unused);
                    bucket.ExhaustedUntil = default;
                }
            }
        }
        catch
        {
            // Not returned: keep it here rather than lose it.
            lock (bucket.Sync)
            {
                if (bucket.Window == window)
                {
                    bucket.Available += unused;
                }
            }

            throw;
        }
    }

    private async Task RenewAsync(string keyId, SlotState slot, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await slot.Gate.WaitAsync(cancellationToken);
        try
        {
            int target;
            lock (slot.Sync)
            {
                if (slot.Held == 0 && slot.Active == 0)
                {
                    return;
                }

                // Spare slots unused since the last heartbeat go back; the rest are renewed.
                target = slot.Used ? Math.Max(slot.Held, slot.Active) : slot.Active;
                slot.Used = false;
                slot.Held = target;
                slot.DeniedUntil = default;
            }

            await store.UpdateSlotsAsync(keyId, InstanceId, (_, _) => target, now, _options.ConcurrencyLeaseTtl, cancellationToken);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (!_options.Distributed || _degraded)
        {
            return;
        }

        // Leaving: give back unspent quota and spare slots, and stop counting as an instance. Best effort.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            var window = QuotaMath.WindowIndex(time.GetUtcNow(), _options.Window);
            foreach (var bucket in _rates.Values)
            {
                long unused;
                lock (bucket.Sync)
                {
                    unused = bucket.Window == window ? Math.Max(0, bucket.Available) : 0;
                    bucket.Available -= unused;
                }

                if (unused > 0)
                {
                    await store.ReturnAsync(bucket.KeyId, Row(bucket.Kind, window), unused, timeout.Token);
                }
            }

            foreach (var (keyId, slot) in _slots)
            {
                int active;
                lock (slot.Sync)
                {
                    active = slot.Active;
                    slot.Held = active;
                }

                await store.UpdateSlotsAsync(keyId, InstanceId, (_, _) => active, time.GetUtcNow(), _options.ConcurrencyLeaseTtl, timeout.Token);
            }

            await store.RemoveInstanceAsync(InstanceId, timeout.Token);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || timeout.IsCancellationRequested)
        {
            Log.StopFailed(logger, ex.GetType().Name, ex.Message);
        }
    }

    internal readonly record struct Take(bool Ok, RateBucket Bucket, long Window, long Amount, bool Local, RateLimitStatus Status, DateTimeOffset RetryAt);

    internal sealed class RateBucket(string keyId, string kind)
    {
        public readonly object Sync = new();
        public readonly SemaphoreSlim Gate = new(1, 1);

        public string KeyId { get; } = keyId;

        public string Kind { get; } = kind;

        public long Limit;
        public long Window = -1;

        /// <summary>Leased and not yet spent; negative when tokens used beyond their estimate are owed to the counter.</summary>
        public long Available;

        /// <summary>The shared counter as this instance last saw it.</summary>
        public long Granted;
        public DateTimeOffset ExhaustedUntil;
        public bool Used;
        /// <summary>Spent by this instance in the current window (its share while storage is unreachable).</summary>
        public long Spent;

        /// <summary>1 while a background debt settle runs.</summary>
        public int Settling;
    }

    internal sealed class SlotState
    {
        public readonly object Sync = new();
        public readonly SemaphoreSlim Gate = new(1, 1);
        public int Held;
        public int Active;
        public bool Used;
        public DateTimeOffset DeniedUntil;
    }

    internal void CompleteTicket(LimitTicket ticket, Take? tokens, SlotState? slot, TokenUsage usage)
    {
        if (tokens is { Ok: true } t)
        {
            // Only the remainder: what the stream already charged (estimate + output so far) is not charged again.
            ChargeTo(ticket, t, CountedTokens(usage), running: false);
        }

        if (slot is not null)
        {
            Leave(slot);
        }
    }

    /// <summary>
    /// Brings what a request has charged to <paramref name="total"/> tokens (the estimate at first, then estimate +
    /// output so far while it streams, then its real usage at the end): the difference is spent from (or given back
    /// to) the instance's slice. Tokens beyond the slice are a debt the shared counter is told of at once, in the
    /// background (one storage request; for a <paramref name="running"/> stream it also leases a fresh slice for the
    /// tokens still to come, while an ended request takes only its debt, so no quota is stranded here).
    /// </summary>
    internal void ChargeTo(LimitTicket ticket, Take t, long total, bool running)
    {
        var bucket = t.Bucket;
        var current = QuotaMath.WindowIndex(time.GetUtcNow(), _options.Window);
        bool owed;
        lock (bucket.Sync)
        {
            // A stream that outlives its window: what it uses from now on counts in the current window, where the
            // key's shared counter for it is, even when no other request of the key has moved the bucket on.
            Roll(bucket, current);
            if (bucket.Window > ticket.ChargedWindow)
            {
                // What it charged before stays in the window it was charged in (its prompt is not counted twice);
                // only tokens beyond that count here, and an end below it gives nothing back to this window.
                ticket.ChargedWindow = bucket.Window;
                ticket.CarriedOver = ticket.Charged;
            }

            if (bucket.Window == ticket.ChargedWindow)
            {
                var delta = Math.Max(total, ticket.CarriedOver) - ticket.Charged;
                bucket.Available -= delta;
                bucket.Spent += delta;
                ticket.Charged += delta;
                if (delta > 0)
                {
                    bucket.Used = true;
                }
            }

            owed = bucket.Available < 0;
        }

        if (owed && !t.Local && !_degraded)
        {
            // Tokens used beyond the slice: tell the shared counter now rather than at the next heartbeat, so other
            // instances do not admit against quota that is already spent.
            _ = SettleInBackgroundAsync(bucket, running);
        }
    }

    /// <summary>What counts against tokens per minute: uncached input, cache writes and output (cache reads do not, as at Anthropic).</summary>
    public static long CountedTokens(TokenUsage usage) => usage.Input + usage.CacheWrite + usage.Output;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Key {KeyId} refused by its {Limit} limit; retry after {RetryAfter} s")]
        public static partial void Refused(ILogger logger, string keyId, string limit, int retryAfter);

        [LoggerMessage(2, LogLevel.Warning, "Rate-limit storage unreachable ({Error}: {Message}); enforcing per-instance limits of limit ÷ {Instances} instance(s) until it answers")]
        public static partial void StorageDown(ILogger logger, int instances, string error, string message);

        [LoggerMessage(3, LogLevel.Information, "Rate-limit storage reachable again; limits are shared across {Instances} instance(s) again")]
        public static partial void StorageBack(ILogger logger, int instances);

        [LoggerMessage(4, LogLevel.Warning, "Could not return quota on shutdown ({Error}: {Message}); it expires with its window or lease")]
        public static partial void StopFailed(ILogger logger, string error, string message);
    }
}

/// <summary>
/// What one admitted request holds (tokens taken, a concurrency slot). While it streams, <see cref="Streamed"/> charges
/// its output against the key's tokens per minute every few tokens; a request of several upstream rounds charges each
/// finished round's real usage (<see cref="RoundEnded"/>); <see cref="Complete"/>, once when it ends, charges the
/// remainder of its real usage and releases its slot.
/// </summary>
public sealed class LimitTicket
{
    internal static readonly LimitTicket None = new(null, null, null, 0);

    private readonly KeyRateLimiter? _owner;
    private readonly KeyRateLimiter.Take? _tokens;
    private readonly KeyRateLimiter.SlotState? _slot;
    private readonly long _every;
    private long _streamed;
    private long _base; // what the streamed output adds to: the input estimate, then the usage of the rounds that ended
    private int _done;

    internal LimitTicket(KeyRateLimiter? owner, KeyRateLimiter.Take? tokens, KeyRateLimiter.SlotState? slot, long every)
    {
        _owner = owner;
        _tokens = tokens;
        _slot = slot;
        _every = Math.Max(1, every);
        if (tokens is { Ok: true } t)
        {
            Charged = t.Amount;
            ChargedWindow = t.Window;
            _base = t.Amount;
        }
    }

    /// <summary>Tokens charged so far in <see cref="ChargedWindow"/> (under the bucket's lock).</summary>
    internal long Charged;

    internal long ChargedWindow;

    /// <summary>What was charged in earlier windows when the request moved into <see cref="ChargedWindow"/>.</summary>
    internal long CarriedOver;

    /// <summary>
    /// The request's output so far (a running count from the stream): charged against tokens per minute in steps of
    /// <c>Melious:RateLimits:StreamChargeTokens</c>, from the instance's slice (no storage request per step).
    /// </summary>
    public void Streamed(long outputTokens)
    {
        if (_owner is null || _tokens is not { Ok: true } t || outputTokens - _streamed < _every || Volatile.Read(ref _done) != 0)
        {
            return;
        }

        _streamed = outputTokens;
        _owner.ChargeTo(this, t, _base + outputTokens, running: true);
    }

    /// <summary>
    /// A request that calls its upstream several times (the web search loop: one upstream round per search) finished
    /// a round: its real usage so far (<paramref name="usageSoFar"/>, every round's input and output) is charged now,
    /// not only when the request ends, and the next round's streamed output is counted on top of it.
    /// </summary>
    public void RoundEnded(TokenUsage usageSoFar)
    {
        if (_owner is null || _tokens is not { Ok: true } t || Volatile.Read(ref _done) != 0)
        {
            return;
        }

        _base = KeyRateLimiter.CountedTokens(usageSoFar);
        _streamed = 0;
        _owner.ChargeTo(this, t, _base, running: true);
    }

    /// <summary>Charges the request's real token usage (less what its stream already charged) and releases its concurrency slot.</summary>
    public void Complete(TokenUsage usage)
    {
        if (_owner is null || Interlocked.Exchange(ref _done, 1) != 0)
        {
            return;
        }

        _owner.CompleteTicket(this, _tokens, _slot, usage);
    }
}

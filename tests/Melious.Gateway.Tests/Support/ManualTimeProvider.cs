namespace Melious.Gateway.Tests.Support;

/// <summary>A <see cref="TimeProvider"/> whose clock only moves on <see cref="Advance"/>; timers fire synchronously there.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private readonly List<ManualTimer> _timers = [];
    private DateTimeOffset _now = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    public override long GetTimestamp() => _now.UtcTicks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        timer.Change(dueTime, period);
        lock (_timers)
        {
            _timers.Add(timer);
        }

        return timer;
    }

    public void Advance(TimeSpan by)
    {
        var end = _now + by;
        while (true)
        {
            ManualTimer? next = null;
            lock (_timers)
            {
                foreach (var timer in _timers)
                {
                    if (timer.Due is { } due && due <= end && (next is null || due < next.Due))
                    {
                        next = timer;
                    }
                }
            }

            if (next is null)
            {
                break;
            }

            _now = next.Due!.Value;
            next.Fire();
        }

        _now = end;
    }

    private sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        private TimeSpan _period;

        public DateTimeOffset? Due { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            Due = dueTime == Timeout.InfiniteTimeSpan ? null : owner._now + dueTime;
            _period = period;
            return true;
        }

        public void Fire()
        {
            Due = _period is { Ticks: > 0 } && _period != Timeout.InfiniteTimeSpan ? Due + _period : null;
            callback(state);
        }

        public void Dispose()
        {
            Due = null;
            lock (owner._timers)
            {
                owner._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

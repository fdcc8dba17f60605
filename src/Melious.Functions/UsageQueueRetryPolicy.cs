namespace Melious.Functions;

/// <summary>
/// How often a usage message is retried in-process when storage is unavailable, before the invocation fails and
/// the message goes back to the queue (where <c>maxDequeueCount</c> in host.json eventually poisons it).
/// </summary>
public sealed class UsageQueueRetryPolicy
{
    /// <summary>Attempts per delivery, the first included.</summary>
    public int MaxAttempts { get; init; } = 4;

    /// <summary>Wait after the first failed attempt; doubled after each further one (1 s, 2 s, 4 s).</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan DelayAfter(int attempt) => BaseDelay * Math.Pow(2, Math.Max(0, attempt - 1));
}

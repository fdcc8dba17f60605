using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace Melious.Functions;

/// <summary>
/// How often a usage message is retried in-process when storage is unavailable, before the invocation fails and
/// the message goes back to the queue; and what its last delivery does instead of failing.
/// </summary>
public sealed class UsageQueueRetryPolicy
{
    /// <summary>host.json's <c>extensions.queues.maxDequeueCount</c>.</summary>
    public const int DefaultMaxDequeueCount = 5;

    /// <summary>The app setting that overrides host.json's <c>maxDequeueCount</c> (as the worker's configuration sees it).</summary>
    public const string MaxDequeueCountSetting = "AzureFunctionsJobHost:extensions:queues:maxDequeueCount";

    /// <summary>Attempts per delivery, the first included.</summary>
    public int MaxAttempts { get; init; } = 4;

    /// <summary>Wait after the first failed attempt; doubled after each further one (1 s, 2 s, 4 s).</summary>
    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The delivery after which the runtime moves a failed message to the poison queue. On that delivery, storage
    /// trouble sends the message back to the queue as a new message instead of failing: it must never be poisoned.
    /// </summary>
    public int MaxDequeueCount { get; init; } = DefaultMaxDequeueCount;

    /// <summary>How long a message sent back that way stays invisible.</summary>
    public TimeSpan RequeueDelay { get; init; } = TimeSpan.FromSeconds(30);

    public TimeSpan DelayAfter(int attempt) => BaseDelay * Math.Pow(2, Math.Max(0, attempt - 1));

    /// <summary>The policy with <see cref="MaxDequeueCount"/> taken from the app's settings when they override host.json.</summary>
    public static UsageQueueRetryPolicy From(IConfiguration configuration) =>
        int.TryParse(configuration[MaxDequeueCountSetting], NumberStyles.Integer, CultureInfo.InvariantCulture, out var count) && count > 0
            ? new UsageQueueRetryPolicy { MaxDequeueCount = count }
            : new UsageQueueRetryPolicy();
}

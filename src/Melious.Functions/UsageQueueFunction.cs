using System.Globalization;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Functions;

/// <summary>
/// Reads the usage queue and writes billing and energy rows (the self-host's <c>UsageQueueConsumer</c>, as a
/// queue trigger). The queue name comes from the setting the gateway publishes with, <c>Melious:Usage:QueueName</c>
/// (<c>usage-events</c>, set by infra and in local.settings.json), so publisher and trigger cannot disagree; if the
/// setting is missing the host reports the function as failing to index instead of silently watching another queue.
/// The connection is <c>AzureWebJobsStorage</c> (identity-based in Azure, Azurite locally): the same account as
/// <c>Melious:Storage</c>. Messages are Base64 (host.json <c>messageEncoding</c>), as the publisher writes them.
/// </summary>
public sealed class UsageQueueFunction(UsageMessageProcessor processor)
{
    public const string QueueNameExpression = "%Melious:Usage:QueueName%";

    [Function("UsageQueue")]
    public Task RunAsync(
        [QueueTrigger(QueueNameExpression)] string message,
        FunctionContext context,
        CancellationToken cancellationToken)
    {
        // Trigger metadata, for the logs only: never let a metadata format change fail the write.
        var metadata = context.BindingContext.BindingData;
        var messageId = metadata.TryGetValue("Id", out var id) ? id?.ToString() : null;
        var dequeueCount = metadata.TryGetValue("DequeueCount", out var count)
            && long.TryParse(count?.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
        return processor.ProcessAsync(message, messageId, dequeueCount, cancellationToken);
    }
}

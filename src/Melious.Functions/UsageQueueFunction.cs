using System.Globalization;
using Microsoft.Azure.Functions.Worker;

namespace Melious.Functions;

/// <summary>
/// Reads the usage queue and writes billing and energy rows (the self-host's <c>UsageQueueConsumer</c>, as a
/// queue trigger). The connection is <c>AzureWebJobsStorage</c> (identity-based in Azure, Azurite locally): the
/// account <c>Melious:Storage</c> points at too. Messages are Base64 (host.json <c>messageEncoding</c>), as the
/// gateway's publisher writes them; after <c>maxDequeueCount</c> failed deliveries the runtime moves a message to
/// <c>usage-events-poison</c>.
/// </summary>
/// <remarks>
/// The queue name is a literal (<see cref="UsageQueue.Name"/>), not <c>%Melious:Usage:QueueName%</c>: on Consumption and Flex Consumption the
/// platform's scale controller reads the trigger's queue name to decide when to start instances for this function,
/// and it does not resolve a <c>:</c>-separated setting against the <c>__</c>-separated app setting
/// (azure-functions-host #8261, azure-functions-dotnet-worker #849), so the queue would never be watched while the
/// app is scaled in. <see cref="FunctionsHostServiceCollectionExtensions.AddMeliousFunctionsHost"/> instead fails the
/// worker's start when <c>Melious:Usage:QueueName</c> names any other queue, so publisher and trigger cannot drift apart.
/// </remarks>
public sealed class UsageQueueFunction(UsageMessageProcessor processor)
{
    [Function("UsageQueue")]
    public Task RunAsync(
        [QueueTrigger(UsageQueue.Name)] string message,
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

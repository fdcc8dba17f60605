using Azure;
using Melious.Gateway.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Hosting;

/// <summary>
/// Creates the gateway's tables and queues on start when <see cref="StorageOptions.CreateIfMissing"/> is set
/// (local runs, Azurite, tests). Never fatal: an unreachable account is logged and the gateway starts anyway,
/// serving from caches and configuration until storage answers. Nothing here is retried: the usage publisher and
/// consumer create their queue on a 404, and <c>UsageWriter</c> creates a missing usage table when it first writes.
/// </summary>
internal sealed partial class StorageInitializer(StorageClients storage, IOptions<GatewayOptions> options, ILogger<StorageInitializer> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        Log.Using(logger, storage.Description);
        if (!o.Storage.CreateIfMissing)
        {
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        try
        {
            await Task.WhenAll(
                TableNames.All.Select(name => storage.Table(name).CreateIfNotExistsAsync(timeout.Token))
                    .Cast<Task>()
                    .Append(storage.Queue(o.Usage.QueueName).CreateIfNotExistsAsync(cancellationToken: timeout.Token))
                    .Append(storage.Queue(o.Usage.PoisonQueueName).CreateIfNotExistsAsync(cancellationToken: timeout.Token)));
        }
        catch (Exception ex) when (ex is RequestFailedException or OperationCanceledException or AggregateException or HttpRequestException)
        {
            Log.CreateFailed(logger, ex.GetType().Name, ex.Message);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Storage: {Description}")]
        public static partial void Using(ILogger logger, string description);

        [LoggerMessage(2, LogLevel.Warning, "Could not create tables and queues ({Error}: {Message}); continuing")]
        public static partial void CreateFailed(ILogger logger, string error, string message);
    }
}

using Azure.Core;
using Azure.Data.Tables;
using Azure.Identity;
using Azure.Storage.Queues;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Storage;

/// <summary>
/// Table and queue clients for the gateway's own storage, from a connection string (Azurite, or a key-based
/// account) or from service URIs plus Azure.Identity (managed identity in Azure, your developer login locally).
/// Queue messages are Base64-encoded, which is what the Functions queue trigger expects.
/// </summary>
public sealed class StorageClients
{
    public const string DevelopmentConnectionString = "UseDevelopmentStorage=true";

    public static readonly TimeSpan DefaultNetworkTimeout = TimeSpan.FromSeconds(15);

    private readonly string _prefix;

    public StorageClients(IOptions<GatewayOptions> options)
        : this(options.Value.Storage)
    {
    }

    public StorageClients(StorageOptions storage)
    {
        _prefix = storage.TablePrefix ?? "";
        CreateIfMissing = storage.CreateIfMissing;
        var tableOptions = new TableClientOptions();
        var networkTimeout = storage.NetworkTimeout > TimeSpan.Zero ? storage.NetworkTimeout : DefaultNetworkTimeout;
        ConfigureRetries(tableOptions.Retry, networkTimeout);
        var queueOptions = new QueueClientOptions { MessageEncoding = QueueMessageEncoding.Base64 };
        ConfigureRetries(queueOptions.Retry, networkTimeout);

        if (storage.UsesIdentity)
        {
            var credential = CreateCredential(storage.ClientId);
            var tableUri = storage.TableServiceUri ?? $"https://{storage.AccountName}.table.core.windows.net";
            var queueUri = storage.QueueServiceUri ?? $"https://{storage.AccountName}.queue.core.windows.net";
            Tables = new TableServiceClient(new Uri(tableUri), credential, tableOptions);
            Queues = new QueueServiceClient(new Uri(queueUri), credential, queueOptions);
            Description = $"identity ({tableUri})";
        }
        else
        {
            var connectionString = string.IsNullOrWhiteSpace(storage.ConnectionString) ? DevelopmentConnectionString : storage.ConnectionString;
            Tables = new TableServiceClient(connectionString, tableOptions);
            Queues = new QueueServiceClient(connectionString, queueOptions);
            Description = $"connection string ({Tables.Uri.GetLeftPart(UriPartial.Authority)})";
        }
    }

    public TableServiceClient Tables { get; }

    public QueueServiceClient Queues { get; }

    /// <summary>
    /// Whether the gateway may create its tables and queues (<see cref="StorageOptions.CreateIfMissing"/>): on start, and
    /// again when one turns out to be missing later (storage was down at start, or a table was deleted).
    /// </summary>
    public bool CreateIfMissing { get; }

    /// <summary>Where storage is, for logs: never includes a key.</summary>
    public string Description { get; }

    public TableClient Table(string name) => Tables.GetTableClient(_prefix + name);

    public QueueClient Queue(string name) => Queues.GetQueueClient(name);

    internal static TokenCredential CreateCredential(string? clientId) =>
        string.IsNullOrWhiteSpace(clientId)
            ? new DefaultAzureCredential()
            : new ManagedIdentityCredential(ManagedIdentityId.FromUserAssignedClientId(clientId));

    private static void ConfigureRetries(RetryOptions retry, TimeSpan networkTimeout)
    {
        retry.MaxRetries = 3;
        retry.Mode = RetryMode.Exponential;
        retry.Delay = TimeSpan.FromMilliseconds(200);
        retry.MaxDelay = TimeSpan.FromSeconds(4);
        retry.NetworkTimeout = networkTimeout;
    }
}

/// <summary>Names of the gateway's tables (before <see cref="StorageOptions.TablePrefix"/>).</summary>
public static class TableNames
{
    public const string ApiKeys = "apikeys";
    public const string Models = "models";
    public const string Billing = "billing";
    public const string Energy = "energy";
    public const string UsageDaily = "usagedaily";
    public const string UsageLedger = "usageledger";

    /// <summary>Shared per-key quota counters, concurrency slots and instance heartbeats (docs/limits.md).</summary>
    public const string RateLimits = "ratelimits";

    public static readonly string[] All = [ApiKeys, Models, Billing, Energy, UsageDaily, UsageLedger, RateLimits];
}

using System.Globalization;
using System.Text;
using Azure.Data.Tables;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.FunctionalTests.Usage;
using Melious.Gateway.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>Shared helpers of the reliability suite: billing-row lookups, storage clients per prefix, figures output.</summary>
internal static class ReliabilityKit
{
    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Storage clients for a table prefix, as a gateway with that prefix sees them.</summary>
    public static StorageClients StorageFor(string connectionString, string prefix) =>
        new(new StorageOptions { ConnectionString = connectionString, TablePrefix = prefix });

    public static StorageClients StorageFor(TestGateway gateway) => gateway.Services.GetRequiredService<StorageClients>();

    public static string RequestId(HttpResponseMessage response) =>
        response.Headers.TryGetValues("request-id", out var ids) ? ids.Single() : throw new InvalidOperationException("no request-id header");

    public static HttpRequestMessage Post(string body, string path = "/v1/messages?beta=true") =>
        new(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };

    /// <summary>
    /// The billing row of one request: flushes the in-process publisher, then polls the billing table (the in-process
    /// consumer writes it) until the row is there or the timeout passes.
    /// </summary>
    public static async Task<TableEntity> BillingRowAsync(TestGateway gateway, string requestId, TimeSpan? timeout = null)
    {
        await gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
        var row = await FindRowAsync(StorageFor(gateway), TableNames.Billing, requestId, timeout ?? TimeSpan.FromSeconds(30));
        Assert.True(row is not null, $"no billing row for request {requestId}");
        return row!;
    }

    public static async Task<TableEntity?> FindRowAsync(StorageClients storage, string table, string rowKey, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var filter = TableClient.CreateQueryFilter($"RowKey eq {rowKey}");
        while (true)
        {
            await foreach (var row in storage.Table(table).QueryAsync<TableEntity>(filter, cancellationToken: Ct))
            {
                return row;
            }

            if (DateTime.UtcNow > deadline)
            {
                return null;
            }

            await Task.Delay(100, Ct);
        }
    }

    /// <summary>Asserts the billing row's outcome columns.</summary>
    public static void AssertOutcome(TableEntity row, int status, string? errorType, bool cancelled)
    {
        var actual = $"Status={row.GetInt32("Status")} ErrorType='{row.GetString("ErrorType")}' Cancelled={row.GetBoolean("Cancelled")}";
        var expected = $"Status={status} ErrorType='{errorType ?? ""}' Cancelled={cancelled}";
        Assert.True(expected == actual, $"billing row {row.RowKey}: expected {expected}, got {actual}");
    }

    public static long Long(TableEntity row, string name) => UsageTables.Long(row, name);

    /// <summary>Writes a figure line to the test output (visible with console verbosity normal or detailed).</summary>
    public static void Figure(string line)
    {
        TestContext.Current.TestOutputHelper?.WriteLine(line);
        try
        {
            var path = Path.Combine(RepoPaths.Root, "artifacts", "reliability-figures.log");
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.AppendAllText(path, $"{DateTime.UtcNow:O} {TestContext.Current.Test?.TestDisplayName}: {line}\n");
        }
        catch (IOException)
        {
        }
    }

    public static string Mb(long bytes) => (bytes / 1024d / 1024d).ToString("0.0", CultureInfo.InvariantCulture) + " MB";

    /// <summary>Polls <paramref name="condition"/> until true or the timeout; returns its last value.</summary>
    public static async Task<bool> WaitUntilAsync(Func<bool> condition, TimeSpan timeout, int pollMs = 50)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(pollMs);
        }

        return true;
    }

    public static async Task<bool> WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, int pollMs = 100)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(pollMs);
        }

        return true;
    }

    public static HttpClient RawClient(string baseUrl, string key)
    {
        // MaxResponseDrainSize = 0: disposing a response closes the socket at once, as Claude Code does on abort.
        var client = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0, UseProxy = false }) { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromMinutes(2) };
        client.DefaultRequestHeaders.Add("x-api-key", key);
        client.DefaultRequestHeaders.Add("anthropic-version", "2023-06-01");
        return client;
    }
}

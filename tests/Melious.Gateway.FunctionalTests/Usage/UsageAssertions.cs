using Azure.Data.Tables;
using Melious.Gateway.Storage;

namespace Melious.Gateway.FunctionalTests.Usage;

internal static class UsageTables
{
    public static async Task<List<TableEntity>> AllAsync(StorageClients storage, string table)
    {
        var rows = new List<TableEntity>();
        await foreach (var row in storage.Table(table).QueryAsync<TableEntity>())
        {
            rows.Add(row);
        }

        return rows;
    }

    /// <summary>Polls until <paramref name="condition"/> holds (bounded), then returns the last rows read.</summary>
    public static async Task<List<TableEntity>> WaitForAsync(StorageClients storage, string table, Func<List<TableEntity>, bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var rows = await AllAsync(storage, table);
            if (condition(rows) || DateTime.UtcNow > deadline)
            {
                return rows;
            }

            await Task.Delay(100);
        }
    }

    /// <summary>The rows of one account (their <c>Account</c> column): what a test reads back from tables other tests share.</summary>
    public static async Task<List<TableEntity>> AllAsync(StorageClients storage, string table, string account) =>
        (await AllAsync(storage, table)).Where(r => r.GetString("Account") == account).ToList();

    /// <summary>Polls one account's rows until <paramref name="condition"/> holds (bounded), then returns the last rows read.</summary>
    public static async Task<List<TableEntity>> WaitForAsync(StorageClients storage, string table, string account, Func<List<TableEntity>, bool> condition, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var rows = await AllAsync(storage, table, account);
            if (condition(rows) || DateTime.UtcNow > deadline)
            {
                return rows;
            }

            await Task.Delay(100);
        }
    }

    public static long Long(TableEntity e, string name) => e.GetInt64(name) ?? e.GetInt32(name) ?? 0;
}

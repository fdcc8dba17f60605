using System.Globalization;
using Azure;
using Azure.Data.Tables;
using Melious.Gateway.Storage;

namespace Melious.Gateway.Auth;

/// <summary>
/// The <c>apikeys</c> table. PartitionKey <c>key</c>, RowKey = SHA-256 hex of the key, so a lookup is one point
/// read by hash. Columns: <c>KeyId</c>, <c>Account</c>, <c>Name</c>, <c>Enabled</c>, <c>CreatedAt</c>,
/// <c>RevokedAt</c>, <c>RequestsPerMinute</c>, <c>TokensPerMinute</c>, <c>MaxConcurrentStreams</c>, <c>MonthlyBudget</c> (decimal string),
/// <c>BudgetCurrency</c>, <c>AllowedModels</c> (comma-separated), <c>Role</c> (<c>user</c> or <c>admin</c>; absent = user).
/// </summary>
public sealed class ApiKeyStore(StorageClients storage)
{
    public const string Partition = "key";

    /// <summary>How many times <see cref="SetLimitsAsync"/> writes before it gives up on a row that keeps changing.</summary>
    internal const int MaxWriteAttempts = 5;

    private TableClient Table => storage.Table(TableNames.ApiKeys);

    public async Task<ApiKeyRecord?> FindByHashAsync(string hash, CancellationToken cancellationToken)
    {
        var response = await Table.GetEntityIfExistsAsync<TableEntity>(Partition, hash, cancellationToken: cancellationToken);
        return response.HasValue ? Read(response.Value!) : null;
    }

    /// <summary>Creates a key and returns it. The key is shown once; only its hash is stored.</summary>
    public async Task<(string Key, ApiKeyRecord Record)> CreateAsync(string account, string name, KeyLimits? limits, CancellationToken cancellationToken, string role = KeyRoles.User)
    {
        ValidateAccount(account);
        if (!KeyRoles.IsValid(role))
        {
            throw new ArgumentException("role must be 'user' or 'admin'", nameof(role));
        }

        var key = ApiKeys.Generate();
        var hash = ApiKeys.Hash(key);
        var record = new ApiKeyRecord
        {
            Hash = hash,
            KeyId = ApiKeys.KeyIdFromHash(hash),
            Account = account,
            Name = name,
            Enabled = true,
            CreatedAt = DateTimeOffset.UtcNow,
            Role = role,
        };
        record = limits is null ? record : limits.ApplyTo(record);
        await Table.AddEntityAsync(ToEntity(record), cancellationToken);
        return (key, record);
    }

    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string? account, CancellationToken cancellationToken)
    {
        var filter = account is null
            ? TableClient.CreateQueryFilter($"PartitionKey eq {Partition}")
            : TableClient.CreateQueryFilter($"PartitionKey eq {Partition} and Account eq {account}");
        var list = new List<ApiKeyRecord>();
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            list.Add(Read(entity));
        }

        return list;
    }

    public async Task<ApiKeyRecord?> FindByKeyIdAsync(string keyId, CancellationToken cancellationToken) =>
        await FindEntityByKeyIdAsync(keyId, cancellationToken) is { } entity ? Read(entity) : null;

    /// <summary>Disables a key. Gateways stop accepting it within the auth cache TTL (30 s by default).</summary>
    public async Task<bool> RevokeAsync(string keyId, CancellationToken cancellationToken)
    {
        var record = await FindByKeyIdAsync(keyId, cancellationToken);
        if (record is null)
        {
            return false;
        }

        var patch = new TableEntity(Partition, record.Hash) { ["Enabled"] = false, ["RevokedAt"] = DateTimeOffset.UtcNow };
        await Table.UpdateEntityAsync(patch, ETag.All, TableUpdateMode.Merge, cancellationToken);
        return true;
    }

    /// <summary>
    /// Changes a key's limit columns and nothing else. The row is written back under the ETag of the read it was
    /// built from, so a revoke (or any other change) that lands in between is never undone: the write fails with
    /// 412 and is redone from a fresh read, at most <see cref="MaxWriteAttempts"/> times.
    /// </summary>
    public async Task<ApiKeyRecord?> SetLimitsAsync(string keyId, KeyLimits limits, CancellationToken cancellationToken)
    {
        var entity = await FindEntityByKeyIdAsync(keyId, cancellationToken);
        for (var attempt = 1; entity is not null; attempt++)
        {
            var updated = limits.ApplyTo(Read(entity));
            SetLimitColumns(entity, updated);
            try
            {
                await Table.UpdateEntityAsync(entity, entity.ETag, TableUpdateMode.Replace, cancellationToken);
                return updated;
            }
            catch (RequestFailedException ex) when (ex.Status == 412 && attempt < MaxWriteAttempts)
            {
                var fresh = await Table.GetEntityIfExistsAsync<TableEntity>(Partition, entity.RowKey, cancellationToken: cancellationToken);
                entity = fresh.HasValue ? fresh.Value : null;
            }
        }

        return null;
    }

    private async Task<TableEntity?> FindEntityByKeyIdAsync(string keyId, CancellationToken cancellationToken)
    {
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {Partition} and KeyId eq {keyId}");
        await foreach (var entity in Table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            return entity;
        }

        return null;
    }

    internal static void ValidateAccount(string account)
    {
        if (string.IsNullOrWhiteSpace(account) || account.Length > 128 || !account.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '@'))
        {
            throw new ArgumentException("account must be 1-128 characters of letters, digits, '-', '_', '.' or '@'", nameof(account));
        }
    }

    internal static TableEntity ToEntity(ApiKeyRecord r)
    {
        var entity = new TableEntity(Partition, r.Hash)
        {
            ["KeyId"] = r.KeyId,
            ["Account"] = r.Account,
            ["Name"] = r.Name,
            ["Enabled"] = r.Enabled,
            ["CreatedAt"] = r.CreatedAt,
            ["Role"] = r.Role,
        };
        if (r.RevokedAt is { } revoked)
        {
            entity["RevokedAt"] = revoked;
        }

        SetLimitColumns(entity, r);
        return entity;
    }

    /// <summary>Writes the columns <see cref="KeyLimits"/> may change; an absent budget removes the column.</summary>
    private static void SetLimitColumns(TableEntity entity, ApiKeyRecord r)
    {
        entity["RequestsPerMinute"] = r.RequestsPerMinute;
        entity["MaxConcurrentStreams"] = r.MaxConcurrentStreams;
        entity["TokensPerMinute"] = r.TokensPerMinute;
        entity["BudgetCurrency"] = r.BudgetCurrency;
        entity["AllowedModels"] = string.Join(',', r.AllowedModels);
        if (r.MonthlyBudget is { } budget)
        {
            entity["MonthlyBudget"] = budget.ToString(CultureInfo.InvariantCulture);
        }
        else
        {
            entity.Remove("MonthlyBudget");
        }
    }

    internal static ApiKeyRecord Read(TableEntity e) => new()
    {
        Hash = e.RowKey,
        KeyId = EntityValues.String(e, "KeyId") ?? ApiKeys.KeyIdFromHash(e.RowKey),
        Account = EntityValues.String(e, "Account") ?? "unknown",
        Name = EntityValues.String(e, "Name") ?? "",
        Enabled = EntityValues.Bool(e, "Enabled") ?? true,
        CreatedAt = EntityValues.Date(e, "CreatedAt") ?? e.Timestamp ?? DateTimeOffset.MinValue,
        RevokedAt = EntityValues.Date(e, "RevokedAt"),
        RequestsPerMinute = (int)(EntityValues.Long(e, "RequestsPerMinute") ?? 0),
        MaxConcurrentStreams = (int)(EntityValues.Long(e, "MaxConcurrentStreams") ?? 0),
        TokensPerMinute = EntityValues.Long(e, "TokensPerMinute") ?? 0,
        MonthlyBudget = EntityValues.Decimal(e, "MonthlyBudget"),
        BudgetCurrency = EntityValues.String(e, "BudgetCurrency") is { Length: > 0 } currency ? currency.ToUpperInvariant() : "USD",
        AllowedModels = (EntityValues.String(e, "AllowedModels") ?? "")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        Role = KeyRoles.Normalize(EntityValues.String(e, "Role")),
    };
}

/// <summary>Per-key limits as the admin CLI sets them; null leaves a limit unchanged.</summary>
public sealed record KeyLimits(int? RequestsPerMinute = null, int? MaxConcurrentStreams = null, decimal? MonthlyBudget = null, string? BudgetCurrency = null, IReadOnlyList<string>? AllowedModels = null, bool ClearBudget = false, long? TokensPerMinute = null)
{
    public ApiKeyRecord ApplyTo(ApiKeyRecord record) => record with
    {
        RequestsPerMinute = RequestsPerMinute ?? record.RequestsPerMinute,
        MaxConcurrentStreams = MaxConcurrentStreams ?? record.MaxConcurrentStreams,
        TokensPerMinute = TokensPerMinute ?? record.TokensPerMinute,
        MonthlyBudget = ClearBudget ? null : MonthlyBudget ?? record.MonthlyBudget,
        BudgetCurrency = BudgetCurrency?.ToUpperInvariant() ?? record.BudgetCurrency,
        AllowedModels = AllowedModels ?? record.AllowedModels,
    };
}

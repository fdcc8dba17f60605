namespace Melious.Gateway.Auth;

/// <summary>What the <c>apikeys</c> table knows about a key (never the key itself).</summary>
public sealed record ApiKeyRecord
{
    public required string Hash { get; init; }

    public required string KeyId { get; init; }

    public required string Account { get; init; }

    public required string Name { get; init; }

    public bool Enabled { get; init; } = true;

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? RevokedAt { get; init; }

    /// <summary>Requests per minute; 0 = unlimited.</summary>
    public int RequestsPerMinute { get; init; }

    /// <summary>Input plus output tokens per minute; 0 = unlimited (see docs/limits.md).</summary>
    public long TokensPerMinute { get; init; }

    /// <summary>Concurrent in-flight /v1/messages requests; 0 = unlimited.</summary>
    public int MaxConcurrentStreams { get; init; }

    /// <summary>Monthly spend limit in <see cref="BudgetCurrency"/>; null = none.</summary>
    public decimal? MonthlyBudget { get; init; }

    public string BudgetCurrency { get; init; } = "USD";

    /// <summary><see cref="KeyRoles.User"/> (the default; sees its own account's usage) or <see cref="KeyRoles.Admin"/> (sees every account).</summary>
    public string Role { get; init; } = KeyRoles.User;

    public bool IsAdmin => Role == KeyRoles.Admin;

    /// <summary>Model patterns this key may use (requested or upstream names, <c>*</c> wildcards); empty = all.</summary>
    public IReadOnlyList<string> AllowedModels { get; init; } = [];
}

/// <summary>The roles a key can have. Keys created before roles existed have none stored and are users.</summary>
public static class KeyRoles
{
    public const string User = "user";

    public const string Admin = "admin";

    /// <summary>The stored role, normalised: anything but <c>admin</c> is a user (so a typo never grants more).</summary>
    public static string Normalize(string? role) => string.Equals(role?.Trim(), Admin, StringComparison.OrdinalIgnoreCase) ? Admin : User;

    public static bool IsValid(string? role) => role is User or Admin;
}

using Melious.Gateway.Auth;

namespace Melious.Gateway.Reporting;

/// <summary>
/// Whose usage a caller may read. A <c>user</c> key is pinned to its own account whatever it asks for; an
/// <c>admin</c> key reads every account, or the one it filters on.
/// </summary>
public sealed record UsageScope(string? Account, bool IsAdmin, string KeyId)
{
    public static UsageScope For(ApiKeyRecord key, string? requestedAccount) =>
        key.IsAdmin
            ? new UsageScope(string.IsNullOrWhiteSpace(requestedAccount) ? null : requestedAccount.Trim(), true, key.KeyId)
            : new UsageScope(key.Account, false, key.KeyId);
}

using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Dashboard;

/// <summary>
/// The dashboard's sign-in sessions: a cookie <c>v1.{keyHash}.{expiresUnix}.{hmac}</c>, HMAC-SHA256 over the rest
/// with <see cref="DashboardOptions.SessionSecret"/>. Stateless, so it works on every instance that shares the
/// secret and survives restarts; it holds the key's SHA-256 (what the <c>apikeys</c> table is keyed by), never the
/// key, and every request re-checks that hash through the authenticator's cache, so a revoked key's sessions end
/// within the same TTL as its API calls. (ASP.NET Core Data Protection would also do, but needs a key ring
/// persisted in shared storage and protected by Key Vault for the same guarantees; one configured secret is
/// simpler to operate and trim/AOT-safe.)
/// </summary>
public sealed partial class DashboardSessions
{
    public const string CookieName = "melious_dashboard";
    public const string CookiePath = "/dashboard";

    private readonly byte[] _secret;
    private readonly TimeSpan _lifetime;
    private readonly TimeProvider _time;

    public DashboardSessions(IOptions<GatewayOptions> options, TimeProvider time, ILogger<DashboardSessions> logger)
    {
        var configured = options.Value.Dashboard.SessionSecret;
        _lifetime = options.Value.Dashboard.SessionLifetime;
        _time = time;
        if (string.IsNullOrEmpty(configured) || Hosting.KeyVaultReferences.IsUnresolved(configured))
        {
            // An unresolved Key Vault reference is known text, not a secret (Hosting.KeyVaultReferences logs it).
            _secret = RandomNumberGenerator.GetBytes(32);
            Log.NoSecret(logger);
        }
        else
        {
            if (configured.Length < 32)
            {
                Log.ShortSecret(logger);
            }

            _secret = SHA256.HashData(Encoding.UTF8.GetBytes(configured));
        }
    }

    public TimeSpan Lifetime => _lifetime;

    /// <summary>Sets the session cookie for a key (by its hash).</summary>
    public void SignIn(HttpContext http, string keyHash)
    {
        var expires = _time.GetUtcNow() + _lifetime;
        var payload = $"v1.{keyHash}.{expires.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)}";
        http.Response.Cookies.Append(CookieName, payload + "." + Sign(payload), Options(http, expires));
    }

    public void SignOut(HttpContext http) =>
        http.Response.Cookies.Delete(CookieName, Options(http, DateTimeOffset.UnixEpoch));

    /// <summary>The key hash of a valid, unexpired session cookie, or null.</summary>
    public string? Read(HttpContext http)
    {
        var cookie = http.Request.Cookies[CookieName];
        if (string.IsNullOrEmpty(cookie) || cookie.Length > 200)
        {
            return null;
        }

        var lastDot = cookie.LastIndexOf('.');
        if (lastDot <= 0)
        {
            return null;
        }

        var payload = cookie[..lastDot];
        var expected = Encoding.ASCII.GetBytes(Sign(payload));
        var given = Encoding.ASCII.GetBytes(cookie[(lastDot + 1)..]);
        if (!CryptographicOperations.FixedTimeEquals(expected, given))
        {
            return null;
        }

        var parts = payload.Split('.');
        if (parts.Length != 3 || parts[0] != "v1"
            || !long.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out var expiresUnix)
            || DateTimeOffset.FromUnixTimeSeconds(expiresUnix) <= _time.GetUtcNow())
        {
            return null;
        }

        return parts[1];
    }

    private string Sign(string payload) =>
        Base64Url(HMACSHA256.HashData(_secret, Encoding.ASCII.GetBytes(payload)));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static CookieOptions Options(HttpContext http, DateTimeOffset expires) => new()
    {
        HttpOnly = true,
        SameSite = SameSiteMode.Strict,
        Secure = IsHttps(http),
        Path = CookiePath,
        Expires = expires,
        IsEssential = true,
    };

    /// <summary>HTTPS directly, or behind a front end that says so (Azure Functions, App Service, a proxy).</summary>
    public static bool IsHttps(HttpContext http) =>
        http.Request.IsHttps || string.Equals(http.Request.Headers["X-Forwarded-Proto"].ToString(), "https", StringComparison.OrdinalIgnoreCase);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Melious:Dashboard:SessionSecret is not set: dashboard sign-ins last only until this process restarts and work only on this instance")]
        public static partial void NoSecret(ILogger logger);

        [LoggerMessage(2, LogLevel.Warning, "Melious:Dashboard:SessionSecret is shorter than 32 characters; use a long random value")]
        public static partial void ShortSecret(ILogger logger);
    }
}

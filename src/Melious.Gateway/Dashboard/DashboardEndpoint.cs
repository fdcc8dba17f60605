using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Melious.Gateway.Auth;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Reporting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Melious.Gateway.Dashboard;

/// <summary>
/// The usage dashboard under <c>/dashboard</c>, for both hosts: <c>GET /dashboard</c> (sign-in form, or the
/// overview), <c>POST /dashboard/login</c>, <c>POST /dashboard/logout</c>, <c>GET /dashboard/export.csv</c> and
/// <c>GET /dashboard/sessions/{id}</c>. Sign-in checks the key exactly as the API does (same cache, same messages).
/// </summary>
public sealed partial class DashboardEndpoint(
    ApiKeyAuthenticator authenticator,
    DashboardSessions sessions,
    UsageQueryService usage,
    TimeProvider time,
    ILogger<DashboardEndpoint> logger)
{
    private const int MaxFormBytes = 4096;

    /// <summary>Answers any request under <c>/dashboard</c>.</summary>
    public async Task DispatchAsync(HttpContext http)
    {
        RequestContext.EnsureRequestId(http);
        try
        {
            await RouteAsync(http);
        }
        catch (Exception ex) when (!(ex is OperationCanceledException && http.RequestAborted.IsCancellationRequested))
        {
            // A bug, not a client mistake: logged with the request id, answered as the API answers one.
            var requestId = RequestContext.EnsureRequestId(http);
            Log.Unhandled(logger, requestId, ex);
            if (!http.Response.HasStarted)
            {
                http.Response.Clear();
                http.Response.Headers[RequestContext.RequestIdHeader] = requestId;
                Secure(http, nonce: null);
                await ErrorWriter.WriteAsync(http, 500, "api_error", "internal gateway error; the request id identifies it in the gateway logs");
            }
        }
    }

    private async Task RouteAsync(HttpContext http)
    {
        var path = (http.Request.Path.Value ?? "").TrimEnd('/');
        var method = http.Request.Method;
        var read = HttpMethods.IsGet(method) || HttpMethods.IsHead(method);
        switch (path.ToLowerInvariant())
        {
            case "/dashboard":
                await (read ? OverviewAsync(http, csv: false) : MethodNotAllowedAsync(http, "GET, HEAD"));
                return;
            case "/dashboard/export.csv":
                await (read ? OverviewAsync(http, csv: true) : MethodNotAllowedAsync(http, "GET, HEAD"));
                return;
            case "/dashboard/login":
                await (HttpMethods.IsPost(method) ? LoginAsync(http) : MethodNotAllowedAsync(http, "POST"));
                return;
            case "/dashboard/logout":
                await (HttpMethods.IsPost(method) ? LogoutAsync(http) : MethodNotAllowedAsync(http, "POST"));
                return;
        }

        const string sessionPrefix = "/dashboard/sessions/";
        if (path.StartsWith(sessionPrefix, StringComparison.OrdinalIgnoreCase) && path.Length > sessionPrefix.Length && path.IndexOf('/', sessionPrefix.Length) < 0)
        {
            if (DashboardTables.SessionIdFromSegment(path[sessionPrefix.Length..]) is not { } sessionId)
            {
                await ErrorWriter.WriteAsync(http, 404, "not_found_error", "no dashboard page at this path: not a session link");
                return;
            }

            await (read ? SessionAsync(http, sessionId) : MethodNotAllowedAsync(http, "GET, HEAD"));
            return;
        }

        await ErrorWriter.WriteAsync(http, 404, "not_found_error", $"no dashboard page at {path}");
    }

    private async Task LoginAsync(HttpContext http)
    {
        if (!SameOrigin(http))
        {
            await ErrorWriter.WriteAsync(http, 403, "permission_error", "sign-in must come from the dashboard's own page");
            return;
        }

        const string formError = "send the sign-in form (application/x-www-form-urlencoded, at most 4 KB)";
        if (!IsUrlEncodedForm(http.Request.ContentType) || http.Request.ContentLength is null or > MaxFormBytes)
        {
            await HtmlAsync(http, 400, DashboardHtml.Login(Nonce(http), formError));
            return;
        }

        IFormCollection form;
        try
        {
            form = await http.Request.ReadFormAsync(http.RequestAborted);
        }
        catch (Exception ex) when (ex is InvalidDataException or BadHttpRequestException)
        {
            // Too many fields, a field over the limits, a body shorter than its Content-Length: the client's mistake.
            await HtmlAsync(http, 400, DashboardHtml.Login(Nonce(http), formError));
            return;
        }

        var key = form["key"].ToString();
        var auth = await authenticator.AuthenticateKeyAsync(key, http.RequestAborted);
        if (auth.Status != AuthStatus.Ok)
        {
            var error = MessagesEndpoint.AuthError(auth);
            if (error.RetryAfter is { } retryAfter)
            {
                http.Response.Headers.RetryAfter = retryAfter;
            }

            await HtmlAsync(http, error.Status, DashboardHtml.Login(Nonce(http), error.Message));
            return;
        }

        sessions.SignIn(http, auth.Key!.Hash);
        Log.SignedIn(logger, auth.Key.KeyId, auth.Key.Account, auth.Key.Role);
        Redirect(http, "/dashboard");
    }

    private async Task LogoutAsync(HttpContext http)
    {
        if (!SameOrigin(http))
        {
            await ErrorWriter.WriteAsync(http, 403, "permission_error", "sign-out must come from the dashboard's own page");
            return;
        }

        sessions.SignOut(http);
        Redirect(http, "/dashboard");
    }

    private async Task OverviewAsync(HttpContext http, bool csv)
    {
        var key = await SignedInAsync(http);
        if (key is null)
        {
            return;
        }

        var scope = UsageScope.For(key, http.Request.Query["account"].ToString());
        if (!TryRange(http, out var range, out var rangeError))
        {
            await HtmlAsync(http, 400, DashboardHtml.Main(Nonce(http), key, scope, Today(), null, null, rangeError));
            return;
        }

        UsageView view;
        try
        {
            view = await usage.ReadViewAsync(range.From, range.To, scope.Account, http.RequestAborted);
        }
        catch (Exception ex) when (IsStorageFailure(ex, http))
        {
            Log.StorageFailed(logger, ex.GetType().Name);
            const string message = "Usage storage is unavailable right now, so no figures can be shown. Nothing is lost: usage is recorded and will show once storage is back. Try again in a minute.";
            if (csv)
            {
                await ErrorWriter.WriteAsync(http, 503, "api_error", message);
            }
            else
            {
                await HtmlAsync(http, 503, DashboardHtml.Main(Nonce(http), key, scope, range, null, null, message));
            }

            return;
        }

        var tables = DashboardTables.Build(view, range.Query);
        if (csv)
        {
            var body = Encoding.UTF8.GetBytes(DashboardTables.Csv(tables));
            http.Response.StatusCode = 200;
            http.Response.ContentType = "text/csv; charset=utf-8";
            http.Response.Headers.ContentDisposition = $"attachment; filename=\"melious-usage-{UsageQueryService.Day(range.From)}-{UsageQueryService.Day(range.To)}.csv\"";
            Secure(http, null);
            http.Response.ContentLength = body.Length;
            await http.Response.Body.WriteAsync(body, http.RequestAborted);
            return;
        }

        await HtmlAsync(http, 200, DashboardHtml.Main(Nonce(http), key, scope, range, view, tables, null));
    }

    private async Task SessionAsync(HttpContext http, string sessionId)
    {
        var key = await SignedInAsync(http);
        if (key is null)
        {
            return;
        }

        var scope = UsageScope.For(key, http.Request.Query["account"].ToString());
        if (!TryRange(http, out var range, out var rangeError))
        {
            await HtmlAsync(http, 400, DashboardHtml.Session(Nonce(http), key, scope, Today(), sessionId, null, rangeError));
            return;
        }

        try
        {
            var requests = await usage.ReadSessionRequestsAsync(range.From, range.To, scope.Account, sessionId, http.RequestAborted);
            await HtmlAsync(http, 200, DashboardHtml.Session(Nonce(http), key, scope, range, sessionId, DashboardTables.Requests(sessionId, requests), null));
        }
        catch (Exception ex) when (IsStorageFailure(ex, http))
        {
            Log.StorageFailed(logger, ex.GetType().Name);
            await HtmlAsync(http, 503, DashboardHtml.Session(Nonce(http), key, scope, range, sessionId, null, "Usage storage is unavailable right now; try again in a minute."));
        }
    }

    /// <summary>The signed-in key, or null after answering with the sign-in form (no, expired or revoked session).</summary>
    private async Task<ApiKeyRecord?> SignedInAsync(HttpContext http)
    {
        var hash = sessions.Read(http);
        if (hash is null)
        {
            await HtmlAsync(http, HttpMethods.IsGet(http.Request.Method) && http.Request.Path.Value?.TrimEnd('/') is "/dashboard" ? 200 : 401, DashboardHtml.Login(Nonce(http), null));
            return null;
        }

        var auth = await authenticator.AuthenticateHashAsync(hash, http.RequestAborted);
        if (auth.Status == AuthStatus.Ok)
        {
            return auth.Key;
        }

        if (auth.Status != AuthStatus.Unavailable)
        {
            sessions.SignOut(http);
        }

        var error = MessagesEndpoint.AuthError(auth.Status);
        await HtmlAsync(http, error.Status, DashboardHtml.Login(Nonce(http), "Your session has ended: " + error.Message));
        return null;
    }

    private bool TryRange(HttpContext http, out DashboardRange range, out string? error)
    {
        var query = http.Request.Query;
        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        var preset = query["range"].ToString() is { Length: > 0 } p ? p : "7d";
        error = null;
        switch (preset)
        {
            case "today":
                range = new DashboardRange(preset, today, today);
                return true;
            case "7d":
                range = new DashboardRange(preset, today.AddDays(-6), today);
                return true;
            case "month":
                range = new DashboardRange(preset, new DateOnly(today.Year, today.Month, 1), today);
                return true;
            case "lastmonth":
                var first = new DateOnly(today.Year, today.Month, 1).AddMonths(-1);
                range = new DashboardRange(preset, first, first.AddMonths(1).AddDays(-1));
                return true;
            case "custom":
                if (DateOnly.TryParseExact(query["from"].ToString(), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var from)
                    && DateOnly.TryParseExact(query["to"].ToString(), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var to))
                {
                    if (to < from)
                    {
                        error = "The custom range ends before it starts.";
                    }
                    else if (!UsageQueryService.InWindow(from) || !UsageQueryService.InWindow(to))
                    {
                        error = $"Dates must be {UsageQueryService.DayWindow}.";
                    }
                    else if (to.DayNumber - from.DayNumber + 1 > UsageQueryService.MaxDays)
                    {
                        error = $"A range may cover at most {UsageQueryService.MaxDays} days.";
                    }
                    else
                    {
                        range = new DashboardRange(preset, from, to);
                        return true;
                    }
                }
                else
                {
                    error = "A custom range needs From and To dates (YYYY-MM-DD, UTC).";
                }

                break;
            default:
                error = "Unknown range; choose today, the last 7 days, this month, last month or a custom range.";
                break;
        }

        range = Today();
        return false;
    }

    private DashboardRange Today()
    {
        var today = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
        return new DashboardRange("7d", today.AddDays(-6), today);
    }

    private static bool IsUrlEncodedForm(string? contentType) =>
        Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var type)
        && type.MediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase);

    private static bool IsStorageFailure(Exception ex, HttpContext http) =>
        ex is Azure.RequestFailedException or HttpRequestException or TimeoutException or AggregateException
        || (ex is OperationCanceledException && !http.RequestAborted.IsCancellationRequested);

    /// <summary>A POST must come from this origin (defence in depth next to the SameSite=Strict cookie).</summary>
    private static bool SameOrigin(HttpContext http)
    {
        var origin = http.Request.Headers.Origin.ToString();
        if (origin.Length == 0 || origin == "null")
        {
            // No Origin (an old client), or an opaque one: trust the browser's own Fetch Metadata when it sends it.
            var site = http.Request.Headers["Sec-Fetch-Site"].ToString();
            return site.Length == 0 ? origin.Length == 0 : site == "same-origin";
        }

        return Uri.TryCreate(origin, UriKind.Absolute, out var uri)
            && string.Equals(uri.Authority, http.Request.Host.Value, StringComparison.OrdinalIgnoreCase);
    }

    private static string Nonce(HttpContext http)
    {
        if (http.Items.TryGetValue(typeof(DashboardEndpoint), out var existing) && existing is string nonce)
        {
            return nonce;
        }

        nonce = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        http.Items[typeof(DashboardEndpoint)] = nonce;
        return nonce;
    }

    private static void Secure(HttpContext http, string? nonce)
    {
        var headers = http.Response.Headers;
        headers.CacheControl = "no-store";
        headers["X-Content-Type-Options"] = "nosniff";
        headers["Referrer-Policy"] = "same-origin";
        headers["X-Frame-Options"] = "DENY";
        headers.ContentSecurityPolicy = nonce is null
            ? "default-src 'none'; frame-ancestors 'none'"
            : $"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; connect-src 'self'";
    }

    private static async Task HtmlAsync(HttpContext http, int status, string html)
    {
        var body = Encoding.UTF8.GetBytes(html);
        http.Response.StatusCode = status;
        http.Response.ContentType = "text/html; charset=utf-8";
        Secure(http, Nonce(http));
        http.Response.ContentLength = body.Length;
        if (!HttpMethods.IsHead(http.Request.Method))
        {
            await http.Response.Body.WriteAsync(body, http.RequestAborted);
        }
    }

    private static void Redirect(HttpContext http, string location)
    {
        http.Response.StatusCode = 303;
        http.Response.Headers.Location = location;
        http.Response.Headers.CacheControl = "no-store";
    }

    private static Task MethodNotAllowedAsync(HttpContext http, string allow)
    {
        http.Response.Headers.Allow = allow;
        return ErrorWriter.WriteAsync(http, 405, "invalid_request_error", $"{http.Request.Method} is not allowed here; use {allow}");
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Dashboard sign-in: key {KeyId} of account {Account} ({Role})")]
        public static partial void SignedIn(ILogger logger, string keyId, string account, string role);

        [LoggerMessage(2, LogLevel.Error, "Dashboard: usage storage unavailable ({Error})")]
        public static partial void StorageFailed(ILogger logger, string error);

        [LoggerMessage(3, LogLevel.Error, "Dashboard request {RequestId} failed")]
        public static partial void Unhandled(ILogger logger, string requestId, Exception exception);
    }
}

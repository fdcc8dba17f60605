using System.Globalization;
using Azure.Data.Tables;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Dashboard;

/// <summary>
/// The dashboard in headless Chromium against each host (<see cref="DashboardBrowserTestsOnSelfHost"/>: the self-host
/// on real Kestrel; <see cref="DashboardBrowserTestsOnFunctionsHost"/>: the Functions app under the real Functions
/// host), with usage written into the Azurite tables (same prefix) that host reads. Only the gateway's origin is
/// reachable from the browser (anything else fails the test), and console errors fail it too. On the shared Functions
/// host, each seed uses account names of its own, and checks that need settings of their own are skipped with the reason.
/// </summary>
public abstract class DashboardBrowserTests(IGatewayTarget target)
{
    /// <summary>The session secret of these tests' gateways, the Functions host's included (<see cref="FunctionsHostFixture.Settings"/>).</summary>
    public const string SessionSecret = "dashboard-test-secret-0123456789abcdef";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task UserKey_SeesItsAccount_TotalsEqualTheBillingRows_RangePickerCsvDrillDownAndLogoutWork()
    {
        await using var gateway = await StartAsync();
        var seed = await SeedAsync(gateway);
        await using var browser = await DashboardBrowser.StartAsync(gateway.BaseUrl);
        var page = browser.Page;

        // A wrong key is refused with the API's message, and the form stays.
        await browser.SignInAsync(ApiKeys.Prefix + new string('z', 43));
        Assert.Contains("invalid API key", await page.TextContentAsync("#login-error"));
        Assert.Equal(0, await page.Locator("#who").CountAsync());
        Assert.Equal(401, (await page.EvaluateAsync<int>("() => performance.getEntriesByType('navigation')[0].responseStatus")));
        Assert.All(browser.Errors, e => Assert.Contains("401", e));   // Chromium logs the 401 document as a failed resource
        browser.Errors.Clear();

        await browser.SignInAsync(seed.AcmeKey);
        Assert.Contains(seed.Acme, await page.TextContentAsync("#who"));
        Assert.Equal(seed.Acme, await page.TextContentAsync("#scope-account"));
        await browser.ScreenshotAsync("user-overview");

        // Default range: the last 7 UTC days. Totals equal the billing rows of acme.
        await AssertTotalsAsync(browser, gateway, seed.Today.AddDays(-6), seed.Today, seed.Acme);
        Assert.Equal(UsageSeed.Day(seed.Today.AddDays(-6)), await page.TextContentAsync("#shown-from"));
        Assert.Contains("UTC", await page.TextContentAsync("#range-label"));
        foreach (var chart in new[] { "#chart-tokens", "#chart-energy", "#chart-emissions", "#chart-spend-USD" })
        {
            Assert.Equal(1, await page.Locator(chart).CountAsync());
        }

        // The range picker changes them: today, a custom day of last month, last month.
        await browser.ShowRangeAsync("today");
        await AssertTotalsAsync(browser, gateway, seed.Today, seed.Today, seed.Acme);
        await browser.ShowRangeAsync("custom", UsageSeed.Day(seed.LastMonthDay), UsageSeed.Day(seed.LastMonthDay));
        await AssertTotalsAsync(browser, gateway, seed.LastMonthDay, seed.LastMonthDay, seed.Acme);
        await browser.ShowRangeAsync("lastmonth");
        var lastMonth = new DateOnly(seed.Today.Year, seed.Today.Month, 1).AddMonths(-1);
        await AssertTotalsAsync(browser, gateway, lastMonth, lastMonth.AddMonths(1).AddDays(-1), seed.Acme);

        // Back to 7 days; the CSV equals the screen, table for table, cell for cell.
        await browser.ShowRangeAsync("7d");
        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#export"));
        var csv = Csv(await File.ReadAllTextAsync((await download.PathAsync())!, Ct));
        foreach (var table in new[] { "totals", "by-upstream-model", "cost-by-type", "by-requested-model", "by-key", "by-session" })
        {
            var headers = await browser.HeadersAsync(table);
            var rows = await browser.TableAsync(table);
            Assert.Contains(string.Join('\u001f', ["section", .. headers]), csv.Select(r => string.Join('\u001f', r)));
            var csvRows = csv.Where(r => r[0] == table).Select(r => r[1..]).ToList();
            Assert.Equal(rows.Select(r => string.Join('\u001f', r)), csvRows.Select(r => string.Join('\u001f', r)));
            Assert.NotEmpty(rows);
        }

        // The cost split adds up, per model and currency, to the model's cost (docs/cost-report.md).
        var modelHeaders = await browser.HeadersAsync("by-upstream-model");
        var modelCosts = (await browser.TableAsync("by-upstream-model")).ToDictionary(r => (r[0], r[1]), r => decimal.Parse(r[Array.IndexOf(modelHeaders, "cost")], CultureInfo.InvariantCulture));
        var splitCosts = (await browser.TableAsync("cost-by-type")).GroupBy(r => (r[0], r[1])).ToDictionary(g => g.Key, g => g.Sum(r => decimal.Parse(r[4], CultureInfo.InvariantCulture)));
        Assert.Equal(modelCosts.OrderBy(p => p.Key), splitCosts.OrderBy(p => p.Key));

        // Sorting a breakdown by a column reorders its rows.
        var byKeyRows = await browser.TableAsync("by-key");
        Assert.Equal(2, byKeyRows.Select(r => r[0]).Distinct().Count());
        await page.ClickAsync("#by-key thead th:nth-child(2)");
        Assert.Equal("descending", await page.GetAttributeAsync("#by-key thead th:nth-child(2)", "aria-sort"));

        // A session opens exactly its requests.
        await browser.NavigateByAsync(() => page.ClickAsync($"#by-session a:text-is('{seed.AcmeSession1}')"));
        var expected = seed.In(seed.Today.AddDays(-6), seed.Today, seed.Acme).Where(e => e.SessionId == seed.AcmeSession1).OrderBy(e => e.StartedAt).ToList();
        var requestRows = await browser.TableAsync("session-requests");
        Assert.Equal(expected.Select(e => e.RequestId), requestRows.Select(r => r[1]));
        Assert.Equal(expected.Select(e => Pricing.FormatNanos(e.CostNanos)), requestRows.Select(r => r[9]));
        await browser.ScreenshotAsync("user-session");

        // Tampering: another account in the query changes nothing; its session is not visible.
        await browser.GotoAsync($"/dashboard?range=7d&account={seed.Globex}");
        Assert.Equal(seed.Acme, await page.TextContentAsync("#scope-account"));
        await AssertTotalsAsync(browser, gateway, seed.Today.AddDays(-6), seed.Today, seed.Acme);
        Assert.DoesNotContain(await browser.TableAsync("by-session"), r => r[0] == seed.GlobexSession);
        await browser.GotoAsync($"/dashboard/sessions/{seed.GlobexSession}?range=7d&account={seed.Globex}");
        Assert.Equal(1, await page.Locator("#empty").CountAsync());

        // The key is nowhere in the page or the browser's storage; the cookie is HttpOnly, SameSite=Strict, signed.
        Assert.DoesNotContain(seed.AcmeKey, await page.ContentAsync());
        Assert.Equal("0", await page.EvaluateAsync<string>("() => String(localStorage.length + sessionStorage.length)"));
        var cookie = Assert.Single(await browser.Context.CookiesAsync());
        Assert.True(cookie.HttpOnly);
        Assert.Equal(Microsoft.Playwright.SameSiteAttribute.Strict, cookie.SameSite);
        Assert.DoesNotContain(seed.AcmeKey[ApiKeys.Prefix.Length..], cookie.Value);
        Assert.InRange(cookie.Expires - DateTimeOffset.UtcNow.ToUnixTimeSeconds(), 7.9 * 3600, 8.1 * 3600);
        Assert.DoesNotContain(gateway.Logs.Lines, l => l.Contains(seed.AcmeKey[ApiKeys.Prefix.Length..], StringComparison.Ordinal));

        await browser.GotoAsync("/dashboard");
        await browser.SignOutAsync();
        Assert.Equal(1, await page.Locator("#key").CountAsync());
        await browser.GotoAsync("/dashboard");
        Assert.Equal(1, await page.Locator("#key").CountAsync());
        Assert.Empty(await browser.Context.CookiesAsync());
        browser.AssertClean();
    }

    [Fact]
    public async Task AdminKey_SeesEveryAccount_AndTheAccountFilterChangesTheTotals()
    {
        await using var gateway = await StartAsync();
        var seed = await SeedAsync(gateway);
        await using var browser = await DashboardBrowser.StartAsync(gateway.BaseUrl);

        await browser.SignInAsync(seed.AdminKey);
        Assert.Contains("admin", await browser.Page.TextContentAsync("#who"));
        await AssertTotalsAsync(browser, gateway, seed.Today.AddDays(-6), seed.Today, null);
        Assert.Contains(await browser.TableAsync("by-session"), r => r[0] == seed.GlobexSession);
        await browser.ScreenshotAsync("admin-overview");
        if (Environment.GetEnvironmentVariable("MELIOUS_UPDATE_DOCS_SCREENSHOT") == "1")
        {
            await browser.Page.ScreenshotAsync(new() { Path = Path.Combine(RepoPaths.Root, "docs", "images", "dashboard.png"), FullPage = false });
        }

        await browser.Page.ScreenshotAsync(new() { Path = Path.Combine(DashboardBrowser.ScreenshotDirectory, "admin-viewport.png"), FullPage = false });

        await browser.ShowRangeAsync("7d", account: seed.Globex);
        await AssertTotalsAsync(browser, gateway, seed.Today.AddDays(-6), seed.Today, seed.Globex);
        await browser.ShowRangeAsync("7d", account: "");
        await AssertTotalsAsync(browser, gateway, seed.Today.AddDays(-6), seed.Today, null);

        // A range with no data: an empty state, not an error.
        await browser.ShowRangeAsync("custom", "2020-01-01", "2020-01-31");
        Assert.Contains("No usage", await browser.Page.TextContentAsync("#empty"));
        browser.AssertClean();
    }

    [Fact]
    public async Task RevokingAKey_EndsItsDashboardSession_WithinTheAuthCacheTtl()
    {
        await using var gateway = await StartAsync(new Dictionary<string, string?> { ["Melious:Auth:CacheTtl"] = "00:00:01" });
        var seed = await SeedAsync(gateway);
        await using var browser = await DashboardBrowser.StartAsync(gateway.BaseUrl);
        await browser.SignInAsync(seed.AcmeSecondKey);
        Assert.Equal(1, await browser.Page.Locator("#who").CountAsync());

        Assert.True(await gateway.Services.GetRequiredService<ApiKeyStore>().RevokeAsync(UsageSeed.KeyId(seed.AcmeSecondKey), Ct));
        var ended = false;
        for (var i = 0; i < 60 && !ended; i++)
        {
            await Task.Delay(500, Ct);
            await browser.GotoAsync("/dashboard");
            ended = await browser.Page.Locator("#login-error").CountAsync() == 1;
        }

        Assert.True(ended, "the session outlived the revocation");
        Assert.Contains("revoked", await browser.Page.TextContentAsync("#login-error"));
        Assert.Equal(0, await browser.Page.Locator("#who").CountAsync());
        Assert.Empty(await browser.Context.CookiesAsync());
        AssertCleanExceptRevocation(browser);
    }

    /// <summary>
    /// The usage API the dashboard's data comes from is served by this host (on the Functions host: by its own
    /// functions, which sort before the catch-all; the catch-all would answer 404), for the seed's admin key.
    /// </summary>
    [Fact]
    public async Task UsageApiRoutes_AreServed_NotTakenByTheCatchAll()
    {
        await using var gateway = await StartAsync();
        var seed = await SeedAsync(gateway);
        using var client = gateway.Client(seed.AdminKey);
        var from = UsageSeed.Day(seed.Today.AddDays(-6)) + "T00:00:00Z";
        foreach (var path in new[]
        {
            $"/v1/organizations/usage_report/messages?starting_at={from}&account_ids[]={seed.Acme}",
            $"/v1/organizations/cost_report?starting_at={from}&account_ids[]={seed.Acme}",
            $"/v1/usage/sessions?starting_at={from}&account_id={seed.Acme}",
            $"/v1/usage/sessions/{seed.AcmeSession1}?starting_at={from}",
        })
        {
            using var response = await client.GetAsync(path, Ct);
            var body = await response.Content.ReadAsStringAsync(Ct);
            Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, $"{path}: {(int)response.StatusCode} {body}");
            using var json = System.Text.Json.JsonDocument.Parse(body);
            Assert.NotEqual(0, json.RootElement.GetProperty("data").GetArrayLength());
        }
    }

    [Fact]
    public async Task StorageDown_TheSignedInPageShowsAnError_NotAStackTrace()
    {
        target.SelfHostOnly("stops a storage account of its own, while the Functions host's storage is shared by the run");
        await using var storage = new AzuriteProcess();
        await storage.StartAsync();
        await using var gateway = await TestGateway.StartAsync(storage.ConnectionString, "http://127.0.0.1:9/v1", Settings());
        var key = await gateway.CreateKeyAsync("acme", "alice");
        await using var browser = await DashboardBrowser.StartAsync(gateway.BaseUrl);
        await browser.SignInAsync(key);
        Assert.Equal(1, await browser.Page.Locator("#who").CountAsync());

        await storage.StopAsync();
        var response = await browser.GotoAsync("/dashboard?range=today");
        Assert.Equal(503, response!.Status);
        Assert.Contains("storage is unavailable", await browser.Page.TextContentAsync("#error"));
        Assert.DoesNotContain("Exception", await browser.Page.ContentAsync());
        await browser.ScreenshotAsync("storage-down");
        Assert.True(browser.Blocked.IsEmpty, string.Join(", ", browser.Blocked));

        // The 503 document itself is logged by Chromium as a failed resource; nothing else may be.
        Assert.All(browser.Errors, e => Assert.Contains("503", e));
    }

    [Fact]
    public async Task SignInPosts_FromAnotherOrigin_AreRefused_AndAPostedKeyNeverReachesTheLogs()
    {
        await using var gateway = await StartAsync();
        var key = await gateway.CreateKeyAsync("acme", "alice");
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(gateway.BaseUrl) };

        using var foreign = new HttpRequestMessage(HttpMethod.Post, "/dashboard/login") { Content = new FormUrlEncodedContent([new("key", key)]) };
        foreign.Headers.Add("Origin", "https://evil.example");
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, (await client.SendAsync(foreign, Ct)).StatusCode);

        using var ok = await client.PostAsync("/dashboard/login", new FormUrlEncodedContent([new("key", key)]), Ct);
        Assert.Equal(System.Net.HttpStatusCode.SeeOther, ok.StatusCode);
        var setCookie = Assert.Single(ok.Headers.GetValues("Set-Cookie"));
        Assert.Contains("httponly", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("path=/dashboard", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("secure", setCookie, StringComparison.OrdinalIgnoreCase);   // plain HTTP here

        // A cookie signed with another secret (another deployment) is not a session.
        await using var other = await TestGateway.StartAsync(target.ConnectionString, "http://127.0.0.1:9/v1", new Dictionary<string, string?> { ["Melious:Dashboard:SessionSecret"] = "another-secret-another-secret-another-1" }, gateway.Prefix);
        using var replay = new HttpRequestMessage(HttpMethod.Get, other.BaseUrl + "/dashboard");
        replay.Headers.Add("Cookie", setCookie.Split(';')[0]);
        var page = await (await client.SendAsync(replay, Ct)).Content.ReadAsStringAsync(Ct);
        Assert.Contains("id=\"key\"", page);

        // Same secret, another instance (a restart; from the Functions host, a self-host): the session holds.
        await using var twin = await TestGateway.StartAsync(target.ConnectionString, "http://127.0.0.1:9/v1", Settings(), gateway.Prefix);
        using var same = new HttpRequestMessage(HttpMethod.Get, twin.BaseUrl + "/dashboard");
        same.Headers.Add("Cookie", setCookie.Split(';')[0]);
        Assert.Contains("id=\"who\"", await (await client.SendAsync(same, Ct)).Content.ReadAsStringAsync(Ct));

        Assert.DoesNotContain(gateway.Logs.Lines, l => l.Contains(key[ApiKeys.Prefix.Length..], StringComparison.Ordinal));
    }

    /// <summary>
    /// Client mistakes get a 400 page, never a bare 500: dates outside the reports' window (day arithmetic past year
    /// 9999 used to throw), and sign-in bodies the form reader refuses (multipart without a boundary, too many fields).
    /// </summary>
    [Fact]
    public async Task OutOfRangeDates_AndMalformedSignInForms_GetA400Page()
    {
        await using var gateway = await StartAsync();
        var key = await gateway.CreateKeyAsync("acme", "alice");
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(gateway.BaseUrl) };
        using var signIn = await client.PostAsync("/dashboard/login", new FormUrlEncodedContent([new("key", key)]), Ct);
        Assert.Equal(System.Net.HttpStatusCode.SeeOther, signIn.StatusCode);
        var cookie = Assert.Single(signIn.Headers.GetValues("Set-Cookie")).Split(';')[0];

        foreach (var path in new[]
        {
            "/dashboard?range=custom&from=9999-12-31&to=9999-12-31",
            "/dashboard/export.csv?range=custom&from=9999-12-30&to=9999-12-31",
            "/dashboard?range=custom&from=0001-01-01&to=0001-01-02",
        })
        {
            using var get = new HttpRequestMessage(HttpMethod.Get, path);
            get.Headers.Add("Cookie", cookie);
            using var response = await client.SendAsync(get, Ct);
            var body = await response.Content.ReadAsStringAsync(Ct);
            Assert.True(response.StatusCode == System.Net.HttpStatusCode.BadRequest, $"{path}: {(int)response.StatusCode} {body}");
            Assert.Contains("Dates must be from 1970-01-01 to 9998-12-31", body);
        }

        var fields = new StringContent(string.Concat(Enumerable.Repeat("a=&", 1100)), System.Text.Encoding.ASCII, "application/x-www-form-urlencoded");
        var multipart = new StringContent("x");
        multipart.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("multipart/form-data");
        foreach (var (name, content) in new[] { ("1,100 fields", (HttpContent)fields), ("multipart without a boundary", multipart) })
        {
            using var response = await client.PostAsync("/dashboard/login", content, Ct);
            var body = await response.Content.ReadAsStringAsync(Ct);
            Assert.True(response.StatusCode == System.Net.HttpStatusCode.BadRequest, $"{name}: {(int)response.StatusCode} {body}");
            Assert.Contains("id=\"key\"", body);
            Assert.Contains("application/x-www-form-urlencoded", body);
        }
    }

    /// <summary>
    /// A session id with a <c>%</c>, a space and a <c>/</c> of its own opens its own drill-down (its escaped link was
    /// decoded twice, so <c>a%41</c> became <c>aA</c>: by the dashboard on the self-host, by the host's proxy on the
    /// Functions host).
    /// </summary>
    [Fact]
    public async Task ASessionIdWithAPercentSign_OpensItsOwnDrillDown()
    {
        await using var gateway = await StartAsync();
        var seed = await SeedAsync(gateway);
        var session = "a%41 b/" + Guid.NewGuid().ToString("N")[..6];
        var request = seed.Events[0] with { RequestId = Melious.Gateway.Ids.NewRequestId(), Account = seed.Acme, SessionId = session, StartedAt = DateTimeOffset.UtcNow.AddMinutes(-1) };
        await gateway.Services.GetRequiredService<UsageWriter>().WriteAsync([request], Ct);
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(gateway.BaseUrl) };
        using var signIn = await client.PostAsync("/dashboard/login", new FormUrlEncodedContent([new("key", seed.AcmeKey)]), Ct);
        var cookie = Assert.Single(signIn.Headers.GetValues("Set-Cookie")).Split(';')[0];

        // The overview links the session as "~" and its base64url bytes: no escape in it for a host to decode.
        using var overview = new HttpRequestMessage(HttpMethod.Get, "/dashboard?range=today");
        overview.Headers.Add("Cookie", cookie);
        var page = await (await client.SendAsync(overview, Ct)).Content.ReadAsStringAsync(Ct);
        var link = "/dashboard/sessions/~" + System.Buffers.Text.Base64Url.EncodeToString(System.Text.Encoding.UTF8.GetBytes(session));
        Assert.Contains($"href=\"{link}?", page);
        Assert.Contains($"href=\"/dashboard/sessions/{seed.AcmeSession1}?", page);   // a plain id stays as it is

        using var drill = new HttpRequestMessage(HttpMethod.Get, link + "?range=today");
        drill.Headers.Add("Cookie", cookie);
        using var response = await client.SendAsync(drill, Ct);
        var body = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, $"{(int)response.StatusCode} {body}");
        Assert.Contains(request.RequestId, body);
    }

    /// <summary>Behind HTTPS (a front end saying so with <c>X-Forwarded-Proto: https</c>), the session cookie is Secure.</summary>
    [Fact]
    public async Task BehindHttps_TheSessionCookieIsSecure()
    {
        // The Functions host takes X-Forwarded-Proto as the scheme only on Azure's Linux hosting
        // (AppServiceHeaderFixupMiddleware) and otherwise forwards its own scheme (http) to the worker.
        target.SelfHostOnly("the local Functions host replaces X-Forwarded-Proto with its own scheme; on Azure Linux hosting it keeps the front end's https");
        await using var gateway = await StartAsync();
        var key = await gateway.CreateKeyAsync("acme", "alice");
        using var client = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(gateway.BaseUrl) };
        using var https = new HttpRequestMessage(HttpMethod.Post, "/dashboard/login") { Content = new FormUrlEncodedContent([new("key", key)]) };
        https.Headers.Add("X-Forwarded-Proto", "https");
        using var secure = await client.SendAsync(https, Ct);
        Assert.Equal(System.Net.HttpStatusCode.SeeOther, secure.StatusCode);
        Assert.Contains("secure", Assert.Single(secure.Headers.GetValues("Set-Cookie")), StringComparison.OrdinalIgnoreCase);
    }

    private static Dictionary<string, string?> Settings(IDictionary<string, string?>? extra = null)
    {
        var settings = new Dictionary<string, string?> { ["Melious:Dashboard:SessionSecret"] = SessionSecret };
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
        {
            settings[k] = v;
        }

        return settings;
    }

    /// <summary>A self-host of its own, or the shared Functions host (skipping the test there if it needs settings of its own).</summary>
    private async Task<TestGateway> StartAsync(IDictionary<string, string?>? extra = null)
    {
        if (target is FunctionsHostFixture functions)
        {
            functions.EnsureRunning();
            if (extra is { Count: > 0 })
            {
                Assert.Skip("Self-host only: needs settings of its own (" + string.Join(", ", extra.Keys) + "), while the Functions host is started once per run");
            }

            return TestGateway.OnFunctionsHost(functions);
        }

        return await TestGateway.StartAsync(target.ConnectionString, "http://127.0.0.1:9/v1", Settings(extra));
    }

    /// <summary>The seed, with account names of its own on the shared Functions host (other tests there bill to "acme").</summary>
    private static Task<UsageSeed> SeedAsync(TestGateway gateway) =>
        UsageSeed.WriteAsync(gateway.Services, Ct, gateway.Kind == HostKind.FunctionsHost ? Guid.NewGuid().ToString("N")[..6] : null);

    /// <summary>The revoked session's page answers 403, which Chromium logs as a failed resource: the only error allowed.</summary>
    private static void AssertCleanExceptRevocation(DashboardBrowser browser)
    {
        Assert.True(browser.Blocked.IsEmpty, string.Join(", ", browser.Blocked));
        Assert.All(browser.Errors, e => Assert.Contains("403", e));
    }

    /// <summary>The screen's totals equal the sums of the billing rows of the range (and account).</summary>
    private static async Task AssertTotalsAsync(DashboardBrowser browser, TestGateway gateway, DateOnly from, DateOnly to, string? account)
    {
        var rows = new List<TableEntity>();
        for (var attempt = 0; ; attempt++)
        {
            rows.Clear();
            await foreach (var row in gateway.Services.GetRequiredService<UsageReader>().ReadBillingAsync(from, to, account, Ct))
            {
                rows.Add(row);
            }

            // On the shared Functions host, usage of earlier tests (all accounts) may still land through the queue
            // trigger between the page and the read: read both again, a bounded number of times.
            if (account is not null || gateway.Kind == HostKind.SelfHost || attempt == 20 || rows.Count.ToString(CultureInfo.InvariantCulture) == await browser.TotalAsync("requests"))
            {
                break;
            }

            await Task.Delay(1000, Ct);
            await browser.Page.ReloadAsync();
        }

        Assert.NotEmpty(rows);
        Assert.Equal(rows.Count.ToString(CultureInfo.InvariantCulture), await browser.TotalAsync("requests"));
        Assert.Equal(Sum(rows, "InputTokens"), await browser.TotalAsync("uncached_input_tokens"));
        Assert.Equal(Sum(rows, "CacheReadTokens"), await browser.TotalAsync("cache_read_tokens"));
        Assert.Equal(Sum(rows, "CacheWriteTokens"), await browser.TotalAsync("cache_write_tokens"));
        Assert.Equal(Sum(rows, "OutputTokens"), await browser.TotalAsync("output_tokens"));
        Assert.Equal(rows.Count(r => (bool)r["Cancelled"]).ToString(CultureInfo.InvariantCulture), await browser.TotalAsync("cancelled"));
        Assert.Equal(rows.Count(r => (int)r["Status"] >= 400 || (string)r["ErrorType"] != "").ToString(CultureInfo.InvariantCulture), await browser.TotalAsync("errors"));
        foreach (var currency in rows.GroupBy(r => (string)r["Currency"]))
        {
            Assert.Equal(Pricing.FormatNanos(currency.Sum(r => (long)r["CostNanos"])), await browser.TotalAsync("cost-" + currency.Key));
        }

        Assert.Equal(0, await browser.Page.Locator($"[data-total^=\"cost-\"]").CountAsync() - rows.Select(r => (string)r["Currency"]).Distinct().Count());
    }

    private static string Sum(List<TableEntity> rows, string column) => rows.Sum(r => (long)r[column]).ToString(CultureInfo.InvariantCulture);

    /// <summary>A small RFC 4180 reader (quoted cells, doubled quotes).</summary>
    private static List<string[]> Csv(string text)
    {
        var rows = new List<string[]>();
        var row = new List<string>();
        var cell = new System.Text.StringBuilder();
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < text.Length && text[i + 1] == '"')
                {
                    cell.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    cell.Append(c);
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == ',')
            {
                row.Add(cell.ToString());
                cell.Clear();
            }
            else if (c == '\n')
            {
                row.Add(cell.ToString().TrimEnd('\r'));
                cell.Clear();
                rows.Add([.. row]);
                row.Clear();
            }
            else
            {
                cell.Append(c);
            }
        }

        return rows;
    }
}

public sealed class DashboardBrowserTestsOnSelfHost(AzuriteFixture azurite) : DashboardBrowserTests(azurite);

[Collection(FunctionsHostCollection.Name)]
public sealed class DashboardBrowserTestsOnFunctionsHost(FunctionsHostFixture host) : DashboardBrowserTests(host);

using System.Globalization;
using System.Net;
using System.Text.Json;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Admin;
using Melious.Gateway.FunctionalTests.Dashboard;
using Melious.Gateway.FunctionalTests.Http;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Usage;

/// <summary>
/// The Admin-API-shaped usage and cost reports and the session API over real HTTP against usage written into
/// Azurite: sums equal the billing rows, user keys see their account only whatever they send, admin keys see all,
/// unsupported parameters get clear 400s, and the shapes are Anthropic's (golden tests against the documented examples).
/// </summary>
public sealed class UsageApiTests(AzuriteFixture azurite)
{
    private const string Messages = "/v1/organizations/usage_report/messages";
    private const string Costs = "/v1/organizations/cost_report";

    /// <summary>Anthropic's documented example response of GET /v1/organizations/usage_report/messages (verbatim).</summary>
    private const string UsageReportExample = """
        {
          "data": [
            {
              "ending_at": "2025-08-02T00:00:00Z",
              "results": [
                {
                  "api_key_id": "apikey_01Rj2N8SVvo6BePZj99NhmiT",
                  "cache_creation": {
                    "ephemeral_1h_input_tokens": 1000,
                    "ephemeral_5m_input_tokens": 500
                  },
                  "cache_read_input_tokens": 200,
                  "context_window": "0-200k",
                  "model": "claude-sonnet-4-20250514",
                  "output_tokens": 500,
                  "server_tool_use": {
                    "web_search_requests": 10
                  },
                  "service_tier": "standard",
                  "uncached_input_tokens": 1500,
                  "workspace_id": "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
                }
              ],
              "starting_at": "2025-08-01T00:00:00Z"
            }
          ],
          "has_more": true,
          "next_page": "2019-12-27T18:11:19.117Z"
        }
        """;

    /// <summary>Anthropic's documented example response of GET /v1/organizations/cost_report.</summary>
    private const string CostReportExample = """
        {
          "data": [
            {
              "ending_at": "2025-08-02T00:00:00Z",
              "results": [
                {
                  "amount": "123.78912",
                  "context_window": "0-200k",
                  "cost_type": "tokens",
                  "currency": "USD",
                  "description": "Claude Sonnet 4 Usage - Input Tokens",
                  "model": "claude-sonnet-4-20250514",
                  "service_tier": "standard",
                  "token_type": "uncached_input_tokens",
                  "workspace_id": "wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"
                }
              ],
              "starting_at": "2025-08-01T00:00:00Z"
            }
          ],
          "has_more": true,
          "next_page": "2019-12-27T18:11:19.117Z"
        }
        """;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task UsageReport_ByModel_EqualsTheBillingRows_AndAUserKeyIsPinnedToItsAccountWhateverItSends()
    {
        await using var gateway = await StartAsync();
        var seed = await UsageSeed.WriteAsync(gateway.Services, Ct);
        var from = seed.Today.AddDays(-2);
        using var acme = gateway.Client(seed.AcmeKey);
        var url = $"{Messages}?starting_at={UsageSeed.Day(from)}T00:00:00Z&ending_at={UsageSeed.Day(seed.Today.AddDays(1))}T00:00:00Z&group_by[]=model";

        using var report = await GetJsonAsync(acme, url);
        var root = report.RootElement;
        Assert.False(root.GetProperty("has_more").GetBoolean());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("next_page").ValueKind);
        var buckets = root.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(3, buckets.Count);
        var expected = seed.In(from, seed.Today, "acme").GroupBy(e => (e.Day, e.UpstreamModel, e.Currency)).ToDictionary(g => g.Key, g => g.ToList());
        var seen = 0;
        foreach (var bucket in buckets)
        {
            var day = bucket.GetProperty("starting_at").GetString()![..10];
            Assert.Equal(UsageSeed.Day(DateOnly.Parse(day, CultureInfo.InvariantCulture).AddDays(1)) + "T00:00:00Z", bucket.GetProperty("ending_at").GetString());
            foreach (var result in bucket.GetProperty("results").EnumerateArray())
            {
                var events = expected[(day, result.GetProperty("model").GetString()!, result.GetProperty("currency").GetString()!)];
                AssertResult(events, result);
                Assert.Equal(JsonValueKind.Null, result.GetProperty("api_key_id").ValueKind);
                Assert.False(result.TryGetProperty("account_id", out _));
                seen++;
            }
        }

        Assert.Equal(expected.Count, seen);

        // Tampering: another account's id as a filter, or as the account group, changes nothing for a user key.
        using var tampered = await GetJsonAsync(acme, url + "&account_ids[]=globex");
        Assert.Equal(root.GetProperty("data").GetRawText(), tampered.RootElement.GetProperty("data").GetRawText());
        using var grouped = await GetJsonAsync(acme, url.Replace("group_by[]=model", "group_by[]=account_id", StringComparison.Ordinal));
        Assert.All(Results(grouped), r => Assert.Equal("acme", r.GetProperty("account_id").GetString()));

        // Another account's key id: nothing (it is not acme's).
        using var otherKey = await GetJsonAsync(acme, $"{Messages}?starting_at={UsageSeed.Day(from)}T00:00:00Z&group_by[]=api_key_id&api_key_ids[]={UsageSeed.KeyId(seed.GlobexKey)}");
        Assert.Empty(Results(otherKey));

        // By key: both acme keys, summing to the same totals as by model.
        using var byKey = await GetJsonAsync(acme, $"{Messages}?starting_at={UsageSeed.Day(from)}T00:00:00Z&group_by[]=api_key_id");
        var keyResults = Results(byKey);
        Assert.Equal(new[] { UsageSeed.KeyId(seed.AcmeKey), UsageSeed.KeyId(seed.AcmeSecondKey) }.Order(), keyResults.Select(r => r.GetProperty("api_key_id").GetString()!).Distinct().Order());
        Assert.Equal(seed.In(from, seed.Today, "acme").Sum(e => e.CostNanos), keyResults.Sum(r => r.GetProperty("cost_nanos").GetInt64()));
    }

    [Fact]
    public async Task UsageReport_AdminKeySeesEveryAccount_FiltersByAccount_AndPages()
    {
        await using var gateway = await StartAsync();
        var seed = await UsageSeed.WriteAsync(gateway.Services, Ct);
        using var admin = gateway.Client(seed.AdminKey, bearer: true);
        var from = seed.LastMonthDay;

        var recent = seed.Today.AddDays(-2);
        using var all = await GetJsonAsync(admin, $"{Messages}?starting_at={UsageSeed.Day(recent)}T00:00:00Z&group_by[]=account_id");
        var results = Results(all);
        Assert.Equal(["acme", "globex"], results.Select(r => r.GetProperty("account_id").GetString()!).Distinct().Order());
        Assert.Equal(seed.In(recent, seed.Today).Sum(e => e.OutputTokens), results.Sum(r => r.GetProperty("output_tokens").GetInt64()));
        Assert.Equal(seed.In(recent, seed.Today).Count(), results.Sum(r => r.GetProperty("requests").GetInt64()));
        foreach (var account in new[] { "acme", "globex" })
        {
            Assert.Equal(seed.In(recent, seed.Today, account).Sum(e => e.CostNanos), results.Where(r => r.GetProperty("account_id").GetString() == account).Sum(r => r.GetProperty("cost_nanos").GetInt64()));
        }

        using var globex = await GetJsonAsync(admin, $"{Messages}?starting_at={UsageSeed.Day(recent)}T00:00:00Z&account_ids[]=globex");
        Assert.Equal(seed.In(recent, seed.Today, "globex").Sum(e => e.CostNanos), Results(globex).Sum(r => r.GetProperty("cost_nanos").GetInt64()));

        // Pages of 3 days cover the range once.
        var days = new List<string>();
        long requests = 0;
        string? page = null;
        for (var i = 0; i < 40; i++)
        {
            using var json = await GetJsonAsync(admin, $"{Messages}?starting_at={UsageSeed.Day(from)}T00:00:00Z&limit=3" + (page is null ? "" : "&page=" + Uri.EscapeDataString(page)));
            var buckets = json.RootElement.GetProperty("data").EnumerateArray().ToList();
            Assert.InRange(buckets.Count, 1, 3);
            days.AddRange(buckets.Select(b => b.GetProperty("starting_at").GetString()!));
            requests += buckets.SelectMany(b => b.GetProperty("results").EnumerateArray()).Sum(r => r.GetProperty("requests").GetInt64());
            if (!json.RootElement.GetProperty("has_more").GetBoolean())
            {
                break;
            }

            page = json.RootElement.GetProperty("next_page").GetString();
        }

        Assert.Equal(seed.Today.DayNumber - from.DayNumber + 1, days.Count);
        Assert.Equal(days.Count, days.Distinct().Count());
        Assert.Equal(seed.Events.Count, requests);
    }

    [Fact]
    public async Task CostReport_AmountsAreExactLowestUnitStrings_PerModelWithDescription_AndScoped()
    {
        await using var gateway = await StartAsync();
        var seed = await UsageSeed.WriteAsync(gateway.Services, Ct);
        using var acme = gateway.Client(seed.AcmeKey);
        var from = seed.Today.AddDays(-2);

        using var plain = await GetJsonAsync(acme, $"{Costs}?starting_at={UsageSeed.Day(from)}T00:00:00Z&account_ids[]=globex");
        foreach (var result in plain.RootElement.GetProperty("data").EnumerateArray().SelectMany(b => b.GetProperty("results").EnumerateArray()))
        {
            var nanos = result.GetProperty("cost_nanos").GetInt64();
            Assert.Equal((nanos / 10_000_000m).ToString("0.#########", CultureInfo.InvariantCulture), result.GetProperty("amount").GetString());   // cents
            Assert.Equal(Pricing.FormatNanos(nanos), result.GetProperty("cost").GetString());
            Assert.Equal(JsonValueKind.Null, result.GetProperty("description").ValueKind);
        }

        var total = plain.RootElement.GetProperty("data").EnumerateArray().SelectMany(b => b.GetProperty("results").EnumerateArray())
            .GroupBy(r => r.GetProperty("currency").GetString()!).ToDictionary(g => g.Key, g => g.Sum(r => r.GetProperty("cost_nanos").GetInt64()));
        var expected = seed.In(from, seed.Today, "acme").GroupBy(e => e.Currency).ToDictionary(g => g.Key, g => g.Sum(e => e.CostNanos));
        Assert.Equal(expected.OrderBy(p => p.Key), total.OrderBy(p => p.Key));

        using var described = await GetJsonAsync(acme, $"{Costs}?starting_at={UsageSeed.Day(from)}T00:00:00Z&group_by[]=description");
        var lines = described.RootElement.GetProperty("data").EnumerateArray().SelectMany(b => b.GetProperty("results").EnumerateArray()).ToList();
        Assert.All(lines, l =>
        {
            Assert.Equal("tokens", l.GetProperty("cost_type").GetString());
            Assert.Equal(l.GetProperty("model").GetString() + " Usage", l.GetProperty("description").GetString());
        });
        Assert.Equal(expected.Values.Sum(), lines.Sum(l => l.GetProperty("cost_nanos").GetInt64()));
    }

    [Fact]
    public async Task Sessions_ListAndDrillDown_AreScopedToTheKeysAccount()
    {
        await using var gateway = await StartAsync();
        var seed = await UsageSeed.WriteAsync(gateway.Services, Ct);
        using var acme = gateway.Client(seed.AcmeKey);
        using var admin = gateway.Client(seed.AdminKey);
        var from = seed.Today.AddDays(-2);
        var range = $"starting_at={UsageSeed.Day(from)}T00:00:00Z";

        using var list = await GetJsonAsync(acme, $"/v1/usage/sessions?{range}&account_id=globex");
        var sessions = list.RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.All(sessions, s => Assert.Equal("acme", s.GetProperty("account_id").GetString()));
        Assert.Equal(["sess-acme-1", "sess-acme-2"], sessions.Select(s => s.GetProperty("session_id").GetString()!).Distinct().Order());
        foreach (var session in sessions)
        {
            // One line per session and currency.
            var events = seed.In(from, seed.Today, "acme")
                .Where(e => e.SessionId == session.GetProperty("session_id").GetString() && e.Currency == session.GetProperty("currency").GetString()).ToList();
            Assert.Equal(events.Count, session.GetProperty("requests").GetInt64());
            Assert.Equal(events.Sum(e => e.CostNanos), session.GetProperty("cost_nanos").GetInt64());
            Assert.Equal(ReportTime(events.Min(e => e.StartedAt)), session.GetProperty("first_request_at").GetString());
            Assert.Equal(ReportTime(events.Max(e => e.StartedAt)), session.GetProperty("last_request_at").GetString());
        }

        using var requests = await GetJsonAsync(acme, $"/v1/usage/sessions/sess-acme-1?{range}");
        var expected = seed.In(from, seed.Today, "acme").Where(e => e.SessionId == "sess-acme-1").OrderBy(e => e.StartedAt).ToList();
        var rows = requests.RootElement.GetProperty("data").EnumerateArray().ToList();
        Assert.Equal(expected.Select(e => e.RequestId), rows.Select(r => r.GetProperty("request_id").GetString()));
        Assert.Equal(expected.Select(e => e.TtftMs), rows.Select(r => (long?)r.GetProperty("ttft_ms").GetInt64()));

        // Another account's session, even when asked for by account: nothing.
        using var stolen = await GetJsonAsync(acme, $"/v1/usage/sessions/sess-globex-1?{range}&account_id=globex");
        Assert.Empty(stolen.RootElement.GetProperty("data").EnumerateArray());
        using var adminView = await GetJsonAsync(admin, $"/v1/usage/sessions/sess-globex-1?{range}");
        Assert.Equal(seed.In(from, seed.Today, "globex").Count(), adminView.RootElement.GetProperty("data").GetArrayLength());
    }

    /// <summary>
    /// An admin's all-accounts views read the ledger by account-month partition, for the accounts with rollups in the
    /// range: a row-key range over the whole ledger read every request marker ever written on every view. A day counter
    /// planted in the partition of an account without rollups (which the writer never leaves) shows which read ran.
    /// </summary>
    [Fact]
    public async Task AdminViews_ReadTheLedgerByAccountPartition_NotTheWholeTable()
    {
        await using var gateway = await StartAsync();
        var seed = await UsageSeed.WriteAsync(gateway.Services, Ct);
        var today = UsageSeed.Day(seed.Today);
        var ledger = gateway.Services.GetRequiredService<Melious.Gateway.Storage.StorageClients>().Table(Melious.Gateway.Storage.TableNames.UsageLedger);
        var partition = UsageRows.LedgerPartition("stray", seed.Today.ToString("yyyy-MM", CultureInfo.InvariantCulture));
        await ledger.AddEntityAsync(new Azure.Data.Tables.TableEntity(partition, UsageRows.KeyDayCounter(today, "straykey", "USD"))
        {
            ["Day"] = today, ["Account"] = "stray", ["KeyId"] = "straykey", ["Currency"] = "USD", ["Requests"] = 1L,
        }, Ct);
        await ledger.AddEntityAsync(new Azure.Data.Tables.TableEntity(partition, UsageRows.SessionCounter(today, "stray-session", "USD"))
        {
            ["Day"] = today, ["Account"] = "stray", ["SessionId"] = "stray-session", ["Currency"] = "USD", ["Requests"] = 1L,
        }, Ct);

        using var admin = gateway.Client(seed.AdminKey);
        var range = $"starting_at={UsageSeed.Day(seed.Today.AddDays(-2))}T00:00:00Z";
        using var byKey = await GetJsonAsync(admin, $"{Messages}?{range}&group_by[]=api_key_id");
        var keys = Results(byKey).Select(r => r.GetProperty("api_key_id").GetString()).Distinct().ToList();
        Assert.DoesNotContain("straykey", keys);
        Assert.Contains(UsageSeed.KeyId(seed.AcmeKey), keys);
        Assert.Contains(UsageSeed.KeyId(seed.GlobexKey), keys);
        Assert.Equal(seed.In(seed.Today.AddDays(-2), seed.Today).Count(), Results(byKey).Sum(r => r.GetProperty("requests").GetInt64()));

        using var sessions = await GetJsonAsync(admin, $"/v1/usage/sessions?{range}");
        var ids = sessions.RootElement.GetProperty("data").EnumerateArray().Select(s => s.GetProperty("session_id").GetString()!).Distinct().Order().ToList();
        Assert.Equal([seed.AcmeSession1, seed.AcmeSession2, seed.GlobexSession], ids);
    }

    [Theory]
    [InlineData("starting_at=2026-12-01T00:00:00Z&bucket_width=1h", "daily usage rollups only")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&bucket_width=1m", "bucket_width=1d")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=service_tier", "not supported")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=colour", "group_by[] must be")]
    [InlineData("ending_at=2026-12-02T00:00:00Z", "starting_at is required")]
    [InlineData("starting_at=yesterday", "RFC 3339")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&limit=0", "limit")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&limit=32", "limit")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&page=bogus", "page")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=model&api_key_ids[]=abc", "cannot be combined")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&context_window[]=0-200k", "not supported")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&colour=red", "unknown query parameter")]
    [InlineData("starting_at=2026-12-05T00:00:00Z&ending_at=2026-12-01T00:00:00Z", "after starting_at")]
    [InlineData("starting_at=9999-12-31T00:00:00Z&ending_at=9999-12-31T12:00:00Z", "from 1970-01-01 to 9998-12-31")]
    [InlineData("starting_at=0001-01-01T00:00:00Z&ending_at=0001-01-02T00:00:00Z", "from 1970-01-01 to 9998-12-31")]
    public async Task UsageReport_UnsupportedOrBadParameters_GetAClear400(string query, string message)
    {
        await using var gateway = await StartAsync();
        var key = await gateway.CreateKeyAsync();
        using var client = gateway.Client(key);

        using var response = await client.GetAsync($"{Messages}?{query}", Ct);
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", message);
    }

    /// <summary>
    /// Dates at the ends of the calendar are a client mistake on every route (day arithmetic past year 1 or 9999 used
    /// to throw: a bare 500 without a request id), and no answer of the usage API may be kept by a shared cache.
    /// </summary>
    [Theory]
    [InlineData(Messages + "?starting_at=9998-12-31T00:00:00Z&ending_at=9999-12-31T12:00:00Z")]
    [InlineData(Costs + "?starting_at=9999-12-31T00:00:00Z&ending_at=9999-12-31T12:00:00Z")]
    [InlineData("/v1/usage/sessions?ending_at=0001-01-01T00:00:00Z")]
    [InlineData("/v1/usage/sessions/some-session?ending_at=0001-01-01T00:00:00Z")]
    public async Task DatesOutsideTheWindow_GetA400_AndNothingIsCacheable(string path)
    {
        await using var gateway = await StartAsync();
        var seed = await UsageSeed.WriteAsync(gateway.Services, Ct);
        using var client = gateway.Client(seed.AcmeKey);

        using var bad = await client.GetAsync(path, Ct);
        Assert.True(bad.Headers.CacheControl?.NoStore, "a 400 of the usage API must say no-store");
        await ErrorAssert.IsErrorAsync(bad, HttpStatusCode.BadRequest, "invalid_request_error", "from 1970-01-01 to 9998-12-31");

        var from = $"starting_at={UsageSeed.Day(seed.Today.AddDays(-2))}T00:00:00Z";
        foreach (var good in new[] { $"{Messages}?{from}", $"{Costs}?{from}", $"/v1/usage/sessions?{from}", $"/v1/usage/sessions/{seed.AcmeSession1}?{from}" })
        {
            using var response = await client.GetAsync(good, Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.True(response.Headers.CacheControl?.NoStore, good + ": an account's usage must not be cached");
        }
    }

    [Fact]
    public async Task Reports_NeedAValidKey_AsMessagesDo()
    {
        await using var gateway = await StartAsync();
        var key = await gateway.CreateKeyAsync();
        using var none = gateway.Client(null);
        await ErrorAssert.IsErrorAsync(await none.GetAsync($"{Messages}?starting_at=2026-12-01T00:00:00Z", Ct), HttpStatusCode.Unauthorized, "authentication_error");
        using var wrong = gateway.Client(ApiKeys.Prefix + new string('x', 43));
        await ErrorAssert.IsErrorAsync(await wrong.GetAsync($"{Costs}?starting_at=2026-12-01T00:00:00Z", Ct), HttpStatusCode.Unauthorized, "authentication_error", "invalid API key");
        await gateway.Services.GetRequiredService<ApiKeyStore>().RevokeAsync(UsageSeed.KeyId(key), Ct);
        gateway.Services.GetRequiredService<ApiKeyAuthenticator>().Clear();
        using var revoked = gateway.Client(key);
        await ErrorAssert.IsErrorAsync(await revoked.GetAsync("/v1/usage/sessions", Ct), HttpStatusCode.Forbidden, "permission_error", "revoked");
    }

    [Fact]
    public async Task Golden_ResponsesHaveEveryFieldOfAnthropicsDocumentedExamples_WithTheSameJsonKinds()
    {
        await using var gateway = await StartAsync();
        var seed = await UsageSeed.WriteAsync(gateway.Services, Ct);
        using var admin = gateway.Client(seed.AdminKey);
        var start = $"starting_at={UsageSeed.Day(seed.Today.AddDays(-2))}T00:00:00Z";

        using var usage = await GetJsonAsync(admin, $"{Messages}?{start}&group_by[]=model&group_by[]=workspace_id&limit=1");
        using var usageExample = JsonDocument.Parse(UsageReportExample);
        AssertSameShape(usageExample.RootElement, usage.RootElement, "$");

        using var cost = await GetJsonAsync(admin, $"{Costs}?{start}&group_by[]=description&limit=1");
        using var costExample = JsonDocument.Parse(CostReportExample);
        AssertSameShape(costExample.RootElement, cost.RootElement, "$");
    }

    [Fact]
    public async Task AdminCliUsageReport_AndTheApi_AgreeToTheNanoUnit()
    {
        await using var gateway = await StartAsync();
        var seed = await UsageSeed.WriteAsync(gateway.Services, Ct);
        await using var cli = new AdminHarness(azurite, new Dictionary<string, string?> { ["Melious:Storage:TablePrefix"] = gateway.Prefix });
        var from = seed.LastMonthDay;
        var to = seed.Today;

        foreach (var account in new[] { "acme", "globex" })
        {
            var result = await cli.RunAsync("usage", "report", "--from", UsageSeed.Day(from), "--to", UsageSeed.Day(to), "--by", "model", "--account", account, "--format", "json");
            Assert.True(result.ExitCode == 0, result.ToString());
            using var report = JsonDocument.Parse(result.Stdout);
            var cliRows = report.RootElement.GetProperty("rows").EnumerateArray()
                .ToDictionary(r => (r.GetProperty("model").GetString()!, r.GetProperty("currency").GetString()!), r => (r.GetProperty("cost_nanos").GetInt64(), r.GetProperty("output_tokens").GetInt64(), r.GetProperty("requests").GetInt64()));

            using var admin = gateway.Client(seed.AdminKey);
            var api = new Dictionary<(string, string), (long, long, long)>();
            for (var start = from; start <= to; start = start.AddDays(31))
            {
                using var page = await GetJsonAsync(admin, $"{Messages}?starting_at={UsageSeed.Day(start)}T00:00:00Z&ending_at={UsageSeed.Day(to.AddDays(1))}T00:00:00Z&group_by[]=model&account_ids[]={account}&limit=31");
                foreach (var r in Results(page))
                {
                    var id = (r.GetProperty("model").GetString()!, r.GetProperty("currency").GetString()!);
                    var (cost, output, requests) = api.GetValueOrDefault(id);
                    api[id] = (cost + r.GetProperty("cost_nanos").GetInt64(), output + r.GetProperty("output_tokens").GetInt64(), requests + r.GetProperty("requests").GetInt64());
                }
            }

            Assert.Equal(cliRows.OrderBy(p => p.Key), api.OrderBy(p => p.Key));
            Assert.Equal(seed.Events.Where(e => e.Account == account).Sum(e => e.CostNanos), api.Values.Sum(v => v.Item1));
        }
    }

    private Task<TestGateway> StartAsync() => TestGateway.StartAsync(azurite.ConnectionString, "http://127.0.0.1:9/v1");

    private static string ReportTime(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);

    private static async Task<JsonDocument> GetJsonAsync(HttpClient client, string url)
    {
        using var response = await client.GetAsync(url, Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{url}: {(int)response.StatusCode} {text}");
        Assert.True(response.Headers.Contains("request-id"));
        return JsonDocument.Parse(text);
    }

    private static List<JsonElement> Results(JsonDocument report) =>
        report.RootElement.GetProperty("data").EnumerateArray().SelectMany(b => b.GetProperty("results").EnumerateArray()).ToList();

    private static void AssertResult(List<UsageEvent> events, JsonElement result)
    {
        Assert.Equal(events.Count, result.GetProperty("requests").GetInt64());
        Assert.Equal(events.Sum(e => e.InputTokens), result.GetProperty("uncached_input_tokens").GetInt64());
        Assert.Equal(events.Sum(e => e.CacheReadTokens), result.GetProperty("cache_read_input_tokens").GetInt64());
        Assert.Equal(events.Sum(e => e.CacheWriteTokens), result.GetProperty("cache_creation").GetProperty("ephemeral_5m_input_tokens").GetInt64());
        Assert.Equal(0, result.GetProperty("cache_creation").GetProperty("ephemeral_1h_input_tokens").GetInt64());
        Assert.Equal(events.Sum(e => e.OutputTokens), result.GetProperty("output_tokens").GetInt64());
        Assert.Equal(events.Sum(e => e.ReasoningTokens), result.GetProperty("reasoning_tokens").GetInt64());
        Assert.Equal(events.Sum(e => e.CostNanos), result.GetProperty("cost_nanos").GetInt64());
        Assert.Equal(Pricing.FormatNanos(events.Sum(e => e.CostNanos)), result.GetProperty("cost").GetString());
        Assert.Equal(events.Sum(e => UsageCounters.Micro(e.EnergyWh)) / 1_000_000m, result.GetProperty("energy_wh").GetDecimal());
        Assert.Equal(events.Sum(e => UsageCounters.Micro(e.Gco2eMax)) / 1_000_000m, result.GetProperty("gco2e_max").GetDecimal());
        Assert.Equal(events.Count(e => e.EnergyWh is null), result.GetProperty("unknown_energy_requests").GetInt64());
        Assert.Equal(events.Count(e => e.IsError), result.GetProperty("error_requests").GetInt64());
    }

    /// <summary>Every property of the example exists in the actual response with the same kind (a documented string may be null here: no workspaces, tiers or context windows).</summary>
    private static void AssertSameShape(JsonElement example, JsonElement actual, string path)
    {
        switch (example.ValueKind)
        {
            case JsonValueKind.Object:
                Assert.True(actual.ValueKind == JsonValueKind.Object, $"{path}: expected an object, got {actual.ValueKind}");
                foreach (var property in example.EnumerateObject())
                {
                    Assert.True(actual.TryGetProperty(property.Name, out var value), $"{path}.{property.Name} is missing");
                    AssertSameShape(property.Value, value, path + "." + property.Name);
                }

                break;
            case JsonValueKind.Array:
                Assert.True(actual.ValueKind == JsonValueKind.Array, $"{path}: expected an array");
                Assert.True(actual.GetArrayLength() > 0, $"{path}: empty, cannot compare");
                AssertSameShape(example[0], actual[0], path + "[0]");
                break;
            case JsonValueKind.String:
                Assert.True(actual.ValueKind is JsonValueKind.String or JsonValueKind.Null, $"{path}: expected a string, got {actual.ValueKind}");
                break;
            case JsonValueKind.True or JsonValueKind.False:
                Assert.True(actual.ValueKind is JsonValueKind.True or JsonValueKind.False, $"{path}: expected a boolean");
                break;
            default:
                Assert.Equal(example.ValueKind, actual.ValueKind);
                break;
        }
    }
}

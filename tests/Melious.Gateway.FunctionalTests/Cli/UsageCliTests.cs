using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Melious.Gateway.Auth;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.FunctionalTests.Usage;
using Melious.Gateway.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Cli;

/// <summary>
/// <c>melious usage</c> as a user runs it: real /v1/messages requests through the self-host, the usage consumer
/// writing billing rows and rollups into Azurite, then the CLI process reading the gateway's usage API with the
/// same key. Totals must equal the billing rows' sums exactly.
/// </summary>
public sealed class UsageCliTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly Dictionary<string, string?> Priced = new()
    {
        ["Melious:Models:Secondary"] = "qwen3-coder-30b-a3b-instruct",
        ["Melious:Models:InputPrice"] = "3",
        ["Melious:Models:OutputPrice"] = "15",
        ["Melious:Models:CacheReadPrice"] = "0.3",
        ["Melious:Models:CacheWritePrice"] = "3.75",
        ["Melious:Models:Currency"] = "EUR",
    };

    [Fact]
    public async Task Usage_ByModel_BySession_ByDay_EqualTheBillingRows()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) =>
            Sse.WriteAsync(context, [Sse.Role(), Sse.Content("hello "), Sse.Content("there"), Sse.Finish("stop"), Sse.Usage(1_200, 7, cached: 1_000)]), Priced);
        using var box = new CliSandbox();
        await box.LoginAsync(s.Gateway.BaseUrl, s.Key);

        // Three sonnet requests in session A, two haiku requests in session B.
        var sent = new[] { ("claude-sonnet-4-5-20250929", "sess-a"), ("claude-sonnet-4-5-20250929", "sess-a"), ("claude-sonnet-4-5-20250929", "sess-a"), ("claude-haiku-4-5-20251001", "sess-b"), ("claude-haiku-4-5-20251001", "sess-b") };
        foreach (var (model, session) in sent)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StringContent(Scenario.Body(model).ToJsonString(), Encoding.UTF8, "application/json") };
            request.Headers.Add("x-claude-code-session-id", session);
            using var response = await s.Client.SendAsync(request, Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        await s.Gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
        var billing = await UsageTables.WaitForAsync(storage, TableNames.Billing, rows => rows.Count >= sent.Length, TimeSpan.FromSeconds(30));
        var energy = await UsageTables.WaitForAsync(storage, TableNames.Energy, rows => rows.Count >= sent.Length, TimeSpan.FromSeconds(30));
        Assert.Equal(sent.Length, billing.Count);
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        string[] range = ["--from", Day(today.AddDays(-1)), "--to", Day(today.AddDays(1))];

        // The rollups follow the billing rows: poll the CLI itself (bounded) until they are in.
        var byModel = await WaitForRequestsAsync(box, ["usage", "--by", "model", "--json", .. range], sent.Length);
        var totals = Assert.Single(byModel.GetProperty("totals").EnumerateArray());
        Assert.Equal("EUR", totals.GetProperty("currency").GetString());
        Assert.Equal(sent.Length, totals.GetProperty("requests").GetInt64());
        var billedNanos = billing.Sum(r => UsageTables.Long(r, "CostNanos"));
        Assert.True(billedNanos > 0);
        Assert.Equal(billedNanos, totals.GetProperty("cost_nanos").GetInt64());
        Assert.Equal((billedNanos / 1_000_000_000m).ToString("0.000000000", CultureInfo.InvariantCulture), totals.GetProperty("cost").GetString());
        Assert.Equal(billing.Sum(r => UsageTables.Long(r, "InputTokens")), totals.GetProperty("uncached_input_tokens").GetInt64());
        Assert.Equal(billing.Sum(r => UsageTables.Long(r, "CacheReadTokens")), totals.GetProperty("cache_read_input_tokens").GetInt64());
        Assert.Equal(billing.Sum(r => UsageTables.Long(r, "OutputTokens")), totals.GetProperty("output_tokens").GetInt64());
        var energyMicroWh = energy.Sum(r => UsageTables.Long(r, "EnergyMicroWh"));
        Assert.True(energyMicroWh > 0, "the sonnet model has energy figures");
        Assert.Equal(energyMicroWh / 1_000_000m, totals.GetProperty("energy_wh").GetDecimal());
        Assert.Equal(energy.Sum(r => UsageTables.Long(r, "Gco2eMicrograms")) / 1_000_000m, totals.GetProperty("gco2e").GetDecimal());

        var models = byModel.GetProperty("rows").EnumerateArray().ToDictionary(r => r.GetProperty("model").GetString()!);
        Assert.Equal(["light-model", "qwen3-coder-30b-a3b-instruct"], models.Keys.Order(StringComparer.Ordinal));
        foreach (var group in billing.GroupBy(r => r.GetString("UpstreamModel")!))
        {
            var row = models[group.Key];
            Assert.Equal(group.Count(), row.GetProperty("requests").GetInt64());
            Assert.Equal(group.Sum(r => UsageTables.Long(r, "CostNanos")), row.GetProperty("cost_nanos").GetInt64());
        }

        // The table: the model, its request count and exact cost, and the totals line, UTC dates labelled.
        var table = await box.RunAsync(["usage", "--by", "model", .. range]);
        Assert.True(table.ExitCode == 0, table.Describe());
        Assert.Contains($"Usage from {Day(today.AddDays(-1))} to {Day(today.AddDays(1))} inclusive (UTC days), by model:", table.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^MODEL\s+REQUESTS\s+INPUT\s+CACHE READ\s+CACHE WRITE\s+OUTPUT\s+COST\s+CURRENCY\s+ENERGY Wh\s+gCO2e$", table.Stdout);
        var sonnetCost = models["qwen3-coder-30b-a3b-instruct"].GetProperty("cost").GetString()!;
        Assert.Matches($@"(?m)^qwen3-coder-30b-a3b-instruct\s+3\s+.*\s{Regex.Escape(sonnetCost)}\s+EUR\s", table.Stdout);
        Assert.Matches(@"(?m)^light-model\s+2\s", table.Stdout);
        Assert.Matches($@"(?m)^TOTAL\s+5\s+.*\s{Regex.Escape(totals.GetProperty("cost").GetString()!)}\s+EUR\s", table.Stdout);

        // By session: each session's requests and cost are its billing rows.
        var bySession = await WaitForRequestsAsync(box, ["usage", "--by", "session", "--json", .. range], sent.Length);
        var sessions = bySession.GetProperty("rows").EnumerateArray().ToDictionary(r => r.GetProperty("session_id").GetString()!);
        Assert.Equal(["sess-a", "sess-b"], sessions.Keys.Order(StringComparer.Ordinal));
        foreach (var group in billing.GroupBy(r => r.GetString("SessionId")!))
        {
            Assert.Equal(group.Count(), sessions[group.Key].GetProperty("requests").GetInt64());
            Assert.Equal(group.Sum(r => UsageTables.Long(r, "CostNanos")), sessions[group.Key].GetProperty("cost_nanos").GetInt64());
        }

        Assert.Equal(billedNanos, Assert.Single(bySession.GetProperty("totals").EnumerateArray()).GetProperty("cost_nanos").GetInt64());
        var sessionTable = await box.RunAsync(["usage", "--by", "session", .. range]);
        Assert.True(sessionTable.ExitCode == 0, sessionTable.Describe());
        Assert.Matches(@"(?m)^SESSION\s+REQUESTS", sessionTable.Stdout);
        Assert.Matches(@"(?m)^sess-a\s+3\s", sessionTable.Stdout);
        Assert.Matches(@"(?m)^sess-b\s+2\s", sessionTable.Stdout);

        // By day (the default), over the default range (this month so far): today's row, same totals.
        var byDay = await box.RunAsync("usage", "--json");
        Assert.True(byDay.ExitCode == 0, byDay.Describe());
        var days = JsonDocument.Parse(byDay.Stdout).RootElement;
        Assert.Equal("day", days.GetProperty("by").GetString());
        Assert.Equal("UTC", days.GetProperty("time_zone").GetString());
        Assert.Equal(Day(new DateOnly(today.Year, today.Month, 1)), days.GetProperty("from").GetString());
        Assert.Equal(Day(today), days.GetProperty("to").GetString());
        if (billing.All(r => DateOnly.FromDateTime(r.GetDateTime("StartedAt")!.Value.ToUniversalTime()) == today))
        {
            var row = Assert.Single(days.GetProperty("rows").EnumerateArray());
            Assert.Equal(Day(today), row.GetProperty("day").GetString());
            Assert.Equal(billedNanos, row.GetProperty("cost_nanos").GetInt64());
        }
    }

    [Fact]
    public async Task Usage_ExplainsARefusedKey_AndBadDates()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        using var box = new CliSandbox();
        box.Environment["MELIOUS_BASE_URL"] = s.Gateway.BaseUrl;
        box.Environment["MELIOUS_API_KEY"] = Auth.AuthMessageTests.KeyFor("unknown", s.Key);
        var refused = await box.RunAsync("usage");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("the gateway refused the key (401)", refused.Stderr, StringComparison.Ordinal);
        Assert.Contains("sign in again with `melious login`", refused.Stderr, StringComparison.Ordinal);

        box.Environment["MELIOUS_API_KEY"] = s.Key;
        var badDate = await box.RunAsync("usage", "--from", "12/01/2026");
        Assert.Equal(1, badDate.ExitCode);
        Assert.Contains("--from must be a UTC date as YYYY-MM-DD (got '12/01/2026')", badDate.Stderr, StringComparison.Ordinal);
        var reversed = await box.RunAsync("usage", "--from", "2026-12-05", "--to", "2026-12-01");
        Assert.Equal(1, reversed.ExitCode);
        Assert.Contains("--to (2026-12-01) is before --from (2026-12-05)", reversed.Stderr, StringComparison.Ordinal);
        var badBy = await box.RunAsync("usage", "--by", "week");
        Assert.Equal(2, badBy.ExitCode);

        // A revoked key: the gateway's 403 reason and what to do.
        await s.Gateway.Services.GetRequiredService<ApiKeyStore>().RevokeAsync(ApiKeys.KeyIdFromHash(ApiKeys.Hash(s.Key)), Ct);
        s.Gateway.Services.GetRequiredService<ApiKeyAuthenticator>().Clear();
        var revoked = await box.RunAsync("usage", "--by", "model");
        Assert.Equal(1, revoked.ExitCode);
        Assert.Contains("the gateway refused the key (403): this API key has been revoked", revoked.Stderr, StringComparison.Ordinal);
        Assert.Contains("ask your gateway operator for a working key", revoked.Stderr, StringComparison.Ordinal);

        // A gateway without the usage API (an older version): a 404 explained, not a stack trace.
        await using var old = await ScriptedUpstream.StartAsync(async (_, context) =>
        {
            context.Response.StatusCode = 404;
            await context.Response.WriteAsync("""{"type":"error","error":{"type":"not_found_error","message":"Not found"}}""", Ct);
        });
        box.Environment["MELIOUS_BASE_URL"] = old.BaseUrl;
        var missing = await box.RunAsync("usage", "--by", "session");
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("this gateway has no usage API", missing.Stderr, StringComparison.Ordinal);
    }

    private static async Task<JsonElement> WaitForRequestsAsync(CliSandbox box, string[] args, int requests)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            var run = await box.RunAsync(args);
            Assert.True(run.ExitCode == 0, run.Describe());
            var root = JsonDocument.Parse(run.Stdout).RootElement;
            var seen = root.GetProperty("totals").EnumerateArray().Sum(t => t.GetProperty("requests").GetInt64());
            if (seen >= requests || DateTime.UtcNow > deadline)
            {
                Assert.Equal(requests, seen);
                return root;
            }

            await Task.Delay(250, Ct);
        }
    }

    private static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}

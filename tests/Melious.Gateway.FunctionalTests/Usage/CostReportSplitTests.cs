using System.Globalization;
using System.Net;
using System.Text.Json;
using Azure.Data.Tables;
using Melious.Gateway.FunctionalTests.Http;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Usage;

/// <summary>
/// The cost report grouped by description, split per token type and with a <c>web_search</c> line, over real HTTP
/// against usage written into Azurite by the gateway's own <see cref="UsageWriter"/>: lines equal the sums of the
/// events' cost parts, add up to the model's total to the nano-unit, survive redelivery without double counting,
/// and rollup rows written before the split columns existed still report (their cost as one unsplit line).
/// </summary>
public sealed class CostReportSplitTests(AzuriteFixture azurite)
{
    private const string Costs = "/v1/organizations/cost_report";
    private const string Messages = "/v1/organizations/usage_report/messages";
    private const string SplitModel = "qwen3-coder-480b";
    private const string OldModel = "glm-4.6";

    private static readonly string[] SplitColumns = ["InputCostNanos", "OutputCostNanos", "CacheReadCostNanos", "CacheWriteCostNanos", "WebSearchCostNanos", "WebSearchRequests"];

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ByDescription_OneLinePerTokenTypeAndWebSearch_EqualToTheEventsParts_AndSummingToTheTotal()
    {
        await using var gateway = await StartAsync();
        var key = await gateway.CreateKeyAsync("acme");
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var writer = gateway.Services.GetRequiredService<UsageWriter>();
        var random = new Random(1205);

        // Priced as the gateway prices requests: decimal parts, allocated to nano-units that sum to the total.
        var events = Enumerable.Range(0, 24).Select(i => Priced(random, i, today, "acme", SplitModel, searches: i % 4 == 0 ? 1 + i % 3 : 0)).ToList();
        await writer.WriteAsync(events.Take(15).ToList(), Ct);
        await writer.WriteAsync(events.Skip(10).ToList(), Ct);
        await writer.WriteAsync(events.Skip(5).Take(10).ToList(), Ct);   // redeliveries: must change nothing

        using var client = gateway.Client(key);
        var range = $"starting_at={Day(today)}T00:00:00Z&ending_at={Day(today.AddDays(1))}T00:00:00Z";
        using var report = await GetJsonAsync(client, $"{Costs}?{range}&group_by[]=description");
        var lines = Results(report);
        Assert.All(lines, l =>
        {
            Assert.Equal(SplitModel, l.GetProperty("model").GetString());
            Assert.Equal("USD", l.GetProperty("currency").GetString());
            var nanos = l.GetProperty("cost_nanos").GetInt64();
            Assert.Equal((nanos / 10_000_000m).ToString("0.#########", CultureInfo.InvariantCulture), l.GetProperty("amount").GetString());
            Assert.Equal(JsonValueKind.Null, l.GetProperty("workspace_id").ValueKind);
        });

        var byType = lines.ToDictionary(l => (l.GetProperty("cost_type").GetString()!, l.GetProperty("token_type").GetString()), l => l);
        Assert.Equal(
            new[] { ("tokens", (string?)"uncached_input_tokens"), ("tokens", "cache_creation.ephemeral_5m_input_tokens"), ("tokens", "cache_read_input_tokens"), ("tokens", "output_tokens"), ("web_search", null) },
            lines.Select(l => (l.GetProperty("cost_type").GetString()!, l.GetProperty("token_type").GetString())));
        Assert.Equal(events.Sum(e => e.InputCostNanos), Nanos(byType[("tokens", "uncached_input_tokens")]));
        Assert.Equal(events.Sum(e => e.CacheWriteCostNanos), Nanos(byType[("tokens", "cache_creation.ephemeral_5m_input_tokens")]));
        Assert.Equal(events.Sum(e => e.CacheReadCostNanos), Nanos(byType[("tokens", "cache_read_input_tokens")]));
        Assert.Equal(events.Sum(e => e.OutputCostNanos), Nanos(byType[("tokens", "output_tokens")]));
        Assert.Equal(events.Sum(e => e.WebSearchCostNanos), Nanos(byType[("web_search", null)]));
        Assert.Equal($"{SplitModel} Usage - Input Tokens", byType[("tokens", "uncached_input_tokens")].GetProperty("description").GetString());
        Assert.Equal($"{SplitModel} Web Search", byType[("web_search", null)].GetProperty("description").GetString());

        // The lines add up exactly to the model's total, in nano-units and in the decimal amounts.
        var total = events.Sum(e => e.CostNanos);
        Assert.Equal(total, lines.Sum(Nanos));
        using var plain = await GetJsonAsync(client, $"{Costs}?{range}");
        var single = Assert.Single(Results(plain));
        Assert.Equal(total, Nanos(single));
        Assert.Equal(JsonValueKind.Null, single.GetProperty("cost_type").ValueKind);
        Assert.Equal(
            decimal.Parse(single.GetProperty("amount").GetString()!, CultureInfo.InvariantCulture),
            lines.Sum(l => decimal.Parse(l.GetProperty("amount").GetString()!, CultureInfo.InvariantCulture)));

        // The usage report counts the searches.
        using var usage = await GetJsonAsync(client, $"{Messages}?{range}&group_by[]=model");
        var result = Assert.Single(Results(usage));
        Assert.Equal(events.Sum(e => e.WebSearchRequests), result.GetProperty("server_tool_use").GetProperty("web_search_requests").GetInt64());
        Assert.Equal(events.Count, result.GetProperty("requests").GetInt64());
    }

    [Fact]
    public async Task EndToEnd_PricedRequests_BillingPartsSumToTheTotal_AndTheReportLinesEqualThem()
    {
        // Prices with seven decimals per million tokens: the parts of most requests are not whole nano-units.
        const decimal input = 0.1234567m, output = 1.9876543m, cacheRead = 0.0123457m;
        var settings = new Dictionary<string, string?>
        {
            ["Melious:Models:Secondary"] = "qwen3-coder-30b-a3b-instruct",
            ["Melious:Models:InputPrice"] = input.ToString(CultureInfo.InvariantCulture),
            ["Melious:Models:OutputPrice"] = output.ToString(CultureInfo.InvariantCulture),
            ["Melious:Models:CacheReadPrice"] = cacheRead.ToString(CultureInfo.InvariantCulture),
            ["Melious:Models:CacheWritePrice"] = "0.1543211",
            ["Melious:Models:Currency"] = "USD",
        };
        var calls = 0;
        await using var s = await Scenario.StartAsync(azurite, (request, context) =>
        {
            var i = Interlocked.Increment(ref calls);
            return Sse.WriteAsync(context, [Sse.Role(), Sse.Content("ok"), Sse.Finish("stop"), Sse.Usage(1_000 + 137 * i, 3 + 11 * i, cached: 61 * i)]);
        }, settings);

        const int n = 8;
        for (var i = 0; i < n; i++)
        {
            var response = await s.PostAsync(Scenario.Body(stream: i % 2 == 0));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await response.Content.ReadAsStringAsync(Ct);
        }

        var storage = s.Gateway.Services.GetRequiredService<StorageClients>();
        await s.Gateway.Publisher.FlushAsync(TimeSpan.FromSeconds(10), Ct);
        var billing = await UsageTables.WaitForAsync(storage, TableNames.Billing, rows => rows.Count >= n, TimeSpan.FromSeconds(30));
        await UsageTables.WaitForAsync(storage, TableNames.UsageDaily, rows => rows.Sum(r => UsageTables.Long(r, "Requests")) >= n, TimeSpan.FromSeconds(30));
        Assert.Equal(n, billing.Count);
        var rounded = 0;
        foreach (var row in billing)
        {
            long Part(string column) => UsageTables.Long(row, column);
            Assert.Equal(Part("CostNanos"), Part("InputCostNanos") + Part("OutputCostNanos") + Part("CacheReadCostNanos") + Part("CacheWriteCostNanos") + Part("WebSearchCostNanos"));
            var exactInput = Part("InputTokens") * input * 1_000m;   // nano-units
            var exactOutput = Part("OutputTokens") * output * 1_000m;
            var exactCacheRead = Part("CacheReadTokens") * cacheRead * 1_000m;
            Assert.True(Math.Abs(exactInput - Part("InputCostNanos")) < 1 && Math.Abs(exactOutput - Part("OutputCostNanos")) < 1 && Math.Abs(exactCacheRead - Part("CacheReadCostNanos")) < 1, $"parts too far from exact in {row.RowKey}");
            rounded += exactInput % 1 != 0 || exactOutput % 1 != 0 || exactCacheRead % 1 != 0 ? 1 : 0;
        }

        Assert.True(rounded > 0, "no request needed rounding: the test proves nothing");
        var day = billing[0].GetDateTimeOffset("StartedAt")!.Value.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        using var report = await GetJsonAsync(s.Client, $"{Costs}?starting_at={day}T00:00:00Z&group_by[]=description");
        var lines = Results(report);
        Assert.Equal(["uncached_input_tokens", "cache_read_input_tokens", "output_tokens"], lines.Select(l => l.GetProperty("token_type").GetString()));
        Assert.Equal(billing.Sum(r => UsageTables.Long(r, "InputCostNanos")), Nanos(lines[0]));
        Assert.Equal(billing.Sum(r => UsageTables.Long(r, "CacheReadCostNanos")), Nanos(lines[1]));
        Assert.Equal(billing.Sum(r => UsageTables.Long(r, "OutputCostNanos")), Nanos(lines[2]));
        Assert.Equal(billing.Sum(r => UsageTables.Long(r, "CostNanos")), lines.Sum(Nanos));
        Assert.All(lines, l => Assert.Equal("qwen3-coder-30b-a3b-instruct", l.GetProperty("model").GetString()));
    }

    [Fact]
    public async Task OlderRollupRows_WithoutTheSplitColumns_ReportAsOneUnsplitLine_AndNewUsageOnTopSplits()
    {
        await using var gateway = await StartAsync();
        var key = await gateway.CreateKeyAsync("acme");
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var writer = gateway.Services.GetRequiredService<UsageWriter>();
        var storage = gateway.Services.GetRequiredService<StorageClients>();
        var random = new Random(512);

        // Usage counted by the previous version: its ledger counters and usagedaily row have no split columns.
        var before = Enumerable.Range(0, 6).Select(i => Priced(random, i, today, "acme", OldModel, searches: i == 2 ? 1 : 0)).ToList();
        await writer.WriteAsync(before, Ct);
        var stripped = 0;
        foreach (var table in new[] { TableNames.UsageDaily, TableNames.UsageLedger })
        {
            foreach (var row in await UsageTables.AllAsync(storage, table))
            {
                if (row.ContainsKey("InputCostNanos"))
                {
                    foreach (var column in SplitColumns)
                    {
                        row.Remove(column);
                    }

                    await storage.Table(table).UpdateEntityAsync(row, row.ETag, TableUpdateMode.Replace, Ct);
                    stripped++;
                }
            }
        }

        Assert.True(stripped >= 2, "expected the ledger counters and the usagedaily row to be rewritten");

        using var client = gateway.Client(key);
        var range = $"starting_at={Day(today)}T00:00:00Z&group_by[]=description";
        using var old = await GetJsonAsync(client, $"{Costs}?{range}");
        var line = Assert.Single(Results(old));
        Assert.Equal("tokens", line.GetProperty("cost_type").GetString());
        Assert.Equal(JsonValueKind.Null, line.GetProperty("token_type").ValueKind);
        Assert.Equal($"{OldModel} Usage", line.GetProperty("description").GetString());
        Assert.Equal(before.Sum(e => e.CostNanos), Nanos(line));

        // An event from an older gateway (no parts) and new events: the old part stays one unsplit line, the rest splits.
        var legacy = Priced(random, 50, today, "acme", OldModel, searches: 0) with { InputCostNanos = 0, OutputCostNanos = 0, CacheReadCostNanos = 0, CacheWriteCostNanos = 0 };
        var after = Enumerable.Range(60, 5).Select(i => Priced(random, i, today, "acme", OldModel, searches: i == 61 ? 2 : 0)).ToList();
        await writer.WriteAsync([legacy, .. after], Ct);
        await writer.WriteAsync([after[0], legacy], Ct);   // redelivered

        using var mixed = await GetJsonAsync(client, $"{Costs}?{range}");
        var lines = Results(mixed);
        var unsplit = Assert.Single(lines, l => l.GetProperty("token_type").ValueKind == JsonValueKind.Null && l.GetProperty("cost_type").GetString() == "tokens");
        Assert.Equal(before.Sum(e => e.CostNanos) + legacy.CostNanos, Nanos(unsplit));
        Assert.Equal(after.Sum(e => e.OutputCostNanos), Nanos(Assert.Single(lines, l => l.GetProperty("token_type").GetString() == "output_tokens")));
        Assert.Equal(after.Sum(e => e.WebSearchCostNanos), Nanos(Assert.Single(lines, l => l.GetProperty("cost_type").GetString() == "web_search")));
        Assert.Equal(before.Sum(e => e.CostNanos) + legacy.CostNanos + after.Sum(e => e.CostNanos), lines.Sum(Nanos));

        // The search count restarts from the upgrade (older rows have none), like the other new columns.
        using var usage = await GetJsonAsync(client, $"{Messages}?starting_at={Day(today)}T00:00:00Z");
        Assert.Equal(2, Assert.Single(Results(usage)).GetProperty("server_tool_use").GetProperty("web_search_requests").GetInt64());
    }

    [Fact]
    public async Task ByDescriptionAndAccount_AdminSeesEachAccountsSplit_UserKeyOnlyItsOwn()
    {
        await using var gateway = await StartAsync();
        var user = await gateway.CreateKeyAsync("acme");
        var admin = (await gateway.Services.GetRequiredService<Melious.Gateway.Auth.ApiKeyStore>().CreateAsync("finance", "cfo", null, Ct, Melious.Gateway.Auth.KeyRoles.Admin)).Key;
        var today = DateOnly.FromDateTime(DateTime.UtcNow);
        var random = new Random(99);
        var events = Enumerable.Range(0, 12).Select(i => Priced(random, i, today, i % 2 == 0 ? "acme" : "globex", SplitModel, searches: i % 5 == 0 ? 1 : 0, currency: i % 3 == 0 ? "EUR" : "USD")).ToList();
        await gateway.Services.GetRequiredService<UsageWriter>().WriteAsync(events, Ct);
        var range = $"starting_at={Day(today)}T00:00:00Z&group_by[]=description&group_by[]=account_id";

        using var adminClient = gateway.Client(admin);
        using var all = await GetJsonAsync(adminClient, $"{Costs}?{range}");
        var lines = Results(all);
        foreach (var group in events.GroupBy(e => (e.Account, e.Currency)))
        {
            var mine = lines.Where(l => l.GetProperty("account_id").GetString() == group.Key.Account && l.GetProperty("currency").GetString() == group.Key.Currency).ToList();
            Assert.Equal(group.Sum(e => e.CostNanos), mine.Sum(Nanos));
            Assert.Equal(group.Sum(e => e.OutputCostNanos), mine.Where(l => l.GetProperty("token_type").GetString() == "output_tokens").Sum(Nanos));
            Assert.Equal(group.Sum(e => e.WebSearchCostNanos), mine.Where(l => l.GetProperty("cost_type").GetString() == "web_search").Sum(Nanos));
        }

        using var userClient = gateway.Client(user);
        using var own = await GetJsonAsync(userClient, $"{Costs}?{range}&account_ids[]=globex");
        var ownLines = Results(own);
        Assert.All(ownLines, l => Assert.Equal("acme", l.GetProperty("account_id").GetString()));
        Assert.Equal(events.Where(e => e.Account == "acme").Sum(e => e.CostNanos), ownLines.Sum(Nanos));
    }

    [Theory]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=model", "group_by[]=description gives one line per model")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=token_type", "not supported on the cost report")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=api_key_id", "usage report groups by api_key_id")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=service_tier", "not supported")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=colour", "group_by[] must be description, workspace_id or account_id")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=description&models[]=glm-4.6", "no model filter")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&api_key_ids[]=abc", "not kept per API key")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&context_window[]=0-200k", "context window")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=description&bucket_width=1h", "daily usage rollups only")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&colour=red", "unknown query parameter")]
    [InlineData("group_by[]=description", "starting_at is required")]
    [InlineData("starting_at=2026-12-01T00:00:00Z&group_by[]=description&limit=32", "limit")]
    [InlineData("starting_at=2026-12-05T00:00:00Z&ending_at=2026-12-01T00:00:00Z&group_by[]=description", "after starting_at")]
    public async Task CostReport_BadGroupByOrFilters_GetAnAnthropicShaped400(string query, string message)
    {
        await using var gateway = await StartAsync();
        var key = await gateway.CreateKeyAsync();
        using var client = gateway.Client(key);

        using var response = await client.GetAsync($"{Costs}?{query}", Ct);
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", message);
    }

    private Task<TestGateway> StartAsync() => TestGateway.StartAsync(azurite.ConnectionString, "http://127.0.0.1:9/v1");

    /// <summary>An event priced like the gateway prices one (<see cref="Pricing.Compute"/> then <see cref="CostSplit.Allocate"/>), with prices of many decimals so parts need rounding.</summary>
    private static UsageEvent Priced(Random random, int i, DateOnly day, string account, string model, int searches, string currency = "USD")
    {
        var prices = new Melious.Gateway.Routing.PriceCard(0.123457m, 1.987654m, 0.0123457m, 0.1543211m, currency, "test-split");
        var tokens = new TokenUsage(random.Next(1, 50_000), random.Next(0, 30_000), random.Next(0, 5_000), random.Next(1, 8_000), 0);
        var cost = Pricing.Compute(prices, tokens) with { WebSearch = searches * 0.0123456789m };
        var parts = CostSplit.Allocate(cost);
        var started = day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc).AddSeconds(i * 3 + 1);
        return new UsageEvent
        {
            RequestId = Ids.NewRequestId(),
            Account = account,
            KeyId = "0123456789abcdef",
            RequestedModel = "claude-sonnet-4-5",
            UpstreamModel = model,
            Upstream = "http://127.0.0.1:8000/v1",
            InputTokens = tokens.Input,
            CacheReadTokens = tokens.CacheRead,
            CacheWriteTokens = tokens.CacheWrite,
            OutputTokens = tokens.Output,
            StartedAt = new DateTimeOffset(started < DateTime.UtcNow ? started : DateTime.UtcNow.AddSeconds(-1), TimeSpan.Zero),
            Status = 200,
            Currency = currency,
            CostNanos = cost.TotalNanos,
            InputCostNanos = parts.Input,
            OutputCostNanos = parts.Output,
            CacheReadCostNanos = parts.CacheRead,
            CacheWriteCostNanos = parts.CacheWrite,
            WebSearchRequests = searches,
            WebSearchCostNanos = parts.WebSearch,
            PriceVersion = prices.Version,
            Region = "westeurope",
            EnergyMethod = EnergyModel.UnknownMethod,
        };
    }

    private static long Nanos(JsonElement line) => line.GetProperty("cost_nanos").GetInt64();

    private static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

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
}

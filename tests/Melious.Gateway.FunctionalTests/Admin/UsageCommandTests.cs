using System.Globalization;
using System.Text.Json;
using Azure.Data.Tables;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;

namespace Melious.Gateway.FunctionalTests.Admin;

public sealed class UsageCommandTests(AzuriteFixture azurite)
{
    private static readonly DateOnly From = new(2025, 7, 30);
    private static readonly DateOnly To = new(2025, 8, 1);   // the range crosses a month (two usagedaily partitions)

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ReplayPoison_SendsEveryPoisonedMessageBackToTheUsageQueue()
    {
        var queueName = "q" + AzuriteFixture.NewPrefix();
        await using var admin = new AdminHarness(azurite, new Dictionary<string, string?>
        {
            ["Melious:Usage:QueueName"] = queueName,
            ["Melious:Usage:PoisonQueueName"] = queueName + "-poison",
        });
        var storage = admin.Get<StorageClients>();

        var none = await admin.RunAsync("usage", "replay-poison");
        Assert.True(none.ExitCode == 0, none.ToString());
        Assert.Contains("nothing to replay", none.Stdout, StringComparison.Ordinal);

        // More than one receive's worth (32), as the runtime or the consumer put them there.
        var poison = storage.Queue(queueName + "-poison");
        await poison.CreateIfNotExistsAsync(cancellationToken: Ct);
        var bodies = Enumerable.Range(0, 40).Select(i => $$"""{"events":[{"requestId":"req-poisoned-{{i}}"}]}""").ToList();
        foreach (var body in bodies)
        {
            await poison.SendMessageAsync(BinaryData.FromString(body), cancellationToken: Ct);
        }

        var dry = await admin.RunAsync("usage", "replay-poison", "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.ToString());
        Assert.Contains("40 messages", dry.Stdout, StringComparison.Ordinal);
        Assert.Equal(40, (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount);

        var run = await admin.RunAsync("usage", "replay-poison");
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("Moved 40 messages", run.Stdout, StringComparison.Ordinal);
        Assert.Equal(0, (await poison.GetPropertiesAsync(Ct)).Value.ApproximateMessagesCount);

        var replayed = new List<string>();
        var queue = storage.Queue(queueName);
        for (var batch = await queue.ReceiveMessagesAsync(32, cancellationToken: Ct); batch.Value.Length > 0; batch = await queue.ReceiveMessagesAsync(32, cancellationToken: Ct))
        {
            replayed.AddRange(batch.Value.Select(m => m.Body.ToString()));
        }

        Assert.Equal(bodies.Order(StringComparer.Ordinal), replayed.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("day", null)]
    [InlineData("model", null)]
    [InlineData("session", null)]
    [InlineData("day", "acme")]
    [InlineData("model", "globex")]
    [InlineData("session", "acme")]
    public async Task Report_TotalsEqualTheSumsOfTheBillingRows(string by, string? account)
    {
        await using var admin = new AdminHarness(azurite);
        var events = await WriteUsageAsync(admin);

        string[] args = ["usage", "report", "--from", Day(From), "--to", Day(To), "--by", by, "--format", "json"];
        var result = await admin.RunAsync(account is null ? args : [.. args, "--account", account]);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("", result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        Assert.Equal(Day(From), root.GetProperty("from").GetString());
        Assert.Equal(Day(To), root.GetProperty("to").GetString());
        Assert.Equal(by, root.GetProperty("by").GetString());

        // Expected: straight from the billing rows (one per request), grouped the same way.
        var billing = new List<TableEntity>();
        await foreach (var row in admin.Get<UsageReader>().ReadBillingAsync(From, To, account, Ct))
        {
            billing.Add(row);
        }

        Assert.Equal(events.Count(e => account is null || e.Account == account), billing.Count);
        var energy = await EnergyByRequestAsync(admin);
        var included = by == "session" ? billing.Where(r => (string)r["SessionId"] != "").ToList() : billing;
        Assert.NotEmpty(included);

        var expectedTotals = included.GroupBy(r => (string)r["Currency"]).ToDictionary(g => g.Key, g => Sums(g, energy));
        var totals = root.GetProperty("totals").EnumerateArray().ToList();
        Assert.Equal(expectedTotals.Keys.Order(), totals.Select(t => t.GetProperty("currency").GetString()!).Order());
        foreach (var total in totals)
        {
            AssertLine(expectedTotals[total.GetProperty("currency").GetString()!], total);
        }

        var expectedRows = included
            .GroupBy(r => (Key: by switch { "day" => r.PartitionKey[^10..], "model" => (string)r["UpstreamModel"], _ => (string)r["SessionId"] }, Currency: (string)r["Currency"]))
            .ToDictionary(g => g.Key, g => Sums(g, energy));
        var rows = root.GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal(expectedRows.Count, rows.Count);
        foreach (var row in rows)
        {
            var key = (row.GetProperty(by).GetString()!, row.GetProperty("currency").GetString()!);
            AssertLine(expectedRows[key], row);
        }

        // Energy, emissions and water in the units the events carry (Wh, g, ml), to 1e-6 per request.
        var sourceEvents = events.Where(e => (account is null || e.Account == account) && (by != "session" || e.SessionId is not null)).ToList();
        foreach (var total in totals)
        {
            var ofCurrency = sourceEvents.Where(e => e.Currency == total.GetProperty("currency").GetString()).ToList();
            Assert.Equal(ofCurrency.Sum(e => Round6(e.EnergyWh)), total.GetProperty("energy_wh").GetDecimal());
            Assert.Equal(ofCurrency.Sum(e => Round6(e.Gco2e)), total.GetProperty("gco2e").GetDecimal());
            Assert.Equal(ofCurrency.Sum(e => Round3(e.WaterMl)), total.GetProperty("water_ml").GetDecimal());
            Assert.Equal(ofCurrency.Count(e => e.EnergyWh is null), total.GetProperty("unknown_energy_requests").GetInt64());
        }

        // The rows add up to the totals, and totals never mix currencies.
        foreach (var total in totals)
        {
            var currency = total.GetProperty("currency").GetString();
            var ofCurrency = rows.Where(r => r.GetProperty("currency").GetString() == currency).ToList();
            Assert.Equal(total.GetProperty("cost_nanos").GetInt64(), ofCurrency.Sum(r => r.GetProperty("cost_nanos").GetInt64()));
            Assert.Equal(total.GetProperty("requests").GetInt64(), ofCurrency.Sum(r => r.GetProperty("requests").GetInt64()));
        }
    }

    [Fact]
    public async Task Reconcile_ExitsZeroWhenTheRollupsMatch_AndTwoWhenOneWasTamperedWith()
    {
        await using var admin = new AdminHarness(azurite);
        await WriteUsageAsync(admin);

        var ok = await admin.RunAsync("usage", "reconcile", "--from", Day(From), "--to", Day(To));
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.StartsWith("OK:", ok.Stdout);
        Assert.Equal(0, (await admin.RunAsync("usage", "reconcile", "--from", Day(From), "--to", Day(To), "--account", "acme")).ExitCode);

        var daily = admin.Table(TableNames.UsageDaily);
        var victim = (await admin.RowsAsync(TableNames.UsageDaily)).First(r => (string)r["Account"] == "globex");
        victim["OutputTokens"] = (long)victim["OutputTokens"] + 7;
        await daily.UpdateEntityAsync(victim, victim.ETag, TableUpdateMode.Replace, Ct);

        var mismatch = await admin.RunAsync("usage", "reconcile", "--from", Day(From), "--to", Day(To));
        Assert.Equal(2, mismatch.ExitCode);
        Assert.Contains("output_tokens", mismatch.Stdout);
        Assert.Contains("+7", mismatch.Stdout);
        Assert.Contains("MISMATCH: 1 of", mismatch.Stdout);

        // Scoped to another account, the tampered row is out of range.
        Assert.Equal(0, (await admin.RunAsync("usage", "reconcile", "--from", Day(From), "--to", Day(To), "--account", "acme")).ExitCode);

        // A rollup whose total cost is right but whose split, error count or web searches are not is a mismatch too.
        var other = (await admin.RowsAsync(TableNames.UsageDaily)).First(r => (string)r["Account"] == "acme" && (long)r["InputCostNanos"] > 5);
        other["InputCostNanos"] = (long)other["InputCostNanos"] - 5;
        other["OutputCostNanos"] = (long)other["OutputCostNanos"] + 5;
        other["ErrorRequests"] = (long)other["ErrorRequests"] + 1;
        other["WebSearchRequests"] = (long)other.GetInt64("WebSearchRequests").GetValueOrDefault() + 2;
        await daily.UpdateEntityAsync(other, other.ETag, TableUpdateMode.Replace, Ct);
        var split = await admin.RunAsync("usage", "reconcile", "--from", Day(From), "--to", Day(To), "--account", "acme");
        Assert.Equal(2, split.ExitCode);
        foreach (var column in new[] { "input_cost_nanos", "output_cost_nanos", "error_requests", "web_search_requests" })
        {
            Assert.Contains(column, split.Stdout);
        }

        Assert.DoesNotContain("cost_nanos ", split.Stdout.Replace("_cost_nanos", "", StringComparison.Ordinal));   // the total still agrees
        Assert.Contains("MISMATCH: 1 of", split.Stdout);
    }

    [Fact]
    public async Task Report_CsvAndTable_HaveTheDocumentedColumnsAndTotalLines()
    {
        await using var admin = new AdminHarness(azurite);
        await WriteUsageAsync(admin);

        var csv = await admin.RunAsync("usage", "report", "--from", Day(From), "--to", Day(To), "--by", "model", "--format", "csv");
        Assert.Equal(0, csv.ExitCode);
        var lines = csv.StdoutLines;
        Assert.Equal(
            "model,currency,requests,errors,cancelled,input_tokens,cache_read_tokens,cache_write_tokens,output_tokens,reasoning_tokens,cost,cost_invoice,energy_wh,gco2e,water_ml",
            lines[0]);
        var totals = lines.Where(l => l.StartsWith("TOTAL,", StringComparison.Ordinal)).ToList();
        Assert.Equal(["TOTAL,EUR", "TOTAL,USD"], totals.Select(l => string.Join(',', l.Split(',')[..2])));
        Assert.All(lines.Skip(1), l => Assert.Equal(15, l.Split(',').Length));
        var usd = totals[1].Split(',');
        var nanos = long.Parse(usd[10].Replace(".", "", StringComparison.Ordinal), CultureInfo.InvariantCulture);
        Assert.Equal(decimal.Round(nanos / 1_000_000_000m, 2, MidpointRounding.ToEven).ToString("F2", CultureInfo.InvariantCulture), usd[11]);

        var table = await admin.RunAsync("usage", "report", "--from", Day(From), "--to", Day(To));
        Assert.Equal(0, table.ExitCode);
        Assert.StartsWith("day", table.StdoutLines[0]);
        Assert.Contains(table.StdoutLines, l => l.StartsWith("2025-07-31", StringComparison.Ordinal));
        Assert.Equal(2, table.StdoutLines.Count(l => l.StartsWith("TOTAL", StringComparison.Ordinal)));
        Assert.Contains("without energy parameters", table.Stdout);

        var empty = await admin.RunAsync("usage", "report", "--from", "2024-01-01", "--to", "2024-01-31", "--format", "json");
        Assert.Equal(0, empty.ExitCode);
        Assert.Equal(0, JsonDocument.Parse(empty.Stdout).RootElement.GetProperty("rows").GetArrayLength());
    }

    [Theory]
    [InlineData("usage", "report", "--from", "2025-07-32", "--to", "2025-08-01")]
    [InlineData("usage", "report", "--from", "07/30/2025", "--to", "2025-08-01")]
    [InlineData("usage", "report", "--from", "2025-08-02", "--to", "2025-08-01")]
    [InlineData("usage", "report", "--to", "2025-08-01")]
    [InlineData("usage", "report", "--from", "2025-07-30", "--to", "2025-08-01", "--by", "week")]
    [InlineData("usage", "report", "--from", "2025-07-30", "--to", "2025-08-01", "--format", "xlsx")]
    [InlineData("usage", "report", "--from", "2025-07-30", "--to", "2025-08-01", "--account", "a/b")]
    [InlineData("usage", "reconcile", "--from", "2025-07-30")]
    [InlineData("usage", "reconcile", "--from", "yesterday", "--to", "2025-08-01")]
    public async Task InvalidArguments_FailWithOneLine(params string[] args)
    {
        await using var admin = new AdminHarness(azurite);

        AdminHarness.AssertOneLineError(await admin.RunAsync(args));
    }

    /// <summary>About 30 requests over three days (two months), three accounts, three models, two currencies, sessions, errors, unknown energy.</summary>
    private static async Task<List<UsageEvent>> WriteUsageAsync(AdminHarness admin)
    {
        Assert.Equal(0, (await admin.RunAsync("keys", "list")).ExitCode);   // creates the tables, as on a fresh Azurite
        var random = new Random(20250730);
        string[] accounts = ["acme", "globex", "initech"];
        string[] models = ["qwen3-coder-480b", "glm-4.6", "gpt-oss-120b"];
        string?[] sessions = ["sess-alpha", "sess-beta", null, "sess-gamma"];
        var events = new List<UsageEvent>();
        for (var i = 0; i < 30; i++)
        {
            var day = From.AddDays(i % 3);
            var knownEnergy = i % 5 != 0;
            var energy = knownEnergy ? Math.Round(random.NextDouble() * 3, 9) : (double?)null;
            events.Add(new UsageEvent
            {
                RequestId = Ids.NewRequestId(),
                Account = accounts[(i / 2) % accounts.Length],
                KeyId = "key" + (i % 4).ToString(CultureInfo.InvariantCulture).PadLeft(13, '0'),
                SessionId = sessions[i % sessions.Length],
                RequestedModel = "claude-sonnet-4-5",
                UpstreamModel = models[(i / 3) % models.Length],
                Upstream = "http://127.0.0.1:8000/v1",
                Stream = i % 2 == 0,
                InputTokens = random.Next(0, 50_000),
                CacheReadTokens = random.Next(0, 20_000),
                CacheWriteTokens = random.Next(0, 5_000),
                OutputTokens = random.Next(1, 8_000),
                ReasoningTokens = random.Next(0, 1_000),
                StartedAt = day.ToDateTime(new TimeOnly(i % 24, i % 60), DateTimeKind.Utc),
                DurationMs = random.Next(100, 60_000),
                Status = i % 7 == 3 ? 502 : 200,
                ErrorType = i % 11 == 5 ? "overloaded_error" : null,
                Cancelled = i % 9 == 4,
                Currency = i % 6 == 1 ? "EUR" : "USD",
                CostNanos = random.NextInt64(0, 5_000_000_000),
                PriceVersion = "test-1",
                EnergyWh = energy,
                EnergyWhMin = energy / 2,
                EnergyWhMax = energy * 2,
                Gco2e = energy * 0.25,
                Gco2eMin = energy * 0.1,
                Gco2eMax = energy * 0.5,
                WaterMl = energy * 1.7,
                Region = "westeurope",
                GridGco2ePerKwh = 250,
                Pue = 1.2,
                EnergyMethod = knownEnergy ? "melious-energy-1" : "unknown",
            });
        }

        // Most events carry the split of their cost (some with web searches); every third is an older event without it
        // (its whole cost counts as unsplit).
        for (var i = 0; i < events.Count; i++)
        {
            if (i % 3 != 0)
            {
                var cost = events[i].CostNanos;
                var web = i % 4 == 1 ? cost / 10 : 0;
                events[i] = events[i] with
                {
                    InputCostNanos = cost / 2,
                    CacheReadCostNanos = cost / 8,
                    CacheWriteCostNanos = cost / 16,
                    WebSearchCostNanos = web,
                    WebSearchRequests = web > 0 ? 2 : 0,
                    OutputCostNanos = cost - cost / 2 - cost / 8 - cost / 16 - web,
                };
            }
        }

        var writer = admin.Get<UsageWriter>();
        await writer.WriteAsync(events.Take(17).ToList(), Ct);
        await writer.WriteAsync(events.Skip(17).ToList(), Ct);
        await writer.WriteAsync(events.Skip(10).Take(5).ToList(), Ct);   // a redelivery changes nothing
        return events;
    }

    private static async Task<Dictionary<string, TableEntity>> EnergyByRequestAsync(AdminHarness admin) =>
        (await admin.RowsAsync(TableNames.Energy)).ToDictionary(r => r.RowKey);

    private sealed record Expected(long Requests, long Errors, long Cancelled, long Input, long CacheRead, long CacheWrite, long Output, long Reasoning, long CostNanos, long EnergyMicroWh, long Gco2eMicrograms, long WaterMicroliters);

    private static Expected Sums(IEnumerable<TableEntity> rows, Dictionary<string, TableEntity> energy)
    {
        var list = rows.ToList();
        return new Expected(
            list.Count,
            list.Count(r => (int)r["Status"] >= 400 || (string)r["ErrorType"] != ""),
            list.Count(r => (bool)r["Cancelled"]),
            list.Sum(r => (long)r["InputTokens"]),
            list.Sum(r => (long)r["CacheReadTokens"]),
            list.Sum(r => (long)r["CacheWriteTokens"]),
            list.Sum(r => (long)r["OutputTokens"]),
            list.Sum(r => (long)r["ReasoningTokens"]),
            list.Sum(r => (long)r["CostNanos"]),
            list.Sum(r => Micro(energy[r.RowKey], "EnergyMicroWh")),
            list.Sum(r => Micro(energy[r.RowKey], "Gco2eMicrograms")),
            list.Sum(r => Micro(energy[r.RowKey], "WaterMicroliters")));
    }

    private static long Micro(TableEntity energyRow, string name) => energyRow.TryGetValue(name, out var value) && value is long l ? l : 0;

    private static void AssertLine(Expected expected, JsonElement line)
    {
        Assert.Equal(expected.Requests, line.GetProperty("requests").GetInt64());
        Assert.Equal(expected.Errors, line.GetProperty("errors").GetInt64());
        Assert.Equal(expected.Cancelled, line.GetProperty("cancelled").GetInt64());
        Assert.Equal(expected.Input, line.GetProperty("input_tokens").GetInt64());
        Assert.Equal(expected.CacheRead, line.GetProperty("cache_read_tokens").GetInt64());
        Assert.Equal(expected.CacheWrite, line.GetProperty("cache_write_tokens").GetInt64());
        Assert.Equal(expected.Output, line.GetProperty("output_tokens").GetInt64());
        Assert.Equal(expected.Reasoning, line.GetProperty("reasoning_tokens").GetInt64());
        Assert.Equal(expected.CostNanos, line.GetProperty("cost_nanos").GetInt64());
        Assert.Equal(Pricing.FormatNanos(expected.CostNanos), line.GetProperty("cost").GetString());
        var currency = line.GetProperty("currency").GetString()!;
        var invoice = decimal.Round(expected.CostNanos / 1_000_000_000m, Pricing.MinorUnits(currency), MidpointRounding.ToEven);
        Assert.Equal(invoice.ToString("F2", CultureInfo.InvariantCulture), line.GetProperty("cost_invoice").GetString());
        Assert.Equal(expected.EnergyMicroWh / 1_000_000m, line.GetProperty("energy_wh").GetDecimal());
        Assert.Equal(expected.Gco2eMicrograms / 1_000_000m, line.GetProperty("gco2e").GetDecimal());
        Assert.Equal(expected.WaterMicroliters / 1_000m, line.GetProperty("water_ml").GetDecimal());   // the column holds microlitres
        Assert.Equal(JsonValueKind.String, line.GetProperty("cost").ValueKind);
        Assert.Equal(JsonValueKind.Number, line.GetProperty("energy_wh").ValueKind);
    }

    private static decimal Round6(double? value) => value is { } v ? decimal.Round((decimal)v, 6, MidpointRounding.ToEven) : 0m;

    private static decimal Round3(double? value) => value is { } v ? decimal.Round((decimal)v, 3, MidpointRounding.ToEven) : 0m;

    private static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}

using BenchmarkDotNet.Attributes;
using Melious.Gateway.Auth;
using Melious.Gateway.Dashboard;
using Melious.Gateway.Reporting;
using Melious.Gateway.Usage;

namespace Melious.Benchmarks;

/// <summary>
/// The dashboard's server side for a month of one account with 1,000,000 requests: what the page reads is the
/// rollups, not the requests, so the month is 30 days × 20 upstream models of <c>usagedaily</c>, 30 × 20 requested
/// models and 30 × 50 keys of ledger day counters, and 3,000 Claude Code sessions. Measures grouping the rows into
/// the view, building the tables, rendering the HTML (SVG charts included) and the CSV. Storage reads are not in
/// these figures (they are one partition query per month per counter kind).
/// </summary>
[MemoryDiagnoser]
public class DashboardBenchmarks
{
    private UsageView _view = null!;
    private DashboardRange _range = null!;
    private readonly ApiKeyRecord _key = new() { Hash = new string('a', 64), KeyId = "aaaaaaaaaaaaaaaa", Account = "acme", Name = "bench" };

    [GlobalSetup]
    public void Setup()
    {
        var from = new DateOnly(2026, 11, 1);
        var to = new DateOnly(2026, 11, 30);
        const long requestsPerModelDay = 1_000_000 / (30 * 20);
        UsageCounters Counters(long requests, int seed) => new()
        {
            Requests = requests, ErrorRequests = requests / 50, CancelledRequests = requests / 100, InputTokens = requests * 9_000 + seed,
            CacheReadTokens = requests * 30_000, CacheWriteTokens = requests * 2_000, OutputTokens = requests * 700, ReasoningTokens = requests * 90,
            CostNanos = requests * 4_123_457 + seed, EnergyMicroWh = requests * 1_300_000, EnergyMinMicroWh = requests * 600_000, EnergyMaxMicroWh = requests * 2_600_000,
            Gco2eMicrograms = requests * 330_000, Gco2eMinMicrograms = requests * 120_000, Gco2eMaxMicrograms = requests * 700_000, WaterMicroliters = requests * 2_100,
        };
        var daily = new List<DailyUsageRow>();
        var requested = new List<(string, string, UsageCounters)>();
        var keys = new List<(string, string, UsageCounters)>();
        for (var d = from; d <= to; d = d.AddDays(1))
        {
            var day = UsageQueryService.Day(d);
            for (var m = 0; m < 20; m++)
            {
                daily.Add(new DailyUsageRow(day, "acme", $"upstream-model-{m:00}", "USD", Counters(requestsPerModelDay, m)));
                requested.Add(($"claude-model-{m:00}", "USD", Counters(requestsPerModelDay, m)));
            }

            for (var k = 0; k < 50; k++)
            {
                keys.Add(($"{k:x16}", "USD", Counters(1_000_000 / (30 * 50), k)));
            }
        }

        var byUpstream = UsageGrouping.Group(daily.Select(r => (r.Model, r.Currency, r.Totals)));
        var sessions = Enumerable.Range(0, 3_000)
            .Select(s => new SessionSummary($"session-{s:0000}-{Guid.Empty}", "acme", "USD", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, Counters(333, s)))
            .ToList();
        _view = new UsageView(from, to, "acme", UsageGrouping.TotalsByCurrency(byUpstream), daily, byUpstream, UsageGrouping.Group(requested), UsageGrouping.Group(keys), sessions, ["acme"]);
        _range = new DashboardRange("lastmonth", from, to);
    }

    [Benchmark(Description = "dashboard: 1M requests/month, group + tables + HTML")]
    public int RenderPage()
    {
        var tables = DashboardTables.Build(_view, _range.Query);
        return DashboardHtml.Main("bench-nonce", _key, new UsageScope("acme", false, _key.KeyId), _range, _view, tables, null).Length;
    }

    [Benchmark(Description = "dashboard: 1M requests/month, CSV export")]
    public int RenderCsv() => DashboardTables.Csv(DashboardTables.Build(_view, _range.Query)).Length;

    [Benchmark(Description = "dashboard: group 600 rollup rows into the view's breakdowns")]
    public int Group() => UsageGrouping.Group(_view.Daily.Select(r => (r.Model, r.Currency, r.Totals))).Count;
}

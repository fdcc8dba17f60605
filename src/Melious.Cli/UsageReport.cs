using System.Globalization;
using System.Net;
using Melious.Gateway.Reporting;

namespace Melious.Cli;

/// <summary>
/// <c>melious usage</c>: the caller's own usage from the gateway's usage API (the Admin-API-shaped usage report, by
/// UTC day or model, and <c>/v1/usage/sessions</c>), summed per row and currency. Costs are summed in nanos and
/// printed as exact decimal strings; a key only ever sees its own account (the gateway enforces it).
/// </summary>
public static class UsageReport
{
    /// <summary>The gateway's longest range (UsageQueryService.MaxDays).</summary>
    public const int MaxDays = 400;

    private const int PageDays = 31;

    public static (DateOnly From, DateOnly To) Range(string? from, string? to, DateTimeOffset now)
    {
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var end = to is null ? today : Day(to, "--to");
        var start = from is null ? new DateOnly(end.Year, end.Month, 1) : Day(from, "--from");
        if (end < start)
        {
            throw new CliException($"--to ({Text(end)}) is before --from ({Text(start)})");
        }

        if (end.DayNumber - start.DayNumber + 1 > MaxDays)
        {
            throw new CliException($"the range may cover at most {MaxDays} days");
        }

        return (start, end);
    }

    public static async Task<UsageOutput> ReadAsync(GatewayClient gateway, DateOnly from, DateOnly to, string by, CancellationToken cancellationToken)
    {
        var range = $"starting_at={Text(from)}T00:00:00Z&ending_at={Text(to.AddDays(1))}T00:00:00Z";
        var rows = new List<UsageRow>();
        try
        {
            if (by == "session")
            {
                var sessions = await gateway.UsageSessionsAsync(range, cancellationToken);
                rows.AddRange(sessions.Data
                    .OrderBy(s => s.FirstRequestAt, StringComparer.Ordinal)
                    .Select(s => new UsageRow
                    {
                        SessionId = s.SessionId,
                        FirstRequestAt = s.FirstRequestAt,
                        LastRequestAt = s.LastRequestAt,
                        Requests = s.Requests,
                        ErrorRequests = s.ErrorRequests,
                        UncachedInputTokens = s.UncachedInputTokens,
                        CacheReadInputTokens = s.CacheReadInputTokens,
                        CacheCreationInputTokens = s.CacheCreationInputTokens,
                        OutputTokens = s.OutputTokens,
                        Currency = s.Currency,
                        Cost = Money(s.CostNanos),
                        CostNanos = s.CostNanos,
                        EnergyWh = s.EnergyWh,
                        Gco2e = s.Gco2e,
                    }));
            }
            else
            {
                var items = new List<(string Day, UsageReportResult Result)>();
                var query = $"{range}&bucket_width=1d&limit={PageDays}{(by == "model" ? "&group_by[]=model" : "")}";
                string? page = null;
                for (var pages = 0; pages <= MaxDays / PageDays + 1; pages++)
                {
                    var report = await gateway.UsageReportAsync(page is null ? query : $"{query}&page={Uri.EscapeDataString(page)}", cancellationToken);
                    items.AddRange(report.Data.SelectMany(b => b.Results.Select(r => (b.StartingAt.Length >= 10 ? b.StartingAt[..10] : b.StartingAt, r))));
                    if (!report.HasMore || report.NextPage is null)
                    {
                        break;
                    }

                    page = report.NextPage;
                }

                rows.AddRange(by == "model"
                    ? items.GroupBy(i => (i.Result.Model ?? "", i.Result.Currency))
                        .OrderByDescending(g => g.Sum(i => i.Result.CostNanos)).ThenBy(g => g.Key.Item1, StringComparer.Ordinal)
                        .Select(g => Sum(g.Select(i => i.Result), g.Key.Currency) with { Model = g.Key.Item1 })
                    : items.GroupBy(i => (i.Day, i.Result.Currency))
                        .OrderBy(g => g.Key.Day, StringComparer.Ordinal).ThenBy(g => g.Key.Currency, StringComparer.Ordinal)
                        .Select(g => Sum(g.Select(i => i.Result), g.Key.Currency) with { Day = g.Key.Day }));
            }
        }
        catch (GatewayException ex) when (ex.Status is HttpStatusCode.Unauthorized)
        {
            throw new CliException($"{ex.Message}; sign in again with `melious login`");
        }
        catch (GatewayException ex) when (ex.Status is HttpStatusCode.Forbidden)
        {
            throw new CliException($"{ex.Message}; this key cannot read usage: ask your gateway operator for a working key, then run `melious login`");
        }
        catch (GatewayException ex) when (ex.Status is HttpStatusCode.NotFound)
        {
            throw new CliException($"this gateway has no usage API ({ex.Message}); it needs a gateway version with /v1/organizations/usage_report/messages and /v1/usage/sessions");
        }

        var totals = rows.GroupBy(r => r.Currency).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => Total(g, g.Key)).ToList();
        return new UsageOutput { From = Text(from), To = Text(to), By = by, Rows = rows, Totals = totals };
    }

    /// <summary>The table: one row per day, model or session, then a totals line per currency.</summary>
    public static void Write(TextWriter output, UsageOutput usage)
    {
        var label = usage.By switch { "model" => "MODEL", "session" => "SESSION", _ => "DAY (UTC)" };
        output.WriteLine($"Usage from {usage.From} to {usage.To} inclusive (UTC days), by {usage.By}:");
        if (usage.Rows.Count == 0)
        {
            output.WriteLine("No usage in this range.");
            return;
        }

        string[] headers = [label, "REQUESTS", "INPUT", "CACHE READ", "CACHE WRITE", "OUTPUT", "COST", "CURRENCY", "ENERGY Wh", "gCO2e"];
        var body = usage.Rows.Select(r => Cells(usage.By switch { "model" => r.Model!, "session" => r.SessionId!, _ => r.Day! }, r)).ToList();
        var totals = usage.Totals.Select(t => Cells("TOTAL", t)).ToList();
        var widths = headers.Select((h, i) => body.Concat(totals).Select(r => r[i].Length).Append(h.Length).Max()).ToArray();
        string Line(string[] cells) => string.Join("  ", cells.Select((c, i) => i == 0 || i == 7 ? c.PadRight(widths[i]) : c.PadLeft(widths[i]))).TrimEnd();
        output.WriteLine(Line(headers));
        foreach (var row in body)
        {
            output.WriteLine(Line(row));
        }

        output.WriteLine(new string('-', widths.Sum() + (2 * (widths.Length - 1))));
        foreach (var row in totals)
        {
            output.WriteLine(Line(row));
        }

        if (usage.By == "session")
        {
            output.WriteLine("Requests without a session id (no x-claude-code-session-id or metadata.user_id) are not listed; `--by day` counts them.");
        }
    }

    private static string[] Cells(string first, UsageRow r) =>
    [
        first,
        Number(r.Requests) + (r.ErrorRequests > 0 ? $" ({Number(r.ErrorRequests)} failed)" : ""),
        Number(r.UncachedInputTokens),
        Number(r.CacheReadInputTokens),
        Number(r.CacheCreationInputTokens),
        Number(r.OutputTokens),
        r.Cost,
        r.Currency,
        r.EnergyWh.ToString("0.####", CultureInfo.InvariantCulture),
        r.Gco2e.ToString("0.####", CultureInfo.InvariantCulture),
    ];

    private static UsageRow Sum(IEnumerable<UsageReportResult> results, string currency)
    {
        var list = results.ToList();
        var nanos = list.Sum(r => r.CostNanos);
        return new UsageRow
        {
            Requests = list.Sum(r => r.Requests),
            ErrorRequests = list.Sum(r => r.ErrorRequests),
            UncachedInputTokens = list.Sum(r => r.UncachedInputTokens),
            CacheReadInputTokens = list.Sum(r => r.CacheReadInputTokens),
            CacheCreationInputTokens = list.Sum(r => r.CacheCreation.Ephemeral5mInputTokens + r.CacheCreation.Ephemeral1hInputTokens),
            OutputTokens = list.Sum(r => r.OutputTokens),
            Currency = currency,
            Cost = Money(nanos),
            CostNanos = nanos,
            EnergyWh = list.Sum(r => r.EnergyWh),
            Gco2e = list.Sum(r => r.Gco2e),
        };
    }

    private static UsageRow Total(IEnumerable<UsageRow> rows, string currency)
    {
        var list = rows.ToList();
        var nanos = list.Sum(r => r.CostNanos);
        return new UsageRow
        {
            Requests = list.Sum(r => r.Requests),
            ErrorRequests = list.Sum(r => r.ErrorRequests),
            UncachedInputTokens = list.Sum(r => r.UncachedInputTokens),
            CacheReadInputTokens = list.Sum(r => r.CacheReadInputTokens),
            CacheCreationInputTokens = list.Sum(r => r.CacheCreationInputTokens),
            OutputTokens = list.Sum(r => r.OutputTokens),
            Currency = currency,
            Cost = Money(nanos),
            CostNanos = nanos,
            EnergyWh = list.Sum(r => r.EnergyWh),
            Gco2e = list.Sum(r => r.Gco2e),
        };
    }

    /// <summary>Nanos as an exact decimal string in major units with nine decimals (the gateway's own format).</summary>
    public static string Money(long nanos) => (nanos / 1_000_000_000m).ToString("0.000000000", CultureInfo.InvariantCulture);

    private static string Number(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Text(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static DateOnly Day(string text, string option) =>
        DateOnly.TryParseExact(text.Trim(), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day)
            ? day
            : throw new CliException($"{option} must be a UTC date as YYYY-MM-DD (got '{text}')");
}

using System.Buffers.Text;
using System.Globalization;
using System.Text;
using Melious.Gateway.Reporting;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Dashboard;

/// <summary>A table of the dashboard, exactly as shown and as exported to CSV (same columns, same cell text).</summary>
public sealed record ReportTable(string Id, string Title, IReadOnlyList<string> Headers, IReadOnlyList<ReportRow> Rows, int TextColumns);

/// <summary>One row; <see cref="Link"/> (a relative URL) makes the first cell a link (a session's drill-down).</summary>
public sealed record ReportRow(IReadOnlyList<string> Cells, string? Link = null);

/// <summary>Builds the dashboard's tables from a <see cref="UsageView"/>, and formats every figure the one way both the page and the CSV use.</summary>
public static class DashboardTables
{
    private static readonly string[] CounterHeaders =
    [
        "currency", "requests", "errors", "cancelled", "uncached_input_tokens", "cache_read_tokens", "cache_write_tokens",
        "output_tokens", "reasoning_tokens", "cost", "energy_wh", "gco2e", "water_ml",
    ];

    public static List<ReportTable> Build(UsageView view, string query)
    {
        var tables = new List<ReportTable>
        {
            Lines("totals", "Totals per currency", "total", view.Totals),
            Lines("by-upstream-model", "By model (upstream, as served)", "upstream_model", view.ByUpstreamModel),
            CostByType(view.ByUpstreamModel),
            Lines("by-requested-model", "By model (as requested)", "requested_model", view.ByRequestedModel),
            Lines("by-key", "By API key", "api_key_id", view.ByKey),
        };
        var sessionRows = view.Sessions.Select(s => new ReportRow(
            [s.SessionId, s.Account, Time(s.FirstAt), Time(s.LastAt), .. Counters(s.Currency, s.Totals)],
            $"{SessionPath(s.SessionId)}?{query}&account={Uri.EscapeDataString(s.Account)}")).ToList();
        tables.Add(new ReportTable("by-session", "By Claude Code session", ["session_id", "account", "first_request_utc", "last_request_utc", .. CounterHeaders], sessionRows, 5));
        return tables;
    }

    /// <summary>
    /// The drill-down path of a session. An id of unreserved URL characters only (a Claude Code session's UUID) is its
    /// own path segment. Any other id (a <c>%</c>, a <c>/</c>, a space, <c>.</c> or <c>..</c>, a leading <c>~</c>) is
    /// written as <c>~</c> and its base64url UTF-8 bytes: percent-escapes do not survive the Functions host, which
    /// decodes the path and hands the worker a re-escaped one in which an id's own <c>%41</c> reads as <c>A</c>.
    /// </summary>
    internal static string SessionPath(string sessionId) =>
        "/dashboard/sessions/" + (IsPlainSegment(sessionId) ? sessionId : "~" + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(sessionId)));

    /// <summary>The session id of a drill-down path segment (as decoded by the server), or null when it is not one.</summary>
    internal static string? SessionIdFromSegment(string segment)
    {
        if (!segment.StartsWith('~'))
        {
            // A plain id, or a link typed by hand: the server decoded it already, all but an escaped slash.
            return segment.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
        }

        try
        {
            return Encoding.UTF8.GetString(Base64Url.DecodeFromChars(segment.AsSpan(1)));
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static bool IsPlainSegment(string id) =>
        id.Length > 0 && id is not "." and not ".." && id[0] != '~'
        && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    public static ReportTable Requests(string sessionId, IReadOnlyList<RequestSummary> requests) => new(
        "session-requests",
        "Requests of session " + sessionId,
        ["time_utc", "request_id", "requested_model", "upstream_model", "uncached_input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "currency", "cost", "ttft_ms", "duration_ms", "status"],
        requests.Select(r => new ReportRow(
        [
            Time(r.StartedAt), r.RequestId, r.RequestedModel, r.UpstreamModel, Int(r.InputTokens), Int(r.CacheReadTokens), Int(r.CacheWriteTokens),
            Int(r.OutputTokens), r.Currency, Money(r.CostNanos), r.TtftMs is { } t ? Int(t) : "", Int(r.DurationMs),
            r.Cancelled ? "cancelled" : r.ErrorType.Length > 0 ? $"{r.Status} {r.ErrorType}" : Int(r.Status),
        ])).ToList(),
        4);

    /// <summary>The cost report's split (docs/cost-report.md): per upstream model and currency, one row per cost type and token type.</summary>
    private static ReportTable CostByType(IReadOnlyList<UsageLine> byModel) => new(
        "cost-by-type",
        "Cost by model and type",
        ["upstream_model", "currency", "cost_type", "token_type", "cost"],
        byModel.SelectMany(l => CostLines.Split(l.Key, l.Totals).Select(c => new ReportRow([l.Key, l.Currency, c.CostType, c.TokenType ?? "", Money(c.Nanos)]))).ToList(),
        4);

    private static ReportTable Lines(string id, string title, string keyHeader, IReadOnlyList<UsageLine> lines) =>
        new(id, title, [keyHeader, .. CounterHeaders], lines.Select(l => new ReportRow([l.Key, .. Counters(l.Currency, l.Totals)])).ToList(), 2);

    private static string[] Counters(string currency, UsageCounters t) =>
    [
        currency, Int(t.Requests), Int(t.ErrorRequests), Int(t.CancelledRequests), Int(t.InputTokens), Int(t.CacheReadTokens),
        Int(t.CacheWriteTokens), Int(t.OutputTokens), Int(t.ReasoningTokens), Money(t.CostNanos), Micro(t.EnergyMicroWh),
        Micro(t.Gco2eMicrograms), Water(t.WaterMicroliters),
    ];

    public static string Int(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Exact: nano-units as a decimal string with 9 decimals (never a float).</summary>
    public static string Money(long nanos) => Pricing.FormatNanos(nanos);

    public static string Micro(long micro) => (micro / 1_000_000m).ToString("0.######", CultureInfo.InvariantCulture);

    public static string Water(long microliters) => (microliters / 1_000m).ToString("0.###", CultureInfo.InvariantCulture);

    public static string Time(DateTimeOffset? time) => time?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) ?? "";

    /// <summary>The tables as CSV: per table a header line and its rows, each line starting with the table id.</summary>
    public static string Csv(IEnumerable<ReportTable> tables)
    {
        var csv = new System.Text.StringBuilder();
        foreach (var table in tables)
        {
            csv.Append(string.Join(',', new[] { "section" }.Concat(table.Headers).Select(Escape))).Append("\r\n");
            foreach (var row in table.Rows)
            {
                csv.Append(string.Join(',', new[] { table.Id }.Concat(row.Cells).Select(Escape))).Append("\r\n");
            }
        }

        return csv.ToString();
    }

    /// <summary>Quotes as RFC 4180 and defuses spreadsheet formulas (a session id such as <c>=HYPERLINK(…)</c>).</summary>
    private static string Escape(string cell)
    {
        if (cell.Length > 0 && cell[0] is '=' or '+' or '@' or '\t' or '\r' || (cell.Length > 0 && cell[0] == '-' && !decimal.TryParse(cell, NumberStyles.Number, CultureInfo.InvariantCulture, out _)))
        {
            cell = "'" + cell;
        }

        return cell.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + cell.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : cell;
    }
}

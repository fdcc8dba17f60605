using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using Melious.Gateway.Auth;
using Melious.Gateway.Reporting;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Dashboard;

/// <summary>The range a page shows: a preset (<c>today</c>, <c>7d</c>, <c>month</c>, <c>lastmonth</c>) or <c>custom</c> days, UTC.</summary>
public sealed record DashboardRange(string Preset, DateOnly From, DateOnly To)
{
    public string Query => $"range={Preset}&from={UsageQueryService.Day(From)}&to={UsageQueryService.Day(To)}";

    public IReadOnlyList<DateOnly> Days => Enumerable.Range(0, To.DayNumber - From.DayNumber + 1).Select(From.AddDays).ToList();
}

/// <summary>Server-rendered HTML of the dashboard. Everything it needs is inline (style and script with a CSP nonce); nothing is fetched.</summary>
public static class DashboardHtml
{
    private const string Style = """
        body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;background:#f6f7f9}
        header{display:flex;justify-content:space-between;align-items:center;padding:10px 20px;background:#1f2937;color:#fff}
        header h1{font-size:18px;margin:0} header form{display:inline} header .who{margin-right:12px}
        main{padding:16px 20px;max-width:1280px;margin:auto}
        section{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:12px 16px;margin-bottom:16px}
        h2{font-size:16px;margin:0 0 8px}
        .picker{display:flex;gap:10px;flex-wrap:wrap;align-items:end} .picker label{display:flex;flex-direction:column;font-size:12px}
        .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:8px;margin:0}
        .cards div{border:1px solid #e5e7eb;border-radius:4px;padding:6px 10px} .cards dt{font-size:12px;color:#555} .cards dd{margin:0;font-size:16px;font-variant-numeric:tabular-nums}
        table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:13px}
        th,td{padding:4px 6px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap} th{cursor:pointer;background:#f3f4f6;position:sticky;top:0}
        th.text,td.text{text-align:left} th[aria-sort=ascending]::after{content:" ▲"} th[aria-sort=descending]::after{content:" ▼"}
        .scroll{overflow:auto;max-height:480px}
        .chart{width:100%;height:auto;max-height:260px} .legend{list-style:none;padding:0;margin:4px 0;display:flex;flex-wrap:wrap;gap:10px;font-size:12px}
        .swatch{display:inline-block;margin-right:4px}
        .error{background:#fde8e8;border-color:#f5b5b5;color:#7f1d1d} .empty{color:#555;font-style:italic}
        .login{max-width:420px;margin:60px auto} .login input[type=password]{width:100%;padding:6px;margin:8px 0;box-sizing:border-box}
        .note{font-size:12px;color:#555} [hidden]{display:none!important}
        """;

    private const string Script = """
        document.querySelectorAll('table.sortable').forEach(function (table) {
          table.querySelectorAll('th').forEach(function (th, index) {
            th.addEventListener('click', function () {
              var body = table.tBodies[0];
              var descending = th.getAttribute('aria-sort') !== 'descending';
              table.querySelectorAll('th').forEach(function (other) { other.removeAttribute('aria-sort'); });
              th.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
              var rows = Array.prototype.slice.call(body.rows);
              rows.sort(function (a, b) {
                var x = a.cells[index].textContent, y = b.cells[index].textContent;
                var nx = Number(x), ny = Number(y);
                var c = (x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
                return descending ? -c : c;
              });
              rows.forEach(function (row) { body.appendChild(row); });
            });
          });
        });
        var preset = document.getElementById('range');
        if (preset) {
          var toggle = function () {
            document.querySelectorAll('.custom').forEach(function (el) { el.hidden = preset.value !== 'custom'; });
          };
          preset.addEventListener('change', toggle);
          toggle();
        }
        """;

    public static string Login(string nonce, string? message) => Page(nonce, "Sign in", null, $"""
        <section class="login">
          <h2>Sign in to the usage dashboard</h2>
          <p class="note">Paste a gateway API key. It is sent once, over this form; the dashboard then keeps an 8-hour session cookie and never stores the key.</p>
          {(message is null ? "" : $"<p class=\"error\" id=\"login-error\" role=\"alert\">{E(message)}</p>")}
          <form method="post" action="/dashboard/login" autocomplete="off">
            <label for="key">API key</label>
            <input type="password" id="key" name="key" required autocomplete="off" spellcheck="false">
            <button type="submit" id="sign-in">Sign in</button>
          </form>
        </section>
        """);

    public static string Main(string nonce, ApiKeyRecord key, UsageScope scope, DashboardRange range, UsageView? view, IReadOnlyList<ReportTable>? tables, string? error)
    {
        var body = new StringBuilder();
        body.Append(Picker(key, scope, range));
        if (error is not null)
        {
            body.Append("<section class=\"error\" id=\"error\" role=\"alert\"><h2>Usage cannot be shown</h2><p>").Append(E(error)).Append("</p></section>");
        }
        else if (view is not null && tables is not null)
        {
            if (view.IsEmpty)
            {
                body.Append("<section class=\"empty\" id=\"empty\"><p>No usage from ").Append(E(UsageQueryService.Day(range.From))).Append(" to ")
                    .Append(E(UsageQueryService.Day(range.To))).Append(" (UTC)").Append(scope.Account is null ? "" : " for account " + E(scope.Account)).Append(".</p></section>");
            }
            else
            {
                body.Append(Totals(view));
                body.Append(Charts(view, range));
            }

            body.Append("<p><a id=\"export\" href=\"/dashboard/export.csv?").Append(E(range.Query + AccountQuery(scope))).Append("\" download>Export this view as CSV</a></p>");
            foreach (var table in tables)
            {
                body.Append(Table(table));
            }
        }

        return Page(nonce, "Usage", key, body.ToString());
    }

    public static string Session(string nonce, ApiKeyRecord key, UsageScope scope, DashboardRange range, string sessionId, ReportTable? requests, string? error)
    {
        var body = new StringBuilder();
        body.Append("<p><a id=\"back\" href=\"/dashboard?").Append(E(range.Query + AccountQuery(scope))).Append("\">← Back to the overview</a></p>");
        body.Append("<p class=\"note\">Session ").Append(E(sessionId)).Append(", ").Append(E(UsageQueryService.Day(range.From))).Append(" to ")
            .Append(E(UsageQueryService.Day(range.To))).Append(" (UTC)").Append(scope.Account is null ? "" : ", account " + E(scope.Account)).Append(".</p>");
        if (error is not null)
        {
            body.Append("<section class=\"error\" id=\"error\" role=\"alert\"><p>").Append(E(error)).Append("</p></section>");
        }
        else if (requests is not null && requests.Rows.Count == 0)
        {
            body.Append("<section class=\"empty\" id=\"empty\"><p>No requests of this session in the range.</p></section>");
        }
        else if (requests is not null)
        {
            body.Append(Table(requests));
        }

        return Page(nonce, "Session " + sessionId, key, body.ToString());
    }

    private static string AccountQuery(UsageScope scope) => scope.IsAdmin && scope.Account is not null ? "&account=" + Uri.EscapeDataString(scope.Account) : "";

    private static string Picker(ApiKeyRecord key, UsageScope scope, DashboardRange range)
    {
        string Option(string value, string text) => $"<option value=\"{value}\"{(range.Preset == value ? " selected" : "")}>{text}</option>";
        var account = scope.IsAdmin
            ? $"<label>Account (empty = all)<input type=\"text\" id=\"account\" name=\"account\" value=\"{E(scope.Account ?? "")}\"></label>"
            : $"<span class=\"note\">Account <strong id=\"scope-account\">{E(key.Account)}</strong></span>";
        return $"""
            <section>
              <form class="picker" method="get" action="/dashboard" id="picker">
                <label>Range (UTC)<select id="range" name="range">{Option("today", "Today")}{Option("7d", "Last 7 days")}{Option("month", "This month")}{Option("lastmonth", "Last month")}{Option("custom", "Custom")}</select></label>
                <label class="custom">From (UTC)<input type="date" id="from" name="from" value="{UsageQueryService.Day(range.From)}"></label>
                <label class="custom">To (UTC, inclusive)<input type="date" id="to" name="to" value="{UsageQueryService.Day(range.To)}"></label>
                {account}
                <button type="submit" id="apply">Show</button>
              </form>
              <p class="note" id="range-label">Showing <span id="shown-from">{UsageQueryService.Day(range.From)}</span> 00:00 UTC to <span id="shown-to">{UsageQueryService.Day(range.To)}</span> 24:00 UTC{(scope.Account is null ? ", all accounts" : ", account " + E(scope.Account))}.</p>
            </section>
            """;
    }

    private static string Totals(UsageView view)
    {
        var all = view.Totals.Aggregate(UsageCounters.Zero, (sum, l) => sum + l.Totals);
        var inputAll = all.InputTokens + all.CacheReadTokens + all.CacheWriteTokens;
        var hitRate = inputAll == 0 ? "–" : (100m * all.CacheReadTokens / inputAll).ToString("0.0", CultureInfo.InvariantCulture) + " %";
        var cards = new StringBuilder("<section id=\"totals-cards\"><h2>Totals</h2><dl class=\"cards\">");
        void Card(string id, string label, string value) =>
            cards.Append("<div><dt>").Append(E(label)).Append("</dt><dd data-total=\"").Append(E(id)).Append("\">").Append(E(value)).Append("</dd></div>");
        Card("requests", "Requests", DashboardTables.Int(all.Requests));
        Card("errors", "Errors", DashboardTables.Int(all.ErrorRequests));
        Card("cancelled", "Cancelled", DashboardTables.Int(all.CancelledRequests));
        Card("uncached_input_tokens", "Uncached input tokens", DashboardTables.Int(all.InputTokens));
        Card("cache_read_tokens", "Cache read tokens", DashboardTables.Int(all.CacheReadTokens));
        Card("cache_write_tokens", "Cache write tokens", DashboardTables.Int(all.CacheWriteTokens));
        Card("output_tokens", "Output tokens", DashboardTables.Int(all.OutputTokens));
        Card("reasoning_tokens", "Reasoning tokens", DashboardTables.Int(all.ReasoningTokens));
        Card("cache_hit_rate", "Cache hit rate (read ÷ all input)", hitRate);
        foreach (var line in view.Totals)
        {
            Card("cost-" + line.Currency, "Cost " + line.Currency, DashboardTables.Money(line.Totals.CostNanos));
        }

        Card("energy_wh", "Energy Wh (min–max)", $"{DashboardTables.Micro(all.EnergyMicroWh)} ({DashboardTables.Micro(all.EnergyMinMicroWh)}–{DashboardTables.Micro(all.EnergyMaxMicroWh)})");
        Card("gco2e", "Emissions gCO2e (min–max)", $"{DashboardTables.Micro(all.Gco2eMicrograms)} ({DashboardTables.Micro(all.Gco2eMinMicrograms)}–{DashboardTables.Micro(all.Gco2eMaxMicrograms)})");
        Card("water_ml", "Water ml", DashboardTables.Water(all.WaterMicroliters));
        Card("unknown_energy_requests", "Requests with unknown energy", DashboardTables.Int(all.UnknownEnergyRequests));
        return cards.Append("</dl></section>").ToString();
    }

    private static string Charts(UsageView view, DashboardRange range)
    {
        var days = range.Days;
        var index = days.Select((d, i) => (UsageQueryService.Day(d), i)).ToDictionary(p => p.Item1, p => p.i);
        var html = new StringBuilder("<section id=\"charts\"><h2>Per day (UTC)</h2>");
        foreach (var currency in view.Totals.Select(t => t.Currency))
        {
            var series = view.Daily.Where(r => r.Currency.Equals(currency, StringComparison.OrdinalIgnoreCase))
                .GroupBy(r => r.Model, StringComparer.Ordinal)
                .Select(g =>
                {
                    var values = new double[days.Count];
                    foreach (var r in g)
                    {
                        if (index.TryGetValue(r.Day, out var i))
                        {
                            values[i] += (double)Pricing.FromNanos(r.Totals.CostNanos);
                        }
                    }

                    return new ChartSeries(g.Key, values);
                });
            html.Append("<h3>Spend per day by model (").Append(E(currency)).Append(")</h3>")
                .Append(SvgCharts.StackedBars("chart-spend-" + currency, "Spend " + currency, days, SvgCharts.Top(series), currency));
        }

        double[] PerDay(Func<UsageCounters, long> pick, double scale = 1)
        {
            var values = new double[days.Count];
            foreach (var r in view.Daily)
            {
                if (index.TryGetValue(r.Day, out var i))
                {
                    values[i] += pick(r.Totals) / scale;
                }
            }

            return values;
        }

        html.Append("<h3>Tokens per day by kind</h3>").Append(SvgCharts.StackedBars("chart-tokens", "Tokens", days,
        [
            new ChartSeries("uncached input", PerDay(t => t.InputTokens)),
            new ChartSeries("cache read", PerDay(t => t.CacheReadTokens)),
            new ChartSeries("cache write", PerDay(t => t.CacheWriteTokens)),
            new ChartSeries("output", PerDay(t => t.OutputTokens)),
        ], "tokens"));
        html.Append("<h3>Energy per day</h3>").Append(SvgCharts.Band("chart-energy", "Energy Wh", days,
            PerDay(t => t.EnergyMicroWh, 1e6), PerDay(t => t.EnergyMinMicroWh, 1e6), PerDay(t => t.EnergyMaxMicroWh, 1e6), "Wh", "#59a14f"));
        html.Append("<h3>Emissions per day</h3>").Append(SvgCharts.Band("chart-emissions", "Emissions gCO2e", days,
            PerDay(t => t.Gco2eMicrograms, 1e6), PerDay(t => t.Gco2eMinMicrograms, 1e6), PerDay(t => t.Gco2eMaxMicrograms, 1e6), "gCO2e", "#9c755f"));
        return html.Append("</section>").ToString();
    }

    public static string Table(ReportTable table)
    {
        var html = new StringBuilder();
        html.Append("<section><h2>").Append(E(table.Title)).Append("</h2>");
        if (table.Rows.Count == 0)
        {
            html.Append("<p class=\"empty\">None in this range.</p>");
        }

        html.Append("<div class=\"scroll\"><table class=\"sortable\" id=\"").Append(table.Id).Append("\"><thead><tr>");
        for (var c = 0; c < table.Headers.Count; c++)
        {
            html.Append(c < table.TextColumns ? "<th class=\"text\">" : "<th>").Append(E(table.Headers[c])).Append("</th>");
        }

        html.Append("</tr></thead><tbody>");
        foreach (var row in table.Rows)
        {
            html.Append("<tr>");
            for (var c = 0; c < row.Cells.Count; c++)
            {
                html.Append(c < table.TextColumns ? "<td class=\"text\">" : "<td>");
                if (c == 0 && row.Link is not null)
                {
                    html.Append("<a href=\"").Append(E(row.Link)).Append("\">").Append(E(row.Cells[c])).Append("</a>");
                }
                else
                {
                    html.Append(E(row.Cells[c]));
                }

                html.Append("</td>");
            }

            html.Append("</tr>");
        }

        return html.Append("</tbody></table></div></section>").ToString();
    }

    private static string Page(string nonce, string title, ApiKeyRecord? key, string body)
    {
        var who = key is null
            ? ""
            : $"""<span class="who" id="who">{E(key.Name)} · {E(key.Account)} · {E(key.Role)} key {E(key.KeyId)}</span><form method="post" action="/dashboard/logout"><button type="submit" id="logout">Sign out</button></form>""";
        return $"""
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="referrer" content="same-origin">
            <title>{E(title)} · Melious usage</title>
            <link rel="icon" href="data:,">
            <style nonce="{nonce}">{Style}</style>
            </head>
            <body data-rendered="{nonce}">
            <header><h1>Melious usage</h1><div>{who}</div></header>
            <main>
            {body}
            <p class="note">All times and days are UTC. Money is exact (nano-units); energy and emissions are estimates with their min–max range (see docs/energy-method.md).</p>
            </main>
            <script nonce="{nonce}">{Script}</script>
            </body>
            </html>
            """;
    }

    private static string E(string text) => HtmlEncoder.Default.Encode(text);
}

using System.Globalization;
using System.Text.Json;
using Melious.Gateway.Reporting;
using Melious.Gateway.Usage;

namespace Melious.Admin;

/// <summary>One line of a usage report: a group (day, model or session) in one currency, or a currency total.</summary>
internal sealed record UsageReportLine(string Key, string Currency, UsageCounters Totals);

/// <summary>
/// Groups rollup rows by the report key and currency and sums their counters. All sums are exact integers
/// (nano-units of money, micro-units of energy, emissions and water); money is rounded only in the
/// <c>cost_invoice</c> column, per line, half to even, to the currency's minor units.
/// </summary>
internal sealed class UsageReport
{
    public const string TotalKey = "TOTAL";

    private static readonly string[] CounterColumns =
    [
        "currency", "requests", "errors", "cancelled", "input_tokens", "cache_read_tokens", "cache_write_tokens",
        "output_tokens", "reasoning_tokens", "cost", "cost_invoice", "energy_wh", "gco2e", "water_ml",
    ];

    private UsageReport(DateOnly from, DateOnly to, string by, string? account, List<UsageReportLine> rows, List<UsageReportLine> totals)
    {
        From = from;
        To = to;
        By = by;
        Account = account;
        Rows = rows;
        Totals = totals;
    }

    public DateOnly From { get; }

    public DateOnly To { get; }

    /// <summary><c>day</c>, <c>model</c> or <c>session</c>: also the name of the key column.</summary>
    public string By { get; }

    public string? Account { get; }

    public IReadOnlyList<UsageReportLine> Rows { get; }

    /// <summary>One line per currency (amounts in different currencies are never added).</summary>
    public IReadOnlyList<UsageReportLine> Totals { get; }

    public static UsageReport Build(DateOnly from, DateOnly to, string by, string? account, IEnumerable<(string Key, string Currency, UsageCounters Totals)> items)
    {
        // The grouping is the core's, shared with the usage API and the dashboard (they agree to the nano-unit).
        var rows = UsageGrouping.Group(items).Select(l => new UsageReportLine(l.Key, l.Currency, l.Totals)).ToList();
        var totalsByCurrency = UsageGrouping.TotalsByCurrency(rows.Select(r => new UsageLine(r.Key, r.Currency, r.Totals)), TotalKey)
            .Select(l => new UsageReportLine(l.Key, l.Currency, l.Totals))
            .ToList();
        return new UsageReport(from, to, by, account, rows, totalsByCurrency);
    }

    public void WriteTable(TextWriter output)
    {
        if (Rows.Count == 0)
        {
            output.WriteLine($"No usage from {CliValues.Format(From)} to {CliValues.Format(To)}{(Account is null ? "" : " for account " + Account)}.");
            return;
        }

        var table = new TextTable([By, .. CounterColumns]).AlignRight([.. Enumerable.Range(2, CounterColumns.Length - 1)]);
        foreach (var line in Rows.Concat(Totals))
        {
            table.Add(Cells(line));
        }

        table.Write(output);
        var unknown = Totals.Sum(t => t.Totals.UnknownEnergyRequests);
        if (unknown > 0)
        {
            output.WriteLine($"Note: {unknown} request(s) were served by models without energy parameters; their energy, emissions and water are not included.");
        }
    }

    public void WriteCsv(TextWriter output)
    {
        output.WriteLine(string.Join(',', [By, .. CounterColumns]));
        foreach (var line in Rows.Concat(Totals))
        {
            var cells = Cells(line);
            cells[0] = DefuseFormula(cells[0]);
            output.WriteLine(string.Join(',', cells.Select(Csv)));
        }
    }

    public void WriteJson(Utf8JsonWriter json)
    {
        json.WriteStartObject();
        json.WriteString("from", CliValues.Format(From));
        json.WriteString("to", CliValues.Format(To));
        json.WriteString("by", By);
        if (Account is not null)
        {
            json.WriteString("account", Account);
        }

        json.WriteStartArray("rows");
        foreach (var line in Rows)
        {
            WriteJsonLine(json, line, By);
        }

        json.WriteEndArray();
        json.WriteStartArray("totals");
        foreach (var line in Totals)
        {
            WriteJsonLine(json, line, keyName: null);
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void WriteJsonLine(Utf8JsonWriter json, UsageReportLine line, string? keyName)
    {
        var t = line.Totals;
        json.WriteStartObject();
        if (keyName is not null)
        {
            json.WriteString(keyName, line.Key);
        }

        json.WriteString("currency", line.Currency);
        json.WriteNumber("requests", t.Requests);
        json.WriteNumber("errors", t.ErrorRequests);
        json.WriteNumber("cancelled", t.CancelledRequests);
        json.WriteNumber("input_tokens", t.InputTokens);
        json.WriteNumber("cache_read_tokens", t.CacheReadTokens);
        json.WriteNumber("cache_write_tokens", t.CacheWriteTokens);
        json.WriteNumber("output_tokens", t.OutputTokens);
        json.WriteNumber("reasoning_tokens", t.ReasoningTokens);
        json.WriteString("cost", Pricing.FormatNanos(t.CostNanos));
        json.WriteNumber("cost_nanos", t.CostNanos);
        json.WriteString("cost_invoice", Invoice(t.CostNanos, line.Currency));
        json.WriteNumber("energy_wh", EnergyWh(t));
        json.WriteNumber("gco2e", Gco2e(t));
        json.WriteNumber("water_ml", WaterMl(t));
        json.WriteNumber("unknown_energy_requests", t.UnknownEnergyRequests);
        json.WriteEndObject();
    }

    private static string[] Cells(UsageReportLine line)
    {
        var t = line.Totals;
        return
        [
            line.Key,
            line.Currency,
            CliValues.Format(t.Requests),
            CliValues.Format(t.ErrorRequests),
            CliValues.Format(t.CancelledRequests),
            CliValues.Format(t.InputTokens),
            CliValues.Format(t.CacheReadTokens),
            CliValues.Format(t.CacheWriteTokens),
            CliValues.Format(t.OutputTokens),
            CliValues.Format(t.ReasoningTokens),
            Pricing.FormatNanos(t.CostNanos),
            Invoice(t.CostNanos, line.Currency),
            EnergyWh(t).ToString("0.000000", CultureInfo.InvariantCulture),
            Gco2e(t).ToString("0.000000", CultureInfo.InvariantCulture),
            WaterMl(t).ToString("0.000000", CultureInfo.InvariantCulture),
        ];
    }

    /// <summary>The amount an invoice shows: rounded half to even to the currency's minor units (USD 2, JPY 0, KWD 3).</summary>
    internal static string Invoice(long nanos, string currency)
    {
        var digits = Pricing.MinorUnits(currency);
        var rounded = decimal.Round(Pricing.FromNanos(nanos), digits, MidpointRounding.ToEven);
        return rounded.ToString("F" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
    }

    internal static decimal EnergyWh(UsageCounters t) => t.EnergyMicroWh / 1_000_000m;

    internal static decimal Gco2e(UsageCounters t) => t.Gco2eMicrograms / 1_000_000m;

    /// <summary><see cref="UsageCounters.WaterMicroliters"/> holds microlitres (ml × 1000).</summary>
    internal static decimal WaterMl(UsageCounters t) => t.WaterMicroliters / 1_000m;

    /// <summary>
    /// Session ids come from clients: a value such as <c>=HYPERLINK(…)</c> would run as a formula when finance opens
    /// the CSV in a spreadsheet, so text starting with a formula character gets a leading apostrophe (OWASP advice).
    /// </summary>
    private static string DefuseFormula(string cell) => cell.Length > 0 && cell[0] is '=' or '+' or '-' or '@' or '\t' or '\r' ? "'" + cell : cell;

    private static string Csv(string cell) =>
        cell.AsSpan().IndexOfAny(",\"\r\n") >= 0 ? "\"" + cell.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"" : cell;
}

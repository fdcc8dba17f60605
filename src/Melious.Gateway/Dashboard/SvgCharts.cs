using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;

namespace Melious.Gateway.Dashboard;

/// <summary>A named series of one value per day.</summary>
public sealed record ChartSeries(string Name, double[] Values);

/// <summary>
/// Server-rendered SVG charts (no script, no external library): stacked daily bars and a daily line with a min–max
/// band. Readable at 90 days × 20 models: the legend lists at most <see cref="MaxSeries"/> series, the rest are
/// summed as "other", and at most about 12 day labels are drawn. Each bar and point carries a tooltip.
/// </summary>
public static class SvgCharts
{
    public const int MaxSeries = 9;

    private const int Width = 900;
    private const int Height = 240;
    private const int Left = 70;
    private const int Right = 12;
    private const int TopMargin = 12;
    private const int Bottom = 34;

    private static readonly string[] Palette =
        ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

    /// <summary>Keeps the <see cref="MaxSeries"/> largest series and sums the others into "other".</summary>
    public static List<ChartSeries> Top(IEnumerable<ChartSeries> series)
    {
        var ordered = series.OrderByDescending(s => s.Values.Sum()).ThenBy(s => s.Name, StringComparer.Ordinal).ToList();
        if (ordered.Count <= MaxSeries + 1)
        {
            return ordered;
        }

        var rest = ordered.Skip(MaxSeries).ToList();
        var other = new double[ordered[0].Values.Length];
        foreach (var s in rest)
        {
            for (var i = 0; i < other.Length; i++)
            {
                other[i] += s.Values[i];
            }
        }

        return [.. ordered.Take(MaxSeries), new ChartSeries($"other ({rest.Count})", other)];
    }

    public static string StackedBars(string id, string label, IReadOnlyList<DateOnly> days, IReadOnlyList<ChartSeries> series, string unit)
    {
        var svg = new StringBuilder();
        var totals = new double[days.Count];
        foreach (var s in series)
        {
            for (var i = 0; i < days.Count; i++)
            {
                totals[i] += s.Values[i];
            }
        }

        var max = Nice(totals.DefaultIfEmpty(0).Max());
        Open(svg, id, label, days, max, unit);
        var slot = PlotWidth / (double)Math.Max(1, days.Count);
        var barWidth = Math.Max(1, slot * 0.8);
        for (var i = 0; i < days.Count; i++)
        {
            var y = (double)TopMargin + PlotHeight;
            for (var k = 0; k < series.Count; k++)
            {
                var value = series[k].Values[i];
                if (value <= 0)
                {
                    continue;
                }

                var h = value / max * PlotHeight;
                y -= h;
                svg.Append(CultureInfo.InvariantCulture, $"<rect x=\"{F(Left + i * slot + (slot - barWidth) / 2)}\" y=\"{F(y)}\" width=\"{F(barWidth)}\" height=\"{F(h)}\" fill=\"{Palette[k % Palette.Length]}\">")
                    .Append("<title>").Append(E($"{Day(days[i])} {series[k].Name}: {Number(value)} {unit}")).Append("</title></rect>");
            }
        }

        svg.Append("</svg>");
        return Legend(series.Select((s, k) => (s.Name, Palette[k % Palette.Length])), svg.ToString());
    }

    public static string Band(string id, string label, IReadOnlyList<DateOnly> days, double[] value, double[] min, double[] max, string unit, string color)
    {
        var svg = new StringBuilder();
        var top = Nice(max.Concat(value).DefaultIfEmpty(0).Max());
        Open(svg, id, label, days, top, unit);
        var slot = PlotWidth / (double)Math.Max(1, days.Count);
        double X(int i) => Left + i * slot + slot / 2;
        double Y(double v) => TopMargin + PlotHeight - v / top * PlotHeight;
        if (days.Count > 0)
        {
            var band = new StringBuilder();
            for (var i = 0; i < days.Count; i++)
            {
                band.Append(CultureInfo.InvariantCulture, $"{F(X(i))},{F(Y(max[i]))} ");
            }

            for (var i = days.Count - 1; i >= 0; i--)
            {
                band.Append(CultureInfo.InvariantCulture, $"{F(X(i))},{F(Y(min[i]))} ");
            }

            svg.Append("<polygon class=\"band\" points=\"").Append(band.ToString().TrimEnd()).Append("\" fill=\"").Append(color).Append("\" fill-opacity=\"0.2\" stroke=\"none\"/>");
            svg.Append("<polyline points=\"").Append(string.Join(' ', Enumerable.Range(0, days.Count).Select(i => $"{F(X(i))},{F(Y(value[i]))}")))
                .Append("\" fill=\"none\" stroke=\"").Append(color).Append("\" stroke-width=\"2\"/>");
            for (var i = 0; i < days.Count; i++)
            {
                svg.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{F(X(i))}\" cy=\"{F(Y(value[i]))}\" r=\"{(days.Count > 45 ? 1.5 : 3)}\" fill=\"{color}\">")
                    .Append("<title>").Append(E($"{Day(days[i])}: {Number(value[i])} {unit} (range {Number(min[i])}–{Number(max[i])})")).Append("</title></circle>");
            }
        }

        svg.Append("</svg>");
        return Legend([(label, color), ("min–max range", color + "55")], svg.ToString());
    }

    private static int PlotWidth => Width - Left - Right;

    private static int PlotHeight => Height - TopMargin - Bottom;

    private static void Open(StringBuilder svg, string id, string label, IReadOnlyList<DateOnly> days, double max, string unit)
    {
        svg.Append(CultureInfo.InvariantCulture, $"<svg id=\"{E(id)}\" class=\"chart\" viewBox=\"0 0 {Width} {Height}\" role=\"img\" aria-label=\"{E(label)}\" xmlns=\"http://www.w3.org/2000/svg\">");
        for (var t = 0; t <= 4; t++)
        {
            var v = max * t / 4;
            var y = TopMargin + PlotHeight - PlotHeight * t / 4.0;
            svg.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" x2=\"{Width - Right}\" y1=\"{F(y)}\" y2=\"{F(y)}\" stroke=\"#ddd\"/>")
                .Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{F(y + 4)}\" text-anchor=\"end\" font-size=\"11\">{E(Number(v))}</text>");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"4\" y=\"{TopMargin + 10}\" font-size=\"11\">{E(unit)}</text>");
        var step = Math.Max(1, (int)Math.Ceiling(days.Count / 12.0));
        var slot = PlotWidth / (double)Math.Max(1, days.Count);
        for (var i = 0; i < days.Count; i += step)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{F(Left + i * slot + slot / 2)}\" y=\"{Height - 14}\" text-anchor=\"middle\" font-size=\"11\">{days[i].ToString("MM-dd", CultureInfo.InvariantCulture)}</text>");
        }

        svg.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width - Right}\" y=\"{Height - 2}\" text-anchor=\"end\" font-size=\"10\">days (UTC)</text>");
    }

    private static string Legend(IEnumerable<(string Name, string Color)> items, string svg)
    {
        var legend = new StringBuilder("<ul class=\"legend\">");
        foreach (var (name, color) in items)
        {
            legend.Append("<li><span class=\"swatch\" data-color=\"").Append(color).Append("\"><svg width=\"10\" height=\"10\" aria-hidden=\"true\"><rect width=\"10\" height=\"10\" fill=\"")
                .Append(color).Append("\"/></svg></span>").Append(E(name)).Append("</li>");
        }

        return svg + legend.Append("</ul>");
    }

    /// <summary>A round axis maximum at or above <paramref name="value"/>.</summary>
    private static double Nice(double value)
    {
        if (value <= 0 || !double.IsFinite(value))
        {
            return 1;
        }

        var magnitude = Math.Pow(10, Math.Floor(Math.Log10(value)));
        foreach (var m in new[] { 1, 2, 2.5, 5, 10 })
        {
            if (m * magnitude >= value)
            {
                return m * magnitude;
            }
        }

        return 10 * magnitude;
    }

    private static string Number(double v) => Math.Abs(v) >= 1000 ? v.ToString("#,0", CultureInfo.InvariantCulture) : v.ToString("0.####", CultureInfo.InvariantCulture);

    private static string Day(DateOnly d) => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    private static string E(string text) => HtmlEncoder.Default.Encode(text);
}

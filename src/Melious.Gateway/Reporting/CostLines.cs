using Melious.Gateway.Usage;

namespace Melious.Gateway.Reporting;

/// <summary>One line of the cost report grouped by description: what was charged for a model, in nano-units.</summary>
public sealed record CostLine(string CostType, string? TokenType, string Description, long Nanos);

/// <summary>
/// The cost report's lines per model when grouped by <c>description</c>, as Anthropic splits them: one
/// <c>cost_type: tokens</c> line per token type (<c>uncached_input_tokens</c>,
/// <c>cache_creation.ephemeral_5m_input_tokens</c> (cache writes), <c>cache_read_input_tokens</c>,
/// <c>output_tokens</c>) and one <c>cost_type: web_search</c> line. Lines are integer nano-units taken from the
/// rollup's split columns, so they add up to the model's <c>CostNanos</c> exactly. Cost counted before the split
/// existed (older rollup rows, or the older part of a row) is one <c>tokens</c> line with <c>token_type</c> null and
/// the description "{model} Usage". Zero lines are left out; a model whose cost is zero keeps one zero line.
/// </summary>
public static class CostLines
{
    public const string Tokens = "tokens";
    public const string WebSearch = "web_search";

    public static List<CostLine> Split(string model, UsageCounters totals)
    {
        var parts = totals.CostParts;
        var lines = new List<CostLine>(6);
        Add(lines, Tokens, "uncached_input_tokens", $"{model} Usage - Input Tokens", parts.Input);
        Add(lines, Tokens, "cache_creation.ephemeral_5m_input_tokens", $"{model} Usage - Cache Write Input Tokens", parts.CacheWrite);
        Add(lines, Tokens, "cache_read_input_tokens", $"{model} Usage - Cache Read Input Tokens", parts.CacheRead);
        Add(lines, Tokens, "output_tokens", $"{model} Usage - Output Tokens", parts.Output);
        Add(lines, Tokens, null, $"{model} Usage", parts.Unsplit);
        Add(lines, WebSearch, null, $"{model} Web Search", parts.WebSearch);
        if (lines.Count == 0)
        {
            lines.Add(new CostLine(Tokens, null, $"{model} Usage", 0));
        }

        return lines;
    }

    private static void Add(List<CostLine> lines, string costType, string? tokenType, string description, long nanos)
    {
        if (nanos != 0)
        {
            lines.Add(new CostLine(costType, tokenType, description, nanos));
        }
    }
}

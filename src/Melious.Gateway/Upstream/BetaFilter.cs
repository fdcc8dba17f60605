using Microsoft.Extensions.Primitives;

namespace Melious.Gateway.Upstream;

/// <summary>
/// <c>anthropic-beta</c> toward Anthropic-native upstreams. The client's values (one comma-separated header, as Claude
/// Code sends it, or repeated headers) are split, trimmed and de-duplicated, then filtered by the model's
/// <c>Betas</c> catalog setting: unset or <c>*</c> passes all (the default), <c>none</c> passes none, otherwise a
/// comma-separated allow-list. An upstream 400 that names a sent beta is explained: which beta, and how to allow-list.
/// </summary>
public static class BetaFilter
{
    public const string PassAll = "*";
    public const string PassNone = "none";

    /// <summary>The betas to send, in the client's order; empty when none.</summary>
    public static IReadOnlyList<string> Select(StringValues header, string? allowList)
    {
        var sent = new List<string>();
        foreach (var value in header)
        {
            foreach (var part in (value ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!sent.Contains(part, StringComparer.OrdinalIgnoreCase))
                {
                    sent.Add(part);
                }
            }
        }

        if (string.IsNullOrWhiteSpace(allowList) || allowList.Trim() == PassAll)
        {
            return sent;
        }

        if (allowList.Trim().Equals(PassNone, StringComparison.OrdinalIgnoreCase))
        {
            return [];
        }

        var allowed = allowList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return sent.Where(b => allowed.Contains(b, StringComparer.OrdinalIgnoreCase)).ToList();
    }

    /// <summary>
    /// A 400 whose message names one of the betas sent becomes an error that says which beta was rejected and how to
    /// allow-list the ones the model supports; any other error is returned unchanged.
    /// </summary>
    public static GatewayError Explain(GatewayError error, IReadOnlyList<string> sent, string modelId)
    {
        if (error.Status != 400 || sent.Count == 0)
        {
            return error;
        }

        var rejected = sent.Where(b => error.Message.Contains(b, StringComparison.OrdinalIgnoreCase)).ToList();
        if (rejected.Count == 0)
        {
            return error;
        }

        var keep = sent.Except(rejected, StringComparer.OrdinalIgnoreCase).ToList();
        var suggestion = keep.Count > 0 ? string.Join(",", keep) : PassNone;
        return error with
        {
            Message = $"the upstream for this model rejected the anthropic-beta value{(rejected.Count > 1 ? "s" : "")} {string.Join(", ", rejected.Select(b => $"'{b}'"))} " +
                $"({error.Message}). An operator can allow-list the betas this model supports: melious-admin models set {modelId} --betas {suggestion}",
        };
    }
}

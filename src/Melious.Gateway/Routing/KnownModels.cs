namespace Melious.Gateway.Routing;

/// <summary>
/// Energy parameters of widely served open-weight models (active/total billions of parameters, as published by
/// the model authors and collected in EcoLogits <c>models.json</c>). Used only to pre-fill catalog entries when the
/// gateway seeds an empty catalog; the table stays the source of truth and operators can change it.
/// </summary>
public static class KnownModels
{
    private static readonly (string Pattern, double Active, double Total)[] Table =
    [
        ("qwen3-coder-480b", 35, 480),
        ("qwen3-coder-30b", 3.3, 30.5),
        ("qwen3-coder", 3.3, 30.5),
        ("qwen3-235b", 22, 235),
        ("qwen3-30b", 3.3, 30.5),
        ("qwen3-32b", 32.8, 32.8),
        ("qwen3-14b", 14.8, 14.8),
        ("qwen3-8b", 8.2, 8.2),
        ("qwen2.5-coder-32b", 32.5, 32.5),
        ("qwen2.5-coder-7b", 7.6, 7.6),
        ("gpt-oss-120b", 5.1, 117),
        ("gpt-oss-20b", 3.6, 21),
        ("llama-3.3-70b", 70, 70),
        ("llama-3.1-405b", 405, 405),
        ("llama-3.1-70b", 70, 70),
        ("llama-3.1-8b", 8, 8),
        ("llama-4-scout", 17, 109),
        ("llama-4-maverick", 17, 400),
        ("deepseek-v3", 37, 671),
        ("deepseek-r1", 37, 671),
        ("glm-4.5-air", 12, 106),
        ("glm-4.5", 32, 355),
        ("glm-4.6", 32, 355),
        ("kimi-k2", 32, 1000),
        ("devstral-small", 24, 24),
        ("mistral-small", 24, 24),
        ("gemma-3-27b", 27, 27),
    ];

    /// <summary>Guesses the energy profile from a model id (case-insensitive substring), or null.</summary>
    public static EnergyProfile? Guess(string modelId)
    {
        var id = modelId.Replace('_', '-').Replace(':', '-');
        foreach (var (pattern, active, total) in Table)
        {
            if (id.Contains(pattern, StringComparison.OrdinalIgnoreCase))
            {
                var quant = id.Contains("fp8", StringComparison.OrdinalIgnoreCase) ? 8
                    : id.Contains("int4", StringComparison.OrdinalIgnoreCase) || id.Contains("awq", StringComparison.OrdinalIgnoreCase) || id.Contains("q4", StringComparison.OrdinalIgnoreCase) ? 4
                    : 16;
                return new EnergyProfile(active, total, quant);
            }
        }

        return null;
    }
}

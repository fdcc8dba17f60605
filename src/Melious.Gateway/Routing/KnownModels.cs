using System.Globalization;
using System.Text.RegularExpressions;

namespace Melious.Gateway.Routing;

/// <summary>Where a request's energy parameters came from; written on every energy row and in <c>environment_impact</c>.</summary>
public static class EnergySources
{
    /// <summary>Parameters an operator entered in the catalog.</summary>
    public const string Catalog = "catalog";

    /// <summary>An operator-entered measured joules per output token.</summary>
    public const string Measured = "measured";

    /// <summary>The built-in <see cref="KnownModels"/> table (at request time, or pre-filled when the catalog was seeded).</summary>
    public const string KnownModel = "known-model";

    /// <summary>Sizes parsed from the model id (<c>NNb</c>, <c>aNNb</c>).</summary>
    public const string ParsedName = "parsed-name";

    /// <summary>No parameters: the figures are null.</summary>
    public const string Unknown = "unknown";

    public static bool IsValid(string? source) => source is Catalog or Measured or KnownModel or ParsedName;
}

/// <summary>
/// Energy parameters of widely served open-weight models: total and active parameters (billions) as published on
/// each model's card (collected in EcoLogits <c>models.json</c> where it lists them) and the precision the model is
/// usually served at. Applied at request time to every model the catalog has no parameters for (pass-through names
/// included), and used to pre-fill catalog entries when the gateway seeds an empty catalog. Parameters an operator
/// entered always win.
/// </summary>
/// <remarks>
/// Ids are matched case-insensitively as each server names them: the org prefix (<c>Qwen/</c>) is dropped, and
/// separators (<c>-</c>, <c>_</c>, spaces and Ollama's <c>:</c>) are ignored, so <c>Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8</c>,
/// <c>qwen3-coder:30b</c> and <c>llama3.3:70b</c> all match. A family entry without a size (<c>deepseek-r1</c>) is
/// skipped when the id names a size that fits neither its total nor its active parameters (<c>deepseek-r1:32b</c> is a
/// distill). Without a match, <c>NNb</c> (total) and <c>aNNb</c> (active) are parsed from the id.
/// </remarks>
public static partial class KnownModels
{
    public sealed record Entry(string Pattern, double Active, double Total, int QuantBits, string Source)
    {
        internal string Compact { get; } = KnownModels.Compact(Pattern);

        /// <summary>True when the pattern itself names a size (then no size check is needed).</summary>
        internal bool Sized { get; } = SizeToken().IsMatch(Pattern.ToLowerInvariant());
    }

    private const string Hf = "Hugging Face model card ";

    /// <summary>Most specific first: the first entry whose compact pattern occurs in the compact id wins.</summary>
    public static IReadOnlyList<Entry> Table { get; } =
    [
        // Qwen3 / Qwen3-Coder (Alibaba). Qwen3-Coder-480B is mostly served from its official FP8 release.
        new("qwen3-coder-480b", 35, 480, 8, Hf + "Qwen/Qwen3-Coder-480B-A35B-Instruct"),
        new("qwen3-coder-30b", 3.3, 30.5, 16, Hf + "Qwen/Qwen3-Coder-30B-A3B-Instruct"),
        new("qwen3-coder-plus", 35, 480, 8, "Alibaba Cloud: Qwen3-Coder-Plus is Qwen3-Coder-480B-A35B"),
        new("qwen3-coder-flash", 3.3, 30.5, 16, "Alibaba Cloud: Qwen3-Coder-Flash is Qwen3-Coder-30B-A3B"),
        new("qwen3-coder", 3.3, 30.5, 16, Hf + "Qwen/Qwen3-Coder-30B-A3B-Instruct (Ollama's default qwen3-coder tag)"),
        new("qwen3-next-80b", 3, 80, 16, Hf + "Qwen/Qwen3-Next-80B-A3B-Instruct"),
        new("qwen3-235b", 22, 235, 16, Hf + "Qwen/Qwen3-235B-A22B"),
        new("qwen3-30b", 3.3, 30.5, 16, Hf + "Qwen/Qwen3-30B-A3B"),
        new("qwen3-32b", 32.8, 32.8, 16, Hf + "Qwen/Qwen3-32B"),
        new("qwen3-14b", 14.8, 14.8, 16, Hf + "Qwen/Qwen3-14B"),
        new("qwen3-8b", 8.2, 8.2, 16, Hf + "Qwen/Qwen3-8B"),
        new("qwen3-4b", 4.0, 4.0, 16, Hf + "Qwen/Qwen3-4B"),
        new("qwen3-1.7b", 2.0, 2.0, 16, Hf + "Qwen/Qwen3-1.7B"),
        new("qwen3-0.6b", 0.6, 0.6, 16, Hf + "Qwen/Qwen3-0.6B"),
        new("qwen2.5-coder-32b", 32.5, 32.5, 16, Hf + "Qwen/Qwen2.5-Coder-32B-Instruct"),
        new("qwen2.5-coder-14b", 14.7, 14.7, 16, Hf + "Qwen/Qwen2.5-Coder-14B-Instruct"),
        new("qwen2.5-coder-7b", 7.6, 7.6, 16, Hf + "Qwen/Qwen2.5-Coder-7B-Instruct"),

        // gpt-oss (OpenAI): MoE weights released in MXFP4.
        new("gpt-oss-120b", 5.1, 117, 4, Hf + "openai/gpt-oss-120b"),
        new("gpt-oss-20b", 3.6, 21, 4, Hf + "openai/gpt-oss-20b"),

        // DeepSeek: V3.x and R1 are released in FP8; R1 distills are dense Qwen/Llama models.
        new("deepseek-r1-distill-llama-70b", 70.6, 70.6, 16, Hf + "deepseek-ai/DeepSeek-R1-Distill-Llama-70B"),
        new("deepseek-r1-distill-qwen-32b", 32.8, 32.8, 16, Hf + "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B"),
        new("deepseek-r1-distill-qwen-14b", 14.8, 14.8, 16, Hf + "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B"),
        new("deepseek-r1-distill-llama-8b", 8, 8, 16, Hf + "deepseek-ai/DeepSeek-R1-Distill-Llama-8B"),
        new("deepseek-r1-distill-qwen-7b", 7.6, 7.6, 16, Hf + "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"),
        new("deepseek-r1-70b", 70.6, 70.6, 16, "Ollama library deepseek-r1:70b (R1-Distill-Llama-70B)"),
        new("deepseek-r1-32b", 32.8, 32.8, 16, "Ollama library deepseek-r1:32b (R1-Distill-Qwen-32B)"),
        new("deepseek-r1-14b", 14.8, 14.8, 16, "Ollama library deepseek-r1:14b (R1-Distill-Qwen-14B)"),
        new("deepseek-r1-8b", 8, 8, 16, "Ollama library deepseek-r1:8b (R1-Distill-Llama-8B / R1-0528-Qwen3-8B)"),
        new("deepseek-r1-7b", 7.6, 7.6, 16, "Ollama library deepseek-r1:7b (R1-Distill-Qwen-7B)"),
        new("deepseek-r1", 37, 671, 8, Hf + "deepseek-ai/DeepSeek-R1"),
        new("deepseek-v3", 37, 671, 8, Hf + "deepseek-ai/DeepSeek-V3 / V3.1 / V3.2"),
        new("deepseek-chat", 37, 671, 8, "DeepSeek API docs: deepseek-chat is DeepSeek-V3.x"),
        new("deepseek-reasoner", 37, 671, 8, "DeepSeek API docs: deepseek-reasoner is DeepSeek-V3.x in thinking mode"),

        // Kimi K2 (Moonshot): released in block FP8; K2-Thinking in INT4 (QAT).
        new("kimi-k2-thinking", 32, 1000, 4, Hf + "moonshotai/Kimi-K2-Thinking"),
        new("kimi-k2", 32, 1000, 8, Hf + "moonshotai/Kimi-K2-Instruct"),

        // GLM 4.x (Z.ai).
        new("glm-4.5-air", 12, 106, 16, Hf + "zai-org/GLM-4.5-Air"),
        new("glm-4.5v", 12, 106, 16, Hf + "zai-org/GLM-4.5V"),
        new("glm-4.5", 32, 355, 16, Hf + "zai-org/GLM-4.5"),
        new("glm-4.6v", 12, 106, 16, Hf + "zai-org/GLM-4.6V"),
        new("glm-4.6", 32, 355, 16, Hf + "zai-org/GLM-4.6"),
        new("glm-4.7", 32, 355, 16, Hf + "zai-org/GLM-4.7"),
        new("glm-4-32b", 32, 32, 16, Hf + "zai-org/GLM-4-32B-0414"),
        new("glm-4-9b", 9.4, 9.4, 16, Hf + "zai-org/glm-4-9b-chat"),

        // Llama 3.x / 4 (Meta). Maverick is usually served from its official FP8 release.
        new("llama-4-scout", 17, 109, 16, Hf + "meta-llama/Llama-4-Scout-17B-16E-Instruct"),
        new("llama-4-maverick", 17, 400, 8, Hf + "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"),
        new("llama-3.3-70b", 70.6, 70.6, 16, Hf + "meta-llama/Llama-3.3-70B-Instruct"),
        new("llama-3.1-405b", 405, 405, 8, Hf + "meta-llama/Llama-3.1-405B-Instruct-FP8"),
        new("llama-3.1-70b", 70.6, 70.6, 16, Hf + "meta-llama/Llama-3.1-70B-Instruct"),
        new("llama-3.1-8b", 8, 8, 16, Hf + "meta-llama/Llama-3.1-8B-Instruct"),
        new("llama-3.2-3b", 3.2, 3.2, 16, Hf + "meta-llama/Llama-3.2-3B-Instruct"),
        new("llama-3.2-1b", 1.2, 1.2, 16, Hf + "meta-llama/Llama-3.2-1B-Instruct"),
        new("llama-3-70b", 70.6, 70.6, 16, Hf + "meta-llama/Meta-Llama-3-70B-Instruct"),
        new("llama-3-8b", 8, 8, 16, Hf + "meta-llama/Meta-Llama-3-8B-Instruct"),

        // Mistral AI: Mistral, Devstral, Codestral, Magistral, Mixtral.
        new("devstral-2-123b", 123, 123, 16, Hf + "mistralai/Devstral-2-123B-Instruct-2512"),
        new("devstral-small", 24, 24, 16, Hf + "mistralai/Devstral-Small-2505 / 2507"),
        new("devstral-24b", 24, 24, 16, "Ollama library devstral:24b (Devstral Small)"),
        new("codestral-mamba", 7.3, 7.3, 16, Hf + "mistralai/Mamba-Codestral-7B-v0.1"),
        new("codestral", 22, 22, 16, Hf + "mistralai/Codestral-22B-v0.1"),
        new("magistral-small", 24, 24, 16, Hf + "mistralai/Magistral-Small-2506"),
        new("mistral-small", 24, 24, 16, Hf + "mistralai/Mistral-Small-3.2-24B-Instruct-2506"),
        new("mistral-large", 123, 123, 16, Hf + "mistralai/Mistral-Large-Instruct-2411"),
        new("mistral-nemo", 12.2, 12.2, 16, Hf + "mistralai/Mistral-Nemo-Instruct-2407"),
        new("ministral-8b", 8, 8, 16, Hf + "mistralai/Ministral-8B-Instruct-2410"),
        new("mixtral-8x22b", 39, 141, 16, Hf + "mistralai/Mixtral-8x22B-Instruct-v0.1"),
        new("mixtral-8x7b", 12.9, 46.7, 16, Hf + "mistralai/Mixtral-8x7B-Instruct-v0.1"),
        new("mistral-7b", 7.3, 7.3, 16, Hf + "mistralai/Mistral-7B-Instruct-v0.3"),

        // Gemma 3 (Google).
        new("gemma-3-27b", 27, 27, 16, Hf + "google/gemma-3-27b-it"),
        new("gemma-3-12b", 12, 12, 16, Hf + "google/gemma-3-12b-it"),
        new("gemma-3-4b", 4, 4, 16, Hf + "google/gemma-3-4b-it"),
        new("gemma-3-1b", 1, 1, 16, Hf + "google/gemma-3-1b-it"),
    ];

    /// <summary>The built-in table's profile for a model id (source <c>known-model</c>), or null.</summary>
    public static EnergyProfile? Guess(string modelId) => Match(modelId) is { } entry
        ? new EnergyProfile(entry.Active, entry.Total, QuantBits(modelId) ?? entry.QuantBits, Source: EnergySources.KnownModel)
        : null;

    /// <summary>The table entry a model id matches, or null.</summary>
    public static Entry? Match(string modelId)
    {
        var compact = Compact(modelId);
        if (compact.Length == 0)
        {
            return null;
        }

        List<double>? sizes = null;
        foreach (var entry in Table)
        {
            if (!compact.Contains(entry.Compact, StringComparison.Ordinal))
            {
                continue;
            }

            if (!entry.Sized)
            {
                sizes ??= Sizes(modelId);
                if (sizes.Count > 0 && !sizes.Any(s => Near(s, entry.Total) || Near(s, entry.Active)))
                {
                    continue;
                }
            }

            return entry;
        }

        return null;

        static bool Near(double a, double b) => Math.Abs(a - b) <= 0.25 * Math.Max(a, b);
    }

    /// <summary>
    /// The table, then sizes parsed from the id: <c>NNb</c> is the total, <c>aNNb</c> the active parameters (the total
    /// when absent: a dense model). Null when neither knows the id.
    /// </summary>
    public static EnergyProfile? Infer(string modelId)
    {
        if (Guess(modelId) is { } known)
        {
            return known;
        }

        var name = Name(modelId);
        double? total = null, active = null;
        foreach (Match m in SizeToken().Matches(name))
        {
            if (!double.TryParse(m.Groups["n"].ValueSpan, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value) || value is < 0.1 or > 5000)
            {
                continue;
            }

            if (m.Groups["a"].Success)
            {
                active ??= value;
            }
            else
            {
                total ??= value;
            }
        }

        if (total is null)
        {
            return null;
        }

        var activeB = active is { } a && a <= total ? a : total.Value;
        return new EnergyProfile(activeB, total.Value, QuantBits(modelId) ?? 16, Source: EnergySources.ParsedName);
    }

    /// <summary>Weight bits named in the id (<c>FP8</c>, <c>AWQ</c>, <c>Q4_K_M</c>…); an Ollama <c>:tag</c> without one is its default Q4_K_M.</summary>
    public static int? QuantBits(string modelId)
    {
        var id = modelId.ToLowerInvariant();
        if (ContainsAny(id, "bf16", "fp16", "f16"))
        {
            return 16;
        }

        if (ContainsAny(id, "fp8", "int8", "w8a8", "8bit", "q8"))
        {
            return 8;
        }

        if (ContainsAny(id, "q6"))
        {
            return 6;
        }

        if (ContainsAny(id, "q5"))
        {
            return 5;
        }

        if (ContainsAny(id, "int4", "awq", "gptq", "4bit", "q4", "mxfp4", "nvfp4", "w4a16"))
        {
            return 4;
        }

        if (ContainsAny(id, "q3"))
        {
            return 3;
        }

        // Ollama's size tags (qwen3-coder:30b) and :latest pull Q4_K_M weights.
        var colon = id.LastIndexOf(':');
        return colon >= 0 && colon + 1 < id.Length && (char.IsAsciiDigit(id[colon + 1]) || id[(colon + 1)..] == "latest") ? 4 : null;

        static bool ContainsAny(string id, params string[] tokens) => tokens.Any(t => id.Contains(t, StringComparison.Ordinal));
    }

    /// <summary>Lower case, org prefix dropped, separators removed: <c>Qwen/Qwen3-Coder-480B</c> → <c>qwen3coder480b</c>.</summary>
    internal static string Compact(string modelId)
    {
        var name = Name(modelId);
        return string.Create(name.Length - name.Count(IsSeparator), name, static (span, source) =>
        {
            var i = 0;
            foreach (var c in source)
            {
                if (!IsSeparator(c))
                {
                    span[i++] = c;
                }
            }
        });

        static bool IsSeparator(char c) => c is '-' or '_' or ' ' or ':';
    }

    private static string Name(string modelId)
    {
        var id = modelId.Trim().ToLowerInvariant();
        var slash = id.LastIndexOf('/');
        return slash >= 0 ? id[(slash + 1)..] : id;
    }

    private static List<double> Sizes(string modelId)
    {
        var sizes = new List<double>();
        foreach (Match m in SizeToken().Matches(Name(modelId)))
        {
            if (double.TryParse(m.Groups["n"].ValueSpan, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value))
            {
                sizes.Add(value);
            }
        }

        return sizes;
    }

    /// <summary><c>30b</c>, <c>480b</c>, <c>a35b</c>, <c>1.7b</c> as separate tokens of the id (not <c>8x7b</c>, not <c>b16</c>).</summary>
    [GeneratedRegex(@"(?<![a-z0-9.])(?<a>a)?(?<n>\d+(?:\.\d+)?)b(?![a-z0-9])", RegexOptions.CultureInvariant)]
    private static partial Regex SizeToken();
}

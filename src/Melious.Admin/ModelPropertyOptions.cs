using System.CommandLine;
using System.Globalization;
using Melious.Gateway.Routing;
using Melious.Gateway.Translation;

namespace Melious.Admin;

/// <summary>
/// The options of <c>models set</c> and <c>models set-default</c>, mapped to the property names and types that
/// <c>ModelCatalogStore</c> reads: prices as invariant decimal strings, limits as Int64, energy figures as doubles.
/// Only the options given become properties, so an update merges into the entry and leaves the rest alone.
/// </summary>
internal sealed class ModelPropertyOptions
{
    private static readonly string[] ProtocolNames = ["openai", "anthropic"];
    private static readonly string[] FlavorNames = ["vllm", "sglang", "ollama", "llamacpp", "openai"];

    private readonly bool _includeDisplayName;
    private readonly Option<string?> _baseUrl = new("--base-url") { Description = "Upstream base URL (for openai, the part before /chat/completions)." };
    private readonly Option<string?> _protocol = new("--protocol") { Description = "Upstream protocol: openai (Chat Completions) or anthropic (Messages)." };
    private readonly Option<string?> _flavor = new("--flavor") { Description = "Server family: vllm, sglang, ollama, llamacpp or openai." };
    private readonly Option<string?> _apiKeyRef = new("--api-key-ref") { Description = "Where the upstream key is: config:<key> or env:<VARIABLE> (never the key itself)." };
    private readonly Option<string?> _contextWindow = new("--context-window") { Description = "Context window in tokens." };
    private readonly Option<string?> _maxOutput = new("--max-output") { Description = "Largest max_tokens the model accepts." };
    private readonly Option<string?> _toolUse = new("--tool-use") { Description = "Supports tool use: true or false." };
    private readonly Option<string?> _vision = new("--vision") { Description = "Accepts images: true or false." };
    private readonly Option<string?> _thinking = new("--thinking") { Description = "Supports extended thinking: true or false." };
    private readonly Option<string?> _reasoning = new("--reasoning") { Description = "How reasoning arrives: auto (inline <think> tags recognised for ollama and llamacpp), think-tags (inline <think>…</think>, a server without a reasoning parser) or field (reasoning/reasoning_content only)." };
    private readonly Option<string?> _betas = new("--betas") { Description = "anthropic-beta values passed to an anthropic-protocol upstream: * (all, the default), none, or a comma-separated allow-list." };
    private readonly Option<string?> _inputPrice = new("--input-price") { Description = "Price per million uncached input tokens (decimal, e.g. 0.60)." };
    private readonly Option<string?> _outputPrice = new("--output-price") { Description = "Price per million output tokens." };
    private readonly Option<string?> _cacheReadPrice = new("--cache-read-price") { Description = "Price per million cache-read input tokens." };
    private readonly Option<string?> _cacheWritePrice = new("--cache-write-price") { Description = "Price per million cache-write input tokens." };
    private readonly Option<string?> _currency = new("--currency") { Description = "ISO 4217 currency of the prices (e.g. USD)." };
    private readonly Option<string?> _priceVersion = new("--price-version") { Description = "Label of this rate card, stored on every billing row (e.g. 2025-08-01)." };
    private readonly Option<string?> _activeParams = new("--active-params") { Description = "Active parameters in billions (energy estimate)." };
    private readonly Option<string?> _totalParams = new("--total-params") { Description = "Total parameters in billions (energy estimate)." };
    private readonly Option<string?> _quantBits = new("--quant-bits") { Description = "Weight quantization bits (4, 8, 16, …)." };
    private readonly Option<string?> _joulesPerToken = new("--joules-per-token") { Description = "Measured joules per output token for the whole deployment (overrides the estimate)." };
    private readonly Option<string?> _gpuCount = new("--gpu-count") { Description = "GPUs serving the model (with --joules-per-token)." };
    private readonly Option<string?> _fallbacks = new("--fallbacks") { Description = "Comma-separated catalog models to try, in order, when this one fails before the first byte (\"\" clears)." };
    private readonly Option<string?> _fallbackOn = new("--fallback-on") { Description = "Which failures fall back: all, or a list of rate_limit, overloaded, server_error, connection, context_overflow." };
    private readonly Option<string?> _displayName = new("--display-name") { Description = "Name shown by GET /v1/models." };

    public ModelPropertyOptions(bool includeDisplayName)
    {
        _includeDisplayName = includeDisplayName;
        _protocol.AcceptOnlyFromAmong(ProtocolNames);
        _flavor.AcceptOnlyFromAmong(FlavorNames);
        _reasoning.AcceptOnlyFromAmong(ReasoningModes.All);
    }

    public void AddTo(Command command)
    {
        Option[] options =
        [
            _baseUrl, _protocol, _flavor, _apiKeyRef, _contextWindow, _maxOutput, _toolUse, _vision, _thinking, _reasoning, _betas,
            _inputPrice, _outputPrice, _cacheReadPrice, _cacheWritePrice, _currency, _priceVersion,
            _activeParams, _totalParams, _quantBits, _joulesPerToken, _gpuCount,
        ];
        foreach (var option in options)
        {
            command.Options.Add(option);
        }

        if (_includeDisplayName)
        {
            command.Options.Add(_displayName);
            command.Options.Add(_fallbacks);
            command.Options.Add(_fallbackOn);
        }
    }

    /// <summary>The table properties for the options given (validated), in a stable order.</summary>
    public Dictionary<string, object?> Read(ParseResult result)
    {
        var properties = new Dictionary<string, object?>(StringComparer.Ordinal);
        Put(properties, "BaseUrl", CliValues.AbsoluteHttpUrl(result.GetValue(_baseUrl), "--base-url"));
        Put(properties, "Protocol", result.GetValue(_protocol)?.ToLowerInvariant());
        Put(properties, "Flavor", result.GetValue(_flavor)?.ToLowerInvariant());
        Put(properties, "ApiKeyRef", CliValues.KeyReference(result.GetValue(_apiKeyRef), "--api-key-ref"));
        Put(properties, "ContextWindow", CliValues.Long(result.GetValue(_contextWindow), "--context-window", 1));
        Put(properties, "MaxOutputTokens", CliValues.Long(result.GetValue(_maxOutput), "--max-output", 1));
        Put(properties, "ToolUse", CliValues.Bool(result.GetValue(_toolUse), "--tool-use"));
        Put(properties, "Vision", CliValues.Bool(result.GetValue(_vision), "--vision"));
        Put(properties, "Thinking", CliValues.Bool(result.GetValue(_thinking), "--thinking"));
        Put(properties, "Reasoning", result.GetValue(_reasoning)?.ToLowerInvariant());
        Put(properties, "Betas", result.GetValue(_betas) is { } betas ? CliValues.NonEmpty(betas, "--betas") : null);
        Put(properties, "InputPrice", Price(result, _inputPrice));
        Put(properties, "OutputPrice", Price(result, _outputPrice));
        Put(properties, "CacheReadPrice", Price(result, _cacheReadPrice));
        Put(properties, "CacheWritePrice", Price(result, _cacheWritePrice));
        Put(properties, "Currency", CliValues.Currency(result.GetValue(_currency), "--currency"));
        Put(properties, "PriceVersion", result.GetValue(_priceVersion) is { } version ? CliValues.NonEmpty(version, "--price-version", 64) : null);

        var active = CliValues.PositiveDouble(result.GetValue(_activeParams), "--active-params");
        var total = CliValues.PositiveDouble(result.GetValue(_totalParams), "--total-params");
        if (active is not null && total is not null && total < active)
        {
            throw new CliException("--total-params must be at least --active-params");
        }

        Put(properties, "ActiveParamsB", active);
        Put(properties, "TotalParamsB", total);
        Put(properties, "QuantBits", CliValues.Int(result.GetValue(_quantBits), "--quant-bits", 1, 64));
        Put(properties, "JoulesPerOutputToken", CliValues.PositiveDouble(result.GetValue(_joulesPerToken), "--joules-per-token"));
        Put(properties, "GpuCount", CliValues.Int(result.GetValue(_gpuCount), "--gpu-count", 1));
        if (new[] { "ActiveParamsB", "TotalParamsB", "QuantBits", "JoulesPerOutputToken", "GpuCount" }.Any(properties.ContainsKey))
        {
            // Parameters an operator entered replace what seeding pre-filled from the built-in table.
            properties["EnergySource"] = EnergySources.Catalog;
        }
        if (_includeDisplayName)
        {
            Put(properties, "DisplayName", result.GetValue(_displayName) is { } display ? CliValues.NonEmpty(display, "--display-name") : null);
            Put(properties, "Fallbacks", result.GetValue(_fallbacks) is { } fallbacks
                ? string.Join(",", fallbacks.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                : null);
            if (result.GetValue(_fallbackOn) is { } on)
            {
                var names = on.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                if (names.Length == 0 || names.Any(n => !Melious.Gateway.Routing.FallbackTriggerNames.IsKnown(n)))
                {
                    throw new CliException("--fallback-on takes all, or a comma-separated list of rate_limit, overloaded, server_error, connection, context_overflow");
                }

                Put(properties, "FallbackOn", string.Join(",", names).ToLowerInvariant());
            }
        }

        return properties;
    }

    /// <summary>How the change is echoed back: values as stored, but only whether a key reference was set.</summary>
    public static string Describe(IReadOnlyDictionary<string, object?> properties) => properties.Count == 0
        ? "no properties given (every field is inherited from the default upstream)"
        : string.Join(", ", properties
            .Where(p => p.Key != "ApiKey")
            .Select(p => p.Key == "ApiKeyRef" ? "ApiKeyRef set" : $"{p.Key}={Convert.ToString(p.Value, CultureInfo.InvariantCulture)}"));

    private static string? Price(ParseResult result, Option<string?> option) =>
        CliValues.NonNegativeDecimal(result.GetValue(option), option.Name) is { } price ? CliValues.Format(price) : null;

    private static void Put(Dictionary<string, object?> properties, string name, object? value)
    {
        if (value is not null)
        {
            properties[name] = value;
        }
    }
}

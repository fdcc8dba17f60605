using System.Globalization;
using System.Text;

namespace Melious.Bench;

/// <summary>What the scripted upstream streams for every request until told otherwise.</summary>
public sealed record Scenario(int Tokens, int TokensPerChunk, int DelayMs, int TtftMs, bool ToolCall, int ToolFragments = 8)
{
    public const long PromptTokens = 9_120;
    public const long CachedTokens = 8_192;

    public string Query => string.Create(CultureInfo.InvariantCulture,
        $"tokens={Tokens}&perChunk={TokensPerChunk}&delayMs={DelayMs}&ttftMs={TtftMs}&tool={(ToolCall ? 1 : 0)}&fragments={ToolFragments}");

    public static Scenario FromQuery(Func<string, string?> get) => new(
        Int(get("tokens"), 200), Math.Max(1, Int(get("perChunk"), 1)), Int(get("delayMs"), 0), Int(get("ttftMs"), 0),
        Int(get("tool"), 0) != 0, Math.Max(1, Int(get("fragments"), 8)));

    private static int Int(string? s, int fallback) => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : fallback;

    /// <summary>Output tokens the upstream reports (text tokens plus one per argument fragment).</summary>
    public long CompletionTokens => Tokens + (ToolCall ? ToolFragments : 0);

    public string Label => string.Create(CultureInfo.InvariantCulture, $"{Tokens} tok, {TokensPerChunk}/chunk, {DelayMs} ms, {(ToolCall ? "tool" : "text")}");
}

/// <summary>
/// The whole response of one scenario as one byte array plus chunk boundaries, built once: serving a request
/// writes slices of it, so the upstream allocates nothing per chunk.
/// </summary>
public sealed class ScenarioPayload
{
    private static readonly string[] Vocabulary =
    [
        " The", " build", " fails", " because", " `Peek()`", " now", " returns", " `Token?`", ",", " and", " `Expect`",
        " dereferences", " it", " without", " a", " null", " check", ".", "\n\n", "```", "csharp", "\n", "var", " token",
        " =", " Peek", "()", " ??", " throw", " new", " ParseException", "(\"", "unexpected", " end", "\");", "\n", "```",
        " I'll", " update", " the", " method", " and", " run", " the", " tests", " again", ".", " Tabs\t", " and", " \"quotes\"",
    ];

    public ScenarioPayload(Scenario scenario)
    {
        Scenario = scenario;
        var bytes = new List<byte>(64 * 1024);
        var bounds = new List<(int, int)>();
        void Add(string s)
        {
            var start = bytes.Count;
            bytes.AddRange(Encoding.UTF8.GetBytes(s));
            bounds.Add((start, bytes.Count - start));
        }

        const string Head = "data: {\"id\":\"chatcmpl-bench7f3a9c\",\"object\":\"chat.completion.chunk\",\"created\":1764000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":";
        const string Tail = ",\"logprobs\":null,\"finish_reason\":null}]}\n\n";

        // vLLM sends the role first, with empty content.
        Add(Head + "{\"role\":\"assistant\",\"content\":\"\"}" + Tail);
        var expectedText = new StringBuilder();
        for (var i = 0; i < scenario.Tokens; i += scenario.TokensPerChunk)
        {
            var piece = new StringBuilder();
            for (var j = i; j < Math.Min(scenario.Tokens, i + scenario.TokensPerChunk); j++)
            {
                piece.Append(Vocabulary[j % Vocabulary.Length]);
            }

            var escaped = Escape(piece.ToString());
            expectedText.Append(escaped);
            Add(Head + "{\"content\":\"" + escaped + "\"}" + Tail);
        }

        if (scenario.ToolCall)
        {
            const string Arguments = "{\"file_path\": \"/home/dev/project/src/Parser/ExpressionParser.cs\", \"offset\": 120, \"limit\": 80}";
            Add(Head + "{\"tool_calls\":[{\"index\":0,\"id\":\"chatcmpl-tool-5b1e0c2d9f\",\"type\":\"function\",\"function\":{\"name\":\"Read\",\"arguments\":\"\"}}]}" + Tail);
            var size = (Arguments.Length + scenario.ToolFragments - 1) / scenario.ToolFragments;
            for (var at = 0; at < Arguments.Length; at += size)
            {
                var part = Arguments.Substring(at, Math.Min(size, Arguments.Length - at));
                Add(Head + "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"" + Escape(part) + "\"}}]}" + Tail);
            }

            ExpectedToolArguments = Arguments;
        }

        Add("data: {\"id\":\"chatcmpl-bench7f3a9c\",\"object\":\"chat.completion.chunk\",\"created\":1764000000,\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"" + (scenario.ToolCall ? "tool_calls" : "stop") + "\",\"stop_reason\":null}]}\n\n");
        Add(string.Create(CultureInfo.InvariantCulture,
            $"data: {{\"id\":\"chatcmpl-bench7f3a9c\",\"object\":\"chat.completion.chunk\",\"created\":1764000000,\"model\":\"bench-model\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{Scenario.PromptTokens},\"total_tokens\":{Scenario.PromptTokens + scenario.CompletionTokens},\"completion_tokens\":{scenario.CompletionTokens},\"prompt_tokens_details\":{{\"cached_tokens\":{Scenario.CachedTokens}}}}}}}\n\n"));
        Add("data: [DONE]\n\n");

        Bytes = bytes.ToArray();
        Chunks = bounds.ToArray();
        ExpectedEscapedTextBytes = Encoding.UTF8.GetByteCount(expectedText.ToString());
    }

    public Scenario Scenario { get; }

    public byte[] Bytes { get; }

    public (int Start, int Length)[] Chunks { get; }

    /// <summary>Sum of the JSON-escaped text bytes the client must receive in text deltas.</summary>
    public int ExpectedEscapedTextBytes { get; }

    public string? ExpectedToolArguments { get; }

    private static string Escape(string s) =>
        s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)
         .Replace("\n", "\\n", StringComparison.Ordinal).Replace("\t", "\\t", StringComparison.Ordinal);
}

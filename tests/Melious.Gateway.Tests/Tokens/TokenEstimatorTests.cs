using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Tokens;
using Microsoft.Extensions.Options;
using Microsoft.ML.Tokenizers;

namespace Melious.Gateway.Tests.Tokens;

/// <summary>
/// Calibration of the local token estimate against real BPE vocabularies (cl100k_base, o200k_base), which the
/// tokenizers of the common open-weight models resemble. count_tokens promises "within about 10%" of the
/// upstream's prompt_tokens for typical requests.
/// </summary>
public sealed class TokenEstimatorTests
{
    private static readonly Tokenizer Cl100k = TiktokenTokenizer.CreateForEncoding("cl100k_base");
    private static readonly Tokenizer O200k = TiktokenTokenizer.CreateForEncoding("o200k_base");
    private static readonly RequestParser Parser = new(Options.Create(new GatewayOptions()));

    public static TheoryData<string, double> Texts => new()
    {
        { "prose.md", 0.12 },
        { "code.cs.txt", 0.12 },
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public void Count_TypicalText_IsCloseToRealTokenizers(string file, double tolerance)
    {
        var text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Golden", "tokens", file));
        var estimate = TokenEstimator.Count(text);

        AssertClose(estimate, Cl100k.CountTokens(text), tolerance, file + " vs cl100k");
        AssertClose(estimate, O200k.CountTokens(text), tolerance, file + " vs o200k");
    }

    [Fact]
    public void Count_Utf8AndUtf16_Agree()
    {
        var text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Golden", "tokens", "prose.md")) + " naïve café 東京 🚀";
        Assert.Equal(TokenEstimator.Count(text), TokenEstimator.CountUtf8(System.Text.Encoding.UTF8.GetBytes(text)));
    }

    [Fact]
    public void Count_EdgeCases()
    {
        Assert.Equal(0, TokenEstimator.Count(""));
        Assert.Equal(0, TokenEstimator.Count((string?)null));
        Assert.Equal(1, TokenEstimator.Count("hello"));
        Assert.Equal(2, TokenEstimator.Count("hello world"));
        Assert.True(TokenEstimator.Count("東京タワーに行きました") >= 8, "CJK text costs about a token per character");
        Assert.True(TokenEstimator.Count(new string('a', 1000)) > 100, "one huge word is not one token");
    }

    public static TheoryData<string> Requests => new() { "tool-heavy", "conversation", "code-review" };

    [Theory]
    [MemberData(nameof(Requests))]
    public void EstimateRequest_TypicalClaudeCodeRequest_IsWithinTenPercent(string shape)
    {
        var json = BuildRequest(shape);
        var request = Parser.Parse(System.Text.Encoding.UTF8.GetBytes(json.ToJsonString()), requireMaxTokens: false).Request!;
        var rendered = ChatTemplate.Render(json);

        var estimate = TokenEstimator.EstimateRequest(request);

        AssertClose(estimate, Cl100k.CountTokens(rendered), 0.10, shape + " vs cl100k");
        AssertClose(estimate, O200k.CountTokens(rendered), 0.10, shape + " vs o200k");
    }

    [Fact]
    public void EstimateRequest_CountsSystemToolsAndMessages()
    {
        var bare = Parser.Parse("""{"model":"m","messages":[{"role":"user","content":"hi"}]}"""u8.ToArray(), false).Request!;
        var withSystem = Parser.Parse("""{"model":"m","system":"You are a careful assistant who answers briefly.","messages":[{"role":"user","content":"hi"}]}"""u8.ToArray(), false).Request!;
        var withTool = Parser.Parse("""{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"name":"Read","description":"Reads a file","input_schema":{"type":"object","properties":{"file_path":{"type":"string"}}}}]}"""u8.ToArray(), false).Request!;

        Assert.True(TokenEstimator.EstimateRequest(withSystem) > TokenEstimator.EstimateRequest(bare));
        Assert.True(TokenEstimator.EstimateRequest(withTool) > TokenEstimator.EstimateRequest(bare) + TokenEstimator.ToolPreamble);
    }

    private static void AssertClose(long estimate, long actual, double tolerance, string what)
    {
        var ratio = (double)estimate / actual;
        Assert.True(Math.Abs(ratio - 1) <= tolerance, $"{what}: estimate {estimate}, tokenizer {actual}, ratio {ratio:0.000} (tolerance ±{tolerance:P0})");
    }

    /// <summary>Claude Code-shaped requests: a long system prompt, tools, and turns with tool use and results.</summary>
    internal static JsonObject BuildRequest(string shape)
    {
        var root = AppContext.BaseDirectory;
        var prose = File.ReadAllText(Path.Combine(root, "Golden", "tokens", "prose.md"));
        var code = File.ReadAllText(Path.Combine(root, "Golden", "tokens", "code.cs.txt"));
        var tools = JsonNode.Parse(File.ReadAllText(Path.Combine(root, "Golden", "tokens", "tools.json")))!.AsArray();
        var system = new JsonArray(
            new JsonObject { ["type"] = "text", ["text"] = "x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=sdk-cli;" },
            new JsonObject { ["type"] = "text", ["text"] = "You are an interactive agent that helps users with software engineering tasks.", ["cache_control"] = new JsonObject { ["type"] = "ephemeral" } },
            new JsonObject { ["type"] = "text", ["text"] = prose[..6000], ["cache_control"] = new JsonObject { ["type"] = "ephemeral" } });

        var messages = new JsonArray
        {
            new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "<system-reminder>\nToday's date is 2026-11-24.\n</system-reminder>" }, new JsonObject { ["type"] = "text", ["text"] = "Find where chunk parsing handles tool calls and explain it." }) },
            new JsonObject { ["role"] = "system", ["content"] = prose.Substring(6000, 3000) },
        };

        if (shape is "conversation" or "code-review")
        {
            messages.Add(new JsonObject
            {
                ["role"] = "assistant",
                ["content"] = new JsonArray(
                    new JsonObject { ["type"] = "text", ["text"] = "I'll read the parser first." },
                    new JsonObject { ["type"] = "tool_use", ["id"] = "toolu_01", ["name"] = "Read", ["input"] = new JsonObject { ["file_path"] = "/repo/src/Translation/ChatChunk.cs" } }),
            });
            messages.Add(new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray(new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = "toolu_01", ["content"] = shape == "code-review" ? code : code[..4000] }),
            });
        }

        if (shape == "conversation")
        {
            messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = prose.Substring(9000, 2500) });
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = "Good. Now summarise the streaming rules in five bullet points." });
        }

        return new JsonObject
        {
            ["model"] = "claude-sonnet-4-5-20250929",
            ["system"] = system,
            ["messages"] = messages,
            ["tools"] = shape == "conversation" ? new JsonArray(tools.Take(4).Select(t => t!.DeepClone()).ToArray()) : tools.DeepClone(),
            ["max_tokens"] = 32000,
        };
    }
}

using System.Text;
using System.Text.Json.Nodes;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Tests.Support;
using Melious.Gateway.Tests.Tokens;
using Melious.Gateway.Tokens;
using Melious.Gateway.Translation;
using Melious.Gateway.Upstream;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Tests.Translation;

/// <summary>
/// Work taken off the time to first token must not change what is sent or billed: a deferred estimate equals the
/// exact one and only defers when it cannot change <c>max_tokens</c>; shared tools are written as the same bytes a
/// fresh translation writes, with their names still mapped back.
/// </summary>
public sealed class RequestPathCacheTests
{
    private static readonly RequestParser Parser = new(Options.Create(new GatewayOptions()));

    public static TheoryData<string> Shapes => new() { "tool-heavy", "conversation", "code-review" };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void UpperBound_IsNeverBelowTheEstimate(string shape)
    {
        var request = Parse(TokenEstimatorTests.BuildRequest(shape).ToJsonString());
        var fresh = request with { Tools = request.Tools is null ? null : [.. request.Tools] };

        Assert.True(TokenEstimator.UpperBound(request) >= TokenEstimator.EstimateRequest(request));
        Assert.True(TokenEstimator.UpperBound(fresh) >= TokenEstimator.EstimateRequest(fresh));
    }

    [Theory]
    [InlineData("a")]
    [InlineData("\n\n\n\"quoted\"\t\\")]
    [InlineData("東京タワー 🚀🚀 naïve")]
    [InlineData("1234567890 ,.;:!? ()[]{}")]
    public void UpperBound_HoldsForAwkwardText(string text)
    {
        var json = new JsonObject
        {
            ["model"] = "m",
            ["max_tokens"] = 10,
            ["system"] = text,
            ["messages"] = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = text },
                new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "thinking", ["thinking"] = text, ["signature"] = "s" },
                        new JsonObject { ["type"] = "tool_use", ["id"] = "t1", ["name"] = "Read", ["input"] = new JsonObject { ["q"] = text } }),
                },
                new JsonObject
                {
                    ["role"] = "user",
                    ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = "t1", ["content"] = text },
                        new JsonObject { ["type"] = "image", ["source"] = new JsonObject { ["type"] = "url", ["url"] = "https://example.test/a.png" } }),
                }),
            ["tools"] = new JsonArray(new JsonObject { ["name"] = "Read", ["description"] = text, ["input_schema"] = new JsonObject { ["type"] = "object", ["description"] = text } }),
        };
        var request = Parse(json.ToJsonString());

        Assert.True(TokenEstimator.UpperBound(request) >= TokenEstimator.EstimateRequest(request));
    }

    [Theory]
    [InlineData(8192, 1_000)]
    [InlineData(8192, 20_000)]
    [InlineData(8192, 24_000)]
    [InlineData(8192, 26_000)]
    [InlineData(8192, 40_000)]
    [InlineData(1, 30_000)]
    [InlineData(100_000, 500)]
    public void ClampIgnores_OnlyWhenEveryEstimateUpToTheBoundGivesTheSameMaxTokens(long requested, long bound)
    {
        var model = TestModels.Small;
        var ignores = OpenAIRequestTranslator.ClampIgnores(requested, model, bound);

        var atBound = Clamp(requested, model, bound);
        var same = Enumerable.Range(0, 101).All(i => Clamp(requested, model, bound * i / 100) == atBound && atBound is not null);
        if (ignores)
        {
            Assert.True(same, $"max_tokens changes below the bound {bound}");
        }

        // And it does not give up where deferring is plainly safe: far from the window.
        if (bound + Math.Min(requested, model.MaxOutputTokens) + 2_000 < model.ContextWindow)
        {
            Assert.True(ignores);
        }
    }

    [Fact]
    public void ClampIgnores_IsFalse_NearTheWindow()
    {
        Assert.False(OpenAIRequestTranslator.ClampIgnores(8192, TestModels.Small, 30_000));
        Assert.False(OpenAIRequestTranslator.ClampIgnores(8192, TestModels.Small, 40_000));
    }

    [Fact]
    public async Task DeferredEstimate_EqualsTheExactEstimate_WhoeverCountsFirst()
    {
        var request = Parse(TokenEstimatorTests.BuildRequest("code-review").ToJsonString());
        var exact = TokenEstimator.EstimateRequest(request);
        var deferred = InputEstimate.Deferred(request);
        Assert.True(deferred.IsDeferred);

        using var start = new ManualResetEventSlim();
        var readers = Enumerable.Range(0, 4).Select(_ => Task.Run(() =>
        {
            start.Wait();
            return deferred.Value;
        })).ToArray();
        start.Set();

        Assert.All(await Task.WhenAll(readers), value => Assert.Equal(exact, value));
        Assert.False(deferred.IsDeferred);
        Assert.Equal(exact, new UpstreamContext("m", "u", null, 1000, deferred).EstimatedInputTokens);
        Assert.Equal(exact, new UpstreamContext("m", "u", null, 1000, exact).EstimatedInputTokens);
    }

    [Fact]
    public void SharedTools_AreWrittenAsTheSameBytesAsAFreshTranslation()
    {
        var json = ToolsBody(Guid.NewGuid().ToString("N"), "q");
        var first = Parse(json);
        var second = Parse(json);
        Assert.IsType<SharedToolList>(second.Tools);

        var expected = Upstream(first with { Tools = [.. first.Tools!] });

        Assert.Equal(expected, Upstream(first));
        Assert.Equal(expected, Upstream(second));
        Assert.Equal(expected, Upstream(second));
        Assert.Contains("\"name\":\"mcp__files__read_file_", expected, StringComparison.Ordinal);
    }

    [Fact]
    public void SharedTools_StillMapRewrittenNamesBack_OnEveryRequest()
    {
        var json = ToolsBody(Guid.NewGuid().ToString("N"), "q");
        foreach (var request in new[] { Parse(json), Parse(json), Parse(json) })
        {
            var translated = OpenAIRequestTranslator.Translate(request, TestModels.Vllm, 1_000);
            var upstreamName = translated.Request.Tools!.Single(t => t.Function.Name.StartsWith("mcp__files__read_file_", StringComparison.Ordinal)).Function.Name;

            Assert.Equal("mcp__files__read.file", translated.ToolNames.ToOriginal(upstreamName));
        }
    }

    private static string Upstream(MessagesRequest request) =>
        RequestHarness.Serialize(OpenAIRequestTranslator.Translate(request, TestModels.Vllm, 1_000).Request);

    private static long? Clamp(long requested, Melious.Gateway.Routing.ModelEntry model, long estimate)
    {
        try
        {
            return OpenAIRequestTranslator.ClampMaxTokens(requested, model, estimate);
        }
        catch (RequestTranslationException)
        {
            return null;
        }
    }

    private static MessagesRequest Parse(string json)
    {
        var (request, error) = Parser.Parse(Encoding.UTF8.GetBytes(json), requireMaxTokens: true);
        Assert.True(error is null, error?.Message);
        return request!;
    }

    /// <summary>A body whose tools (about 4 KB, so they are cached) include one name OpenAI does not accept.</summary>
    private static string ToolsBody(string tag, string question) =>
        ToolSetCacheTests.Body(tag, question, firstName: "mcp__files__read.file", descriptionPrefix: "Line one\nline \"two\" ");
}

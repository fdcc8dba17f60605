using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Tokens;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Tests.Translation;

/// <summary>
/// Claude Code resends the same tools bytes every turn; <see cref="ToolSetCache"/> parses them once. Sharing must be
/// exact (a one-byte difference is a different tool set), invisible in results (estimate, errors), and bounded.
/// </summary>
[Collection(ToolSetCacheTestGroup.Name)]
public sealed class ToolSetCacheTests
{
    private static readonly RequestParser Parser = new(Options.Create(new GatewayOptions()));

    [Fact]
    public void SameToolsBytes_InDifferentRequests_AreParsedOnceAndShared()
    {
        var tag = Guid.NewGuid().ToString("N");
        var first = Parse(Body(tag, "first question"));
        var second = Parse(Body(tag, "a different second question"));

        var shared = Assert.IsType<SharedToolList>(first.Tools);
        Assert.Same(shared, second.Tools);
        Assert.Equal(8, shared.Count);
        Assert.Equal("tool_3", shared[3].Name);
        Assert.Equal("object", shared[3].InputSchema!.Value.GetProperty("type").GetString());
    }

    [Fact]
    public void OneByteDifferentTools_AreNotShared()
    {
        var tag = Guid.NewGuid().ToString("N");
        var first = Parse(Body(tag, "q"));
        var other = Parse(Body(tag + "x", "q"));

        Assert.NotSame(first.Tools, other.Tools);
        Assert.EndsWith(tag + "x", other.Tools![0].Description, StringComparison.Ordinal);
        Assert.EndsWith(tag, first.Tools![0].Description, StringComparison.Ordinal);
    }

    [Fact]
    public void SmallToolSets_AreNotCached()
    {
        var request = Parse("""{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"Read","input_schema":{"type":"object"}}]}""");

        Assert.IsNotType<SharedToolList>(request.Tools);
        Assert.Single(request.Tools!);
    }

    [Fact]
    public void Estimate_OfSharedTools_EqualsTheEstimateOfAFreshCopy()
    {
        var tag = Guid.NewGuid().ToString("N");
        var request = Parse(Body(tag, "q"));
        var again = Parse(Body(tag, "q"));
        Assert.IsType<SharedToolList>(request.Tools);

        var fresh = TokenEstimator.EstimateRequest(request with { Tools = [.. request.Tools!] });

        Assert.Equal(fresh, TokenEstimator.EstimateRequest(request));
        Assert.Equal(fresh, TokenEstimator.EstimateRequest(again));
        var withoutTools = TokenEstimator.EstimateRequest(request with { Tools = null });
        Assert.True(fresh > withoutTools + 8 * 20, $"estimate {fresh} (without tools {withoutTools}) should count the tool schemas");
    }

    [Fact]
    public void ErrorInsideTools_KeepsItsPathUnderTools()
    {
        var body = JsonNode.Parse(Body(Guid.NewGuid().ToString("N"), "q"))!;
        body["tools"]![5]!["name"] = 42;

        var (request, error) = Parser.Parse(Encoding.UTF8.GetBytes(body.ToJsonString()), requireMaxTokens: true);

        Assert.Null(request);
        Assert.StartsWith("invalid request body: tools.5.name:", error!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MalformedJsonInsideTools_NamesTheElement()
    {
        var json = Body(Guid.NewGuid().ToString("N"), "q");
        var at = json.IndexOf("\"name\":\"tool_4\"", StringComparison.Ordinal);
        var broken = json[..at] + "\"name\":\"tool_4\" \"stray\"" + json[(at + "\"name\":\"tool_4\"".Length)..];

        var (request, error) = Parser.Parse(Encoding.UTF8.GetBytes(broken), requireMaxTokens: true);

        Assert.Null(request);
        Assert.Equal(400, error!.Status);
        Assert.StartsWith("invalid request body: tools.4", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidTool_InACachedSet_IsRejectedEveryTime()
    {
        var body = JsonNode.Parse(Body(Guid.NewGuid().ToString("N"), "q"))!;
        ((JsonObject)body["tools"]![2]!).Remove("input_schema");
        var bytes = Encoding.UTF8.GetBytes(body.ToJsonString());

        var first = Parser.Parse(bytes, requireMaxTokens: true).Error;
        var second = Parser.Parse(bytes, requireMaxTokens: true).Error;

        Assert.Equal("tools.2.input_schema: Field required", first?.Message);
        Assert.Equal(first?.Message, second?.Message);
    }

    [Fact]
    public void ManyDistinctToolSets_StayBounded()
    {
        for (var i = 0; i < ToolSetCache.Capacity * 3; i++)
        {
            Parse(Body(Guid.NewGuid().ToString("N"), "q"));
        }

        Assert.InRange(ToolSetCache.Count, 1, ToolSetCache.Capacity);
    }

    [Fact]
    public void FieldsAfterACachedToolSet_AreReadAsWithoutTheCache()
    {
        var json = Body(Guid.NewGuid().ToString("N"), "q")[..^1] + ""","stream":true,"temperature":0.25,"metadata":{"user_id":"u-1"},"stop_sequences":["END"]}""";
        ToolSetCache.Clear();
        var cold = Parse(json);
        var warm = Parse(json);

        Assert.IsType<SharedToolList>(warm.Tools);
        Assert.Same(cold.Tools, warm.Tools);
        Assert.True(warm.Stream);
        Assert.Equal(0.25, warm.Temperature);
        Assert.Equal("u-1", warm.Metadata?.UserId);
        Assert.Equal(["END"], warm.StopSequences!);
        Assert.Equal(100, warm.MaxTokens);
    }

    [Theory]
    [InlineData(""","metadata":5}""")]
    [InlineData(""","stream":tru}""")]
    [InlineData(""","stream":true""")]
    [InlineData(""","stream":true}}""")]
    [InlineData(""","max_tokens":"many"}""")]
    public void ErrorsAfterACachedToolSet_AreTheSameAsWithoutTheCache(string tail)
    {
        var body = Body(Guid.NewGuid().ToString("N"), "q");
        var json = Encoding.UTF8.GetBytes(body[..^1] + tail);
        ToolSetCache.Clear();
        var cold = Parser.Parse(json, requireMaxTokens: true).Error;
        Parse(body);
        Parse(body);
        var warm = Parser.Parse(json, requireMaxTokens: true).Error;

        Assert.NotNull(cold);
        Assert.Equal(cold.Message, warm?.Message);
    }

    [Fact]
    public void MessagesRequest_KeepsOnlyInitProperties_WhichTheToolsJumpReliesOn()
    {
        // The tools converter continues on a reader over the rest of the body. That is safe while the serializer
        // reads MessagesRequest in one pass, which it does when every property is init-only (they are all passed
        // to its creator). A settable property would be read later from a position saved on the original reader.
        foreach (var property in typeof(MessagesRequest).GetProperties())
        {
            if (property.SetMethod is { } setter)
            {
                Assert.True(
                    setter.ReturnParameter.GetRequiredCustomModifiers().Contains(typeof(System.Runtime.CompilerServices.IsExternalInit)),
                    $"MessagesRequest.{property.Name} must be init-only (see ToolListConverter)");
            }
        }
    }

    [Fact]
    public void LongerArray_StartingWithACachedToolSet_IsNotTakenForIt()
    {
        var body = JsonNode.Parse(Body(Guid.NewGuid().ToString("N"), "q"))!;
        var cached = Parse(body.ToJsonString());
        ((JsonArray)body["tools"]!).Add(new JsonObject { ["name"] = "extra", ["input_schema"] = new JsonObject { ["type"] = "object" } });

        var longer = Parse(body.ToJsonString());

        Assert.Equal(9, longer.Tools!.Count);
        Assert.NotSame(cached.Tools, longer.Tools);
    }

    [Fact]
    public void DuplicateToolsKeys_ReadAsWithoutTheCache_AndDoNotPoisonIt()
    {
        var tag = Guid.NewGuid().ToString("N");
        var known = Body(tag, "q");
        var first = Parse(known);
        var other = JsonNode.Parse(Body(tag + "-other", "q"))!["tools"]!.ToJsonString();
        var duplicate = known[..^1] + ""","tools":""" + other + "}";

        ToolSetCache.Clear();
        var (coldRequest, coldError) = Parser.Parse(Encoding.UTF8.GetBytes(duplicate), requireMaxTokens: true);
        Parse(known);
        var (warmRequest, warmError) = Parser.Parse(Encoding.UTF8.GetBytes(duplicate), requireMaxTokens: true);

        Assert.Equal(coldError?.Message, warmError?.Message);
        Assert.Equal(coldRequest?.Tools?[0].Description, warmRequest?.Tools?[0].Description);

        // The tool set of the known body is still its own.
        var again = Parse(known);
        Assert.EndsWith(tag, again.Tools![0].Description, StringComparison.Ordinal);
        Assert.Equal(first.Tools![0].Description, again.Tools[0].Description);
    }

    private static MessagesRequest Parse(string json)
    {
        var (request, error) = Parser.Parse(Encoding.UTF8.GetBytes(json), requireMaxTokens: true);
        Assert.Null(error);
        return request!;
    }

    /// <summary>
    /// A request whose tools array (about 4 KB, so it is cached) ends its first description with
    /// <paramref name="tag"/>; the first tool may get another name and every description a prefix.
    /// </summary>
    internal static string Body(string tag, string question, string firstName = "tool_0", string descriptionPrefix = "")
    {
        var tools = new JsonArray();
        for (var i = 0; i < 8; i++)
        {
            tools.Add(new JsonObject
            {
                ["name"] = i == 0 ? firstName : $"tool_{i}",
                ["description"] = descriptionPrefix + new string('d', 300) + (i == 0 ? tag : ""),
                ["input_schema"] = JsonNode.Parse("""{"type":"object","properties":{"path":{"type":"string","description":"An absolute path"}},"required":["path"]}"""),
            });
        }

        return new JsonObject
        {
            ["model"] = "claude-sonnet-4-5",
            ["max_tokens"] = 100,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = question }),
            ["tools"] = tools,
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }
}

/// <summary>
/// <see cref="ToolSetCache"/> is process-wide, and other test classes (RequestPathCacheTests, TokenEstimatorTests) add
/// tool sets to it from parallel threads. When it is full, any add starts it over, so one landing between the two parses
/// of a test here would drop the entry that test expects to be shared (Assert.Same). These tests therefore run on their
/// own, after the parallel ones.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ToolSetCacheTestGroup
{
    public const string Name = "ToolSetCache (process-wide state)";
}

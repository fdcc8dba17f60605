using System.Text.Json;
using System.Text.Json.Nodes;
using Melious.Gateway.Endpoints;
using Melious.Gateway.Protocol.OpenAI;
using Melious.Gateway.Routing;
using Melious.Gateway.Translation;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Tests.Translation;

public sealed class FlavorTests
{
    private static readonly RequestParser Parser = new(Options.Create(new GatewayOptions()));

    private static JsonNode Translate(string flavor, string body)
    {
        var request = Parser.Parse(System.Text.Encoding.UTF8.GetBytes(body), requireMaxTokens: true).Request!;
        var translated = OpenAIRequestTranslator.Translate(request, new ModelEntry { Id = "m", BaseUrl = "http://x/v1", Flavor = flavor }, 100);
        return JsonNode.Parse(JsonSerializer.Serialize(translated.Request, OpenAIJsonContext.Default.ChatCompletionRequest))!;
    }

    private const string ToolTurn = """
        {"model":"deepseek-chat","max_tokens":100,"messages":[
          {"role":"user","content":"list files"},
          {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"ls"}}]},
          {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"a.txt"}]}]}
        """;

    [Fact]
    public void DeepSeek_ToolCallTurnsAlwaysCarryReasoningContent()
    {
        var assistant = Translate("deepseek", ToolTurn)["messages"]!.AsArray().Single(m => (string)m!["role"]! == "assistant")!;
        Assert.Equal("", (string?)assistant["reasoning_content"]);
    }

    [Fact]
    public void OtherFlavors_OmitEmptyReasoningContent()
    {
        var assistant = Translate("vllm", ToolTurn)["messages"]!.AsArray().Single(m => (string)m!["role"]! == "assistant")!;
        Assert.Null(assistant["reasoning_content"]);
    }
}

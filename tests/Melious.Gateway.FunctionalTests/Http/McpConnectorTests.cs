using System.Net;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>
/// The MCP connector (beta <c>mcp-client-2025-11-20</c>): <c>mcp_servers</c> plus an <c>mcp_toolset</c> tool, which
/// has no <c>name</c>. Accepted; dropped toward an OpenAI upstream like other server tools, forwarded as sent toward
/// an Anthropic one.
/// </summary>
public sealed class McpConnectorTests(AzuriteFixture azurite)
{
    private const string Request = """
        {"model":"claude-sonnet-4-5-20250929","max_tokens":200,
         "mcp_servers":[{"type":"url","url":"https://mcp.example.com/sse","name":"gh","authorization_token":"tok"}],
         "tools":[{"type":"mcp_toolset","mcp_server_name":"gh","default_config":{"enabled":true},"configs":{"delete_repo":{"enabled":false}}},
                  {"name":"Read","description":"Read a file","input_schema":{"type":"object","properties":{"file_path":{"type":"string"}}}}],
         "messages":[{"role":"user","content":"list my open PRs"}]}
        """;

    [Fact]
    public async Task McpToolset_TowardAnOpenAIUpstream_IsDropped()
    {
        await using var s = await Scenario.StartAsync(azurite, Sse.TextAnswer(["ok"]));
        var response = await s.PostAsync(Request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var sent = s.Upstream.Last;
        Assert.Equal(["Read"], sent.Json.GetProperty("tools").EnumerateArray().Select(t => t.GetProperty("function").GetProperty("name").GetString()));
        Assert.DoesNotContain("mcp", sent.BodyText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task McpToolset_TowardAnAnthropicUpstream_IsForwardedAsSent()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteRawAsync(context,
            """{"id":"msg_up","type":"message","role":"assistant","model":"secondary-model","content":[{"type":"text","text":"2 open"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":50,"output_tokens":3}}""",
            "application/json"), anthropicUpstream: true);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages?beta=true") { Content = new StringContent(Request, System.Text.Encoding.UTF8, "application/json") };
        request.Headers.Add("anthropic-beta", "mcp-client-2025-11-20");
        var response = await s.Client.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var sent = s.Upstream.Last;
        Assert.Equal(Request.Replace("\"claude-sonnet-4-5-20250929\"", "\"secondary-model\"", StringComparison.Ordinal), sent.BodyText);
        Assert.Equal("mcp-client-2025-11-20", sent.Headers["anthropic-beta"]);
    }
}

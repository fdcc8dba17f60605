using System.Net;
using Melious.Gateway.FunctionalTests.Clients;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary><c>anthropic-beta</c> toward an Anthropic-native upstream: lists and repeated headers, and a 400 that names a beta.</summary>
public sealed class AnthropicBetaTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static HttpRequestMessage Post(Scenario s, params string[] betaHeaders)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages?beta=true") { Content = new StringContent(Scenario.Body(stream: true).ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        foreach (var value in betaHeaders)
        {
            request.Headers.TryAddWithoutValidation("anthropic-beta", value);
        }

        return request;
    }

    [Fact]
    public async Task CommaListsAndRepeatedHeaders_ArePassedAsOneDeduplicatedList()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => AnthropicUpstream.TextAsync(context, "secondary-model", "ok"), anthropicUpstream: true);
        var response = await s.Client.SendAsync(Post(s, "claude-code-20250219,interleaved-thinking-2025-05-14", "context-management-2025-06-27", "claude-code-20250219"), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        SseEvents.AssertGrammar(await SseEvents.ReadAllAsync(response, Ct));
        Assert.Equal("claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27", s.Upstream.Requests.Single().Headers["anthropic-beta"]);
    }

    [Fact]
    public async Task UpstreamRejectingABeta_GetsAnErrorThatNamesItAndTheFix()
    {
        static async Task Reject(UpstreamRequest request, HttpContext context)
        {
            context.Response.StatusCode = 400;
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"type":"error","error":{"type":"invalid_request_error","message":"Unexpected value(s) `context-management-2025-06-27` for the `anthropic-beta` header. Please consult our documentation at docs.anthropic.com or try again without the header."}}""", context.RequestAborted);
        }

        await using var s = await Scenario.StartAsync(azurite, Reject, anthropicUpstream: true);
        var response = await s.Client.SendAsync(Post(s, "claude-code-20250219,context-management-2025-06-27"), Ct);
        await ErrorAssert.IsErrorAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", "'context-management-2025-06-27'");
        var text = await response.Content.ReadAsStringAsync(Ct);
        Assert.Contains("--betas claude-code-20250219", text, StringComparison.Ordinal);
    }
}

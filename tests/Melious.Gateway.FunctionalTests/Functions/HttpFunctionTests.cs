using System.Text.Json;
using Melious.Functions;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// Each HTTP function hands the request to its core endpoint, which writes the whole response, and returns an
/// <see cref="EmptyResult"/>. None of these requests reaches storage or an upstream.
/// </summary>
public sealed class HttpFunctionTests : IDisposable
{
    private readonly IHost _host = FunctionsTestHost.Build(FunctionsTestHost.OfflineSettings());

    public void Dispose() => _host.Dispose();

    [Fact]
    public async Task Root_Get_AnswersWithTheGatewayStatus()
    {
        var http = TestRequests.Create(_host.Services, "GET", "/");

        var result = await Create<RootFunction>().RunAsync(http.Request);

        Assert.IsType<EmptyResult>(result);
        Assert.Equal(200, http.Response.StatusCode);
        Assert.Contains("\"melious-gateway\"", TestRequests.ResponseText(http));
        Assert.True(http.Response.Headers.ContainsKey("request-id"));
    }

    [Fact]
    public async Task Root_Head_AnswersWithoutABody()
    {
        var http = TestRequests.Create(_host.Services, "HEAD", "/");

        await Create<RootFunction>().RunAsync(http.Request);

        Assert.Equal(200, http.Response.StatusCode);
        Assert.Equal("", TestRequests.ResponseText(http));
    }

    [Fact]
    public async Task Telemetry_IsAcceptedAndDropped()
    {
        var http = TestRequests.Create(_host.Services, "POST", "/api/event_logging/batch", "{\"events\":[]}");

        var result = await Create<RootFunction>().TelemetryAsync(http.Request);

        Assert.IsType<EmptyResult>(result);
        Assert.Equal(204, http.Response.StatusCode);
    }

    [Fact]
    public async Task Messages_WithoutKey_IsRejectedByTheCore()
    {
        var http = TestRequests.Create(_host.Services, "POST", "/v1/messages", "{\"model\":\"claude-opus-4-8\",\"max_tokens\":5,\"messages\":[]}");

        var result = await Create<MessagesFunction>().RunAsync(http.Request);

        Assert.IsType<EmptyResult>(result);
        AssertError(http, 401, "authentication_error");
    }

    [Fact]
    public async Task CountTokens_WithoutKey_IsRejectedByTheCore()
    {
        var http = TestRequests.Create(_host.Services, "POST", "/v1/messages/count_tokens", "{\"model\":\"claude-opus-4-8\",\"messages\":[]}");

        var result = await Create<CountTokensFunction>().RunAsync(http.Request);

        Assert.IsType<EmptyResult>(result);
        AssertError(http, 401, "authentication_error");
    }

    [Fact]
    public async Task Models_WithoutKey_AreRejectedByTheCore()
    {
        var function = Create<ModelsFunction>();
        var list = TestRequests.Create(_host.Services, "GET", "/v1/models");
        var get = TestRequests.Create(_host.Services, "GET", "/v1/models/main-model");

        Assert.IsType<EmptyResult>(await function.ListAsync(list.Request));
        Assert.IsType<EmptyResult>(await function.GetAsync(get.Request, "main-model"));

        AssertError(list, 401, "authentication_error");
        AssertError(get, 401, "authentication_error");
    }

    [Theory]
    [InlineData("GET", "/v1/messages", "POST")]
    [InlineData("GET", "/v1/messages/count_tokens/", "POST")]
    [InlineData("POST", "/v1/models", "GET")]
    [InlineData("DELETE", "/v1/models/main-model", "GET")]
    [InlineData("POST", "/", "GET, HEAD")]
    [InlineData("POST", "/v1/me", "GET")]
    public async Task Fallback_KnownPathWithWrongMethod_Is405WithAllow(string method, string path, string allow)
    {
        var http = TestRequests.Create(_host.Services, method, path);

        var result = await Create<FallbackFunction>().RunAsync(http.Request);

        Assert.IsType<EmptyResult>(result);
        AssertError(http, 405, "invalid_request_error");
        Assert.Equal(allow, http.Response.Headers.Allow.ToString());
    }

    [Theory]
    [InlineData("GET", "/v2/messages")]
    [InlineData("POST", "/v1/complete")]
    [InlineData("GET", "/api/event_logging/batch")]
    [InlineData("GET", "/v1/models/a/b")]
    public async Task Fallback_UnknownPath_Is404(string method, string path)
    {
        var http = TestRequests.Create(_host.Services, method, path);

        await Create<FallbackFunction>().RunAsync(http.Request);

        AssertError(http, 404, "not_found_error");
    }

    [Theory]
    [InlineData("HEAD")]
    [InlineData("GET")]
    public async Task Fallback_ApiHello_AnswersLikeTheRoot(string method)
    {
        var http = TestRequests.Create(_host.Services, method, "/api/hello");

        await Create<FallbackFunction>().RunAsync(http.Request);

        Assert.Equal(200, http.Response.StatusCode);
        Assert.True(http.Response.Headers.ContainsKey("request-id"));
    }

    [Fact]
    public async Task Fallback_DoubledV1_ExplainsTheBaseUrl()
    {
        var http = TestRequests.Create(_host.Services, "POST", "/v1/v1/messages", "{}");

        await Create<FallbackFunction>().RunAsync(http.Request);

        AssertError(http, 404, "not_found_error");
        Assert.Contains("must not end in /v1", TestRequests.ResponseText(http));
    }

    [Fact]
    public async Task Fallback_ServedRoute_StillReachesItsEndpoint()
    {
        var root = TestRequests.Create(_host.Services, "GET", "/");
        var messages = TestRequests.Create(_host.Services, "POST", "/v1/messages", "{}");

        await Create<FallbackFunction>().RunAsync(root.Request);
        await Create<FallbackFunction>().RunAsync(messages.Request);

        Assert.Equal(200, root.Response.StatusCode);
        Assert.Contains("\"melious-gateway\"", TestRequests.ResponseText(root));
        AssertError(messages, 401, "authentication_error");
    }

    [Fact]
    public async Task WhoAmI_WithAMalformedKey_SaysWhatIsWrong_ThroughItsFunctionAndTheFallback()
    {
        var direct = TestRequests.Create(_host.Services, "GET", "/v1/me");
        direct.Request.Headers["x-api-key"] = "sk-ant-api03-not-a-melious-key";
        var viaFallback = TestRequests.Create(_host.Services, "GET", "/v1/me");
        viaFallback.Request.Headers["x-api-key"] = "sk-ant-api03-not-a-melious-key";

        await Create<WhoAmIFunction>().RunAsync(direct.Request);
        await Create<FallbackFunction>().RunAsync(viaFallback.Request);

        foreach (var http in new[] { direct, viaFallback })
        {
            AssertError(http, 401, "authentication_error");
            Assert.Contains("this is an Anthropic API key", TestRequests.ResponseText(http));
        }
    }

    private T Create<T>() => ActivatorUtilities.CreateInstance<T>(_host.Services);

    private static void AssertError(HttpContext http, int status, string type)
    {
        Assert.Equal(status, http.Response.StatusCode);
        using var json = JsonDocument.Parse(TestRequests.ResponseText(http));
        Assert.Equal("error", json.RootElement.GetProperty("type").GetString());
        Assert.Equal(type, json.RootElement.GetProperty("error").GetProperty("type").GetString());
    }
}

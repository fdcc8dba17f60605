using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>A scripted upstream, a gateway in front of it, and an API key: the unit of most functional tests.</summary>
public sealed class Scenario : IAsyncDisposable
{
    private readonly bool _owned;

    private Scenario(ScriptedUpstream upstream, TestGateway gateway, string key, bool owned)
    {
        _owned = owned;
        Upstream = upstream;
        Gateway = gateway;
        Key = key;
        Client = gateway.Client(key);
    }

    public ScriptedUpstream Upstream { get; }

    public TestGateway Gateway { get; }

    public string Key { get; }

    public HttpClient Client { get; }

    public static Task<Scenario> StartAsync(IGatewayTarget target, params string[] openAIData) =>
        StartAsync(target, (_, context) => Sse.WriteAsync(context, openAIData));

    /// <summary>
    /// A scenario on the self-host (<see cref="AzuriteFixture"/>) or on the shared Functions host (<see cref="FunctionsHostFixture"/>).
    /// Its key belongs to <paramref name="account"/>: a test that reads usage rows back on the shared Functions host
    /// gives an account of its own (<see cref="CatalogKit.Unique"/>), as other tests' rows share its tables.
    /// </summary>
    public static async Task<Scenario> StartAsync(IGatewayTarget target, Func<UpstreamRequest, HttpContext, Task> handler, IDictionary<string, string?>? settings = null, bool anthropicUpstream = false, string account = "acme")
    {
        var (upstream, gateway, owned) = await target.StartAsync(handler, settings, anthropicUpstream);
        var key = await gateway.CreateKeyAsync(account);
        return new Scenario(upstream, gateway, key, owned);
    }

    public static JsonObject Body(string model = "claude-sonnet-4-5-20250929", bool stream = false, string prompt = "hi", int maxTokens = 200)
    {
        var body = new JsonObject
        {
            ["model"] = model,
            ["max_tokens"] = maxTokens,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompt }),
        };
        if (stream)
        {
            body["stream"] = true;
        }

        return body;
    }

    public Task<HttpResponseMessage> PostAsync(JsonNode body, string path = "/v1/messages?beta=true", CancellationToken cancellationToken = default) =>
        PostAsync(body.ToJsonString(), path, cancellationToken);

    public Task<HttpResponseMessage> PostAsync(string body, string path = "/v1/messages?beta=true", CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        return Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken == default ? TestContext.Current.CancellationToken : cancellationToken);
    }

    /// <summary>
    /// Posts until the gateway stops answering 200 (a key change reaching it), at most for <paramref name="within"/>.
    /// The key cache applies changes after its TTL plus one storage round trip, which on a loaded machine can exceed
    /// the TTL alone; returns the first refusal (or the last 200) and how many requests were accepted before it.
    /// </summary>
    public async Task<(HttpResponseMessage Response, int Accepted)> PostUntilRefusedAsync(Func<JsonNode> body, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        var accepted = 0;
        while (true)
        {
            var response = await PostAsync(body());
            if (response.StatusCode != System.Net.HttpStatusCode.OK || DateTime.UtcNow >= deadline)
            {
                return (response, accepted);
            }

            accepted++;
            await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
            response.Dispose();
            await Task.Delay(TimeSpan.FromMilliseconds(200), TestContext.Current.CancellationToken);
        }
    }

    public async Task<JsonElement> JsonAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement;

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Gateway.DisposeAsync();
        if (_owned)
        {
            await Upstream.DisposeAsync();
        }
    }
}

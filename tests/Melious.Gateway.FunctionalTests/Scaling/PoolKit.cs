using System.Net;
using System.Text.Json.Nodes;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Routing;
using Melious.Gateway.Upstream;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Scaling;

/// <summary>N scripted replicas of one model (<see cref="Model"/>) behind one gateway, with the pool in the catalog.</summary>
internal sealed class PoolKit : IAsyncDisposable
{
    public const string Model = "pool-model";

    private PoolKit(List<ScriptedUpstream> replicas, TestGateway gateway, string key)
    {
        Replicas = replicas;
        Gateway = gateway;
        Key = key;
        Client = gateway.Client(key);
    }

    public List<ScriptedUpstream> Replicas { get; }

    public TestGateway Gateway { get; }

    public string Key { get; }

    public HttpClient Client { get; }

    public UpstreamPool Pool => Gateway.Services.GetRequiredService<UpstreamPool>();

    public HashSet<int> Stopped { get; } = [];

    /// <summary>Starts <paramref name="count"/> replicas that all run <paramref name="handler"/> (given the replica index).</summary>
    public static async Task<PoolKit> StartAsync(AzuriteFixture azurite, int count, Func<int, UpstreamRequest, HttpContext, Task> handler, IDictionary<string, string?>? settings = null)
    {
        var replicas = new List<ScriptedUpstream>();
        for (var i = 0; i < count; i++)
        {
            var index = i;
            replicas.Add(await ScriptedUpstream.StartAsync((request, context) => handler(index, request, context)));
        }

        var gateway = await TestGateway.StartAsync(azurite.ConnectionString, replicas[0].OpenAIBaseUrl, settings);
        var kit = new PoolKit(replicas, gateway, await gateway.CreateKeyAsync());
        var store = gateway.Services.GetRequiredService<ModelCatalogStore>();
        await store.UpsertModelAsync(Model, new Dictionary<string, object?>(), CancellationToken.None);
        foreach (var replica in replicas)
        {
            await store.UpsertEndpointAsync(Model, replica.OpenAIBaseUrl, null, null, CancellationToken.None);
        }

        await gateway.RefreshCatalogAsync();
        return kit;
    }

    public async Task AddReplicaAsync(ScriptedUpstream replica)
    {
        Replicas.Add(replica);
        await Gateway.Services.GetRequiredService<ModelCatalogStore>().UpsertEndpointAsync(Model, replica.OpenAIBaseUrl, null, null, CancellationToken.None);
        await Gateway.RefreshCatalogAsync();
    }

    public async Task StopReplicaAsync(int index)
    {
        Stopped.Add(index);
        await Replicas[index].DisposeAsync();
    }

    /// <summary>Which replica received a request (by the requests each recorded).</summary>
    public int ReplicaOf(UpstreamRequest request) => Replicas.FindIndex(r => r.Requests.Contains(request));

    public int[] Counts() => Replicas.Select(r => r.Requests.Count).ToArray();

    public static JsonObject Body(string prompt = "hi", bool stream = false, JsonArray? messages = null)
    {
        var body = new JsonObject
        {
            ["model"] = Model,
            ["max_tokens"] = 200,
            ["messages"] = messages ?? new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompt }),
        };
        if (stream)
        {
            body["stream"] = true;
        }

        return body;
    }

    public async Task<HttpResponseMessage> PostAsync(JsonNode body, string? session = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/messages?beta=true") { Content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8, "application/json") };
        if (session is not null)
        {
            request.Headers.Add("x-claude-code-session-id", session);
        }

        return await Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, TestContext.Current.CancellationToken);
    }

    /// <summary>Posts and reads the whole answer; returns the status and the body.</summary>
    public async Task<(HttpStatusCode Status, string Body)> SendAsync(JsonNode body, string? session = null)
    {
        using var response = await PostAsync(body, session);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Gateway.DisposeAsync();
        for (var i = 0; i < Replicas.Count; i++)
        {
            if (!Stopped.Contains(i))
            {
                await Replicas[i].DisposeAsync();
            }
        }
    }
}

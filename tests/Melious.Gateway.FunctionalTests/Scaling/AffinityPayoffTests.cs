using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Scaling;

/// <summary>
/// Does session affinity pay? Three scripted replicas model vLLM's prefix cache under load: a replica reports the
/// previous turn's prompt as <c>cached_tokens</c> only when it served that previous turn of the session (any other
/// replica has long evicted the prefix). A 20-turn session's cache-read share is then ~90% with affinity, and about a
/// third of that without.
/// </summary>
public sealed partial class AffinityPayoffTests(AzuriteFixture azurite)
{
    private const int TokensPerTurn = 1000;

    [GeneratedRegex("sess-[0-9a-f]{32}")]
    private static partial Regex SessionMarker();

    private static Task<PoolKit> StartAsync(AzuriteFixture azurite, string affinity)
    {
        var lastReplica = new ConcurrentDictionary<string, int>();
        return PoolKit.StartAsync(azurite, 3, (index, request, context) =>
        {
            var text = request.BodyText;
            var session = SessionMarker().Match(text).Value;
            var turns = request.Json.GetProperty("messages").EnumerateArray().Count(m => m.GetProperty("role").GetString() == "user");
            var prompt = TokensPerTurn * turns;
            var cached = lastReplica.TryGetValue(session, out var last) && last == index ? TokensPerTurn * (turns - 1) : 0;
            lastReplica[session] = index;
            return Sse.WriteAsync(context, Sse.TextAnswer(["ok"], prompt, cached));
        }, new Dictionary<string, string?> { ["Melious:Pools:Affinity"] = affinity });
    }

    /// <summary>Runs a 20-turn conversation and returns its cache-read share of all input tokens.</summary>
    private static async Task<double> CacheReadShareAsync(PoolKit kit)
    {
        var session = Guid.NewGuid().ToString();
        var marker = "sess-" + Guid.NewGuid().ToString("N");
        var messages = new JsonArray();
        long cacheRead = 0;
        long input = 0;
        for (var turn = 1; turn <= 20; turn++)
        {
            messages.Add(new JsonObject { ["role"] = "user", ["content"] = turn == 1 ? $"{marker}: fix the build" : $"turn {turn}" });
            var (status, body) = await kit.SendAsync(PoolKit.Body(messages: (JsonArray)messages.DeepClone()), session);
            Assert.Equal(HttpStatusCode.OK, status);
            var usage = JsonDocument.Parse(body).RootElement.GetProperty("usage");
            cacheRead += usage.GetProperty("cache_read_input_tokens").GetInt64();
            input += usage.GetProperty("input_tokens").GetInt64() + usage.GetProperty("cache_read_input_tokens").GetInt64();
            messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = "ok" });
        }

        Assert.Equal(TokensPerTurn * 210L, input);
        return cacheRead / (double)input;
    }

    [Fact]
    public async Task CacheReadShare_IsAbove90Percent_WithAffinity_AndAboutAThirdWithout()
    {
        double with;
        await using (var kit = await StartAsync(azurite, "session"))
        {
            with = await CacheReadShareAsync(kit);
        }

        var without = new List<double>();
        await using (var kit = await StartAsync(azurite, "none"))
        {
            for (var i = 0; i < 3; i++)
            {
                without.Add(await CacheReadShareAsync(kit));
            }
        }

        var message = $"cache-read share of a 20-turn session: {with:P1} with affinity, {without.Average():P1} without (runs: {string.Join(", ", without.Select(w => w.ToString("P1", System.Globalization.CultureInfo.InvariantCulture)))})";
        TestContext.Current.SendDiagnosticMessage(message);
        TestContext.Current.TestOutputHelper?.WriteLine(message);
        Assert.True(with >= 0.90, message);
        Assert.InRange(without.Average(), 0.05, 0.65);
    }
}

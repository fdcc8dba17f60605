using System.Net;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Http;

/// <summary>An Ollama upstream (auto-detected flavour) that streams reasoning inline as <c>&lt;think&gt;</c>, tags split across chunks.</summary>
public sealed class ThinkTagStreamTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly string[] Answer =
    [
        Sse.Role(),
        Sse.Content("<thi"),
        Sse.Content("nk>\nThe user wants"),
        Sse.Content(" a greeting.</"),
        Sse.Content("think>\n\nHello"),
        Sse.Content(" there!"),
        Sse.Finish("stop"),
        Sse.Usage(50, 12),
    ];

    [Fact]
    public async Task OllamaInlineThinking_BecomesAThinkingBlock()
    {
        await using var s = await Scenario.StartAsync(azurite, (_, context) => Sse.WriteAsync(context, Answer), new Dictionary<string, string?> { ["Melious:Upstream:Flavor"] = "ollama" });
        var response = await s.PostAsync(Scenario.Body("qwen3:8b", stream: true));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await SseEvents.ReadAllAsync(response, Ct);
        SseEvents.AssertGrammar(events);
        var starts = events.Where(e => e.Name == "content_block_start").Select(e => e.Data.GetProperty("content_block").GetProperty("type").GetString()).ToList();
        Assert.Equal(["thinking", "text"], starts);
        var thinking = string.Concat(events.Where(e => e.Name == "content_block_delta" && e.Data.GetProperty("delta").GetProperty("type").GetString() == "thinking_delta")
            .Select(e => e.Data.GetProperty("delta").GetProperty("thinking").GetString()));
        Assert.Equal("The user wants a greeting.", thinking);
        Assert.Equal("Hello there!", SseEvents.Text(events));
        Assert.Contains(events, e => e.Name == "content_block_delta" && e.Data.GetProperty("delta").GetProperty("type").GetString() == "signature_delta");
    }
}

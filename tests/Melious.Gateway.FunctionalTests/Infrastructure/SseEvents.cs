using System.Diagnostics;
using System.Net.ServerSentEvents;
using System.Text.Json;

namespace Melious.Gateway.FunctionalTests.Infrastructure;

public sealed record SseEvent(string Name, JsonElement Data, TimeSpan At)
{
    public string Type => Data.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
}

/// <summary>Reads an Anthropic SSE response as it arrives and checks the grammar clients depend on.</summary>
public static class SseEvents
{
    public static async Task<List<SseEvent>> ReadAllAsync(HttpResponseMessage response, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var events = new List<SseEvent>();
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        await foreach (var item in SseParser.Create(stream).EnumerateAsync(cancellationToken))
        {
            events.Add(new SseEvent(item.EventType, JsonDocument.Parse(item.Data).RootElement.Clone(), clock.Elapsed));
        }

        return events;
    }

    /// <summary>
    /// The Anthropic stream grammar (protocol.md §A.6): message_start first and once; blocks started at contiguous
    /// indices, one open at a time, deltas only to the open block with the matching delta type, every block stopped;
    /// then message_delta and message_stop — or an error event that ends the stream. Each event's name equals its data type.
    /// </summary>
    public static void AssertGrammar(IReadOnlyList<SseEvent> events, bool expectError = false)
    {
        Assert.NotEmpty(events);
        Assert.Equal("message_start", events[0].Name);
        var open = -1;
        string? openType = null;
        var next = 0;
        var sawDelta = false;
        var sawStop = false;
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            Assert.Equal(e.Name, e.Type);
            Assert.False(sawStop, $"event {e.Name} after message_stop");
            switch (e.Name)
            {
                case "message_start":
                    Assert.Equal(0, i);
                    break;
                case "ping":
                    break;
                case "content_block_start":
                    Assert.Equal(-1, open);
                    var index = e.Data.GetProperty("index").GetInt32();
                    Assert.Equal(next++, index);
                    open = index;
                    openType = e.Data.GetProperty("content_block").GetProperty("type").GetString();
                    break;
                case "content_block_delta":
                    Assert.Equal(open, e.Data.GetProperty("index").GetInt32());
                    var deltaType = e.Data.GetProperty("delta").GetProperty("type").GetString();
                    var allowed = openType switch
                    {
                        "text" => new[] { "text_delta", "citations_delta" },
                        "thinking" => ["thinking_delta", "signature_delta"],
                        "tool_use" or "server_tool_use" => ["input_json_delta"],
                        _ => [],
                    };
                    Assert.Contains(deltaType, allowed);
                    break;
                case "content_block_stop":
                    Assert.Equal(open, e.Data.GetProperty("index").GetInt32());
                    open = -1;
                    break;
                case "message_delta":
                    Assert.Equal(-1, open);
                    Assert.True(e.Data.GetProperty("usage").TryGetProperty("output_tokens", out _));
                    sawDelta = true;
                    break;
                case "message_stop":
                    Assert.True(sawDelta, "message_stop without message_delta");
                    sawStop = true;
                    break;
                case "error":
                    Assert.True(expectError, "unexpected error event: " + e.Data);
                    Assert.Equal(events.Count - 1, i);
                    Assert.True(e.Data.GetProperty("error").TryGetProperty("type", out _));
                    return;
                default:
                    Assert.Fail("unknown event " + e.Name);
                    break;
            }
        }

        Assert.False(expectError, "expected an error event");
        Assert.True(sawStop, "stream ended without message_stop");
    }

    public static string Text(IEnumerable<SseEvent> events) => string.Concat(events
        .Where(e => e.Name == "content_block_delta" && e.Data.GetProperty("delta").GetProperty("type").GetString() == "text_delta")
        .Select(e => e.Data.GetProperty("delta").GetProperty("text").GetString()));
}

using System.Text.Json.Nodes;
using Melious.Gateway.Translation;

namespace Melious.Gateway.Tests.Translation;

/// <summary>
/// A full Anthropic message turned into the stream events it stands for (the JSON answer of an Anthropic-native
/// upstream to a stream request): the events, replayed the way a client accumulates them, give back the message.
/// </summary>
public sealed class MessageAsEventsTests
{
    private static JsonObject Parse(string json) => JsonNode.Parse(json)!.AsObject();

    private static List<(string Event, JsonObject Data)> Events(string json) => MessageAsEvents.Convert(Parse(json)).ToList();

    [Fact]
    public void Citations_become_citations_deltas_before_the_text()
    {
        var events = Events("""
            {"type":"message","content":[{"type":"text","text":"Paris.","citations":[{"type":"char_location","cited_text":"Paris","document_index":0,"start_char_index":0,"end_char_index":5}]}],
             "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":2}}
            """);

        var start = events.Single(e => e.Event == "content_block_start").Data["content_block"]!;
        Assert.Equal("", (string?)start["text"]);
        Assert.Empty(start["citations"]!.AsArray());
        var deltas = events.Where(e => e.Event == "content_block_delta").Select(e => e.Data["delta"]!).ToList();
        Assert.Equal(["citations_delta", "text_delta"], deltas.Select(d => (string?)d["type"]));
        Assert.Equal("Paris", (string?)deltas[0]["citation"]!["cited_text"]);
        Assert.Equal("Paris.", (string?)deltas[1]["text"]);
    }

    [Fact]
    public void Blocks_the_gateway_does_not_know_come_whole_and_empty_ones_get_no_delta()
    {
        var events = Events("""
            {"type":"message","content":[
              {"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[{"type":"web_search_result","url":"https://example.com","title":"x"}]},
              {"type":"text","text":""},
              {"type":"tool_use","id":"toolu_1","name":"Ping","input":{}}],
             "stop_reason":"tool_use","stop_sequence":null}
            """);

        Assert.Equal(
            ["message_start", "content_block_start", "content_block_stop", "content_block_start", "content_block_stop", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
            events.Select(e => e.Event));
        var whole = events[1].Data["content_block"]!;
        Assert.Equal("https://example.com", (string?)whole["content"]![0]!["url"]);
        Assert.Equal([0, 1, 2], events.Where(e => e.Event == "content_block_start").Select(e => (int)e.Data["index"]!));
        Assert.Equal("{}", (string?)events[6].Data["delta"]!["partial_json"]);

        // No usage upstream: the delta still carries output_tokens (the gateway then bills its estimate).
        var delta = events.Single(e => e.Event == "message_delta").Data;
        Assert.Equal("tool_use", (string?)delta["delta"]!["stop_reason"]);
        Assert.Equal(0, (int)delta["usage"]!["output_tokens"]!);
    }

    [Fact]
    public void Message_start_has_no_content_stop_reason_or_output_and_keeps_unknown_fields()
    {
        var events = Events("""
            {"id":"msg_1","type":"message","role":"assistant","model":"up","content":[{"type":"text","text":"hi"}],
             "stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1},
             "container":{"id":"c1"},"context_management":{"applied_edits":[]}}
            """);

        var message = events[0].Data["message"]!.AsObject();
        Assert.Empty(message["content"]!.AsArray());
        Assert.Null(message["stop_reason"]);
        Assert.Equal(0, (int)message["usage"]!["output_tokens"]!);
        Assert.Equal(5, (int)message["usage"]!["input_tokens"]!);
        Assert.Equal("c1", (string?)message["container"]!["id"]);
        Assert.False(message.ContainsKey("context_management"));

        var delta = events.Single(e => e.Event == "message_delta").Data;
        Assert.Equal("max_tokens", (string?)delta["delta"]!["stop_reason"]);
        Assert.Equal(1, (int)delta["usage"]!["output_tokens"]!);
        Assert.NotNull(delta["context_management"]);
    }

    [Theory]
    [InlineData("""{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}""", true, false)]
    [InlineData("""{"error":{"message":"rate limited","code":429}}""", true, false)]
    [InlineData("""{"error":"Unauthorized"}""", true, false)]
    [InlineData("""{"type":"message","content":[]}""", false, true)]
    [InlineData("""{"content":[{"type":"text","text":"x"}]}""", false, true)]
    [InlineData("""{"type":"completion","completion":"x"}""", false, false)]
    [InlineData("""{"status":"ok"}""", false, false)]
    public void Error_and_message_bodies_are_told_apart(string json, bool isError, bool isMessage)
    {
        var root = Parse(json);
        Assert.Equal(isError, MessageAsEvents.IsError(root));
        Assert.Equal(isMessage, MessageAsEvents.IsMessage(root));
    }
}

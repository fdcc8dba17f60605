using System.IO.Pipelines;
using System.Text;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Streaming;
using Melious.Gateway.Tests.Support;
using Melious.Gateway.Usage;

namespace Melious.Gateway.Tests.Streaming;

/// <summary>Exact frames of <see cref="SseMessageWriter"/> (protocol.md §A.6 and §E).</summary>
public sealed class SseMessageWriterTests
{
    private static string Write(Action<SseMessageWriter> write, string model = "claude-sonnet-4-5-20250929")
    {
        var output = new MemoryStream();
        var pipe = PipeWriter.Create(output);
        var writer = new SseMessageWriter(pipe, model);
        write(writer);
        pipe.FlushAsync().AsTask().GetAwaiter().GetResult();
        return Encoding.UTF8.GetString(output.ToArray());
    }

    [Fact]
    public void Writes_every_frame_with_an_event_line_and_one_line_of_json()
    {
        var sse = Write(w =>
        {
            w.MessageStart("msg_013Zva2CMHLNnXjNJJKqJ2EF", new TokenUsage(377, 0, 0, 0, 0));
            w.Ping();
            w.ThinkingStart(0);
            w.ThinkingDelta(0, "Let me\\n\\\"think\\\""u8);
            w.SignatureDelta(0, "sig+/=");
            w.BlockStop(0);
            w.TextStart(1);
            w.TextDelta(1, "I'll check"u8);
            w.BlockStop(1);
            w.ToolUseStart(2, "toolu_01NRLabsLyVHZPKxbKvkfSMn", "get_weather");
            w.InputJsonDelta(2, ""u8);
            w.InputJsonDelta(2, "{\\\"locati"u8);
            w.InputJsonDelta(2, "on\\\": \\\"Paris\\\"}"u8);
            w.BlockStop(2);
            w.MessageDelta("tool_use", null, new TokenUsage(904, 4096, 0, 89, 6), null, null);
            w.MessageStop();
        });

        Assert.Equal(
            """
            event: message_start
            data: {"type":"message_start","message":{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":377,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}

            event: ping
            data: {"type":"ping"}

            event: content_block_start
            data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me\n\"think\""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"sig+/="}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":0}

            event: content_block_start
            data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"I'll check"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":1}

            event: content_block_start
            data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01NRLabsLyVHZPKxbKvkfSMn","name":"get_weather","input":{},"caller":{"type":"direct"}}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"locati"}}

            event: content_block_delta
            data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"on\": \"Paris\"}"}}

            event: content_block_stop
            data: {"type":"content_block_stop","index":2}

            event: message_delta
            data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":904,"cache_creation_input_tokens":0,"cache_read_input_tokens":4096,"output_tokens":89,"output_tokens_details":{"thinking_tokens":6}}}

            event: message_stop
            data: {"type":"message_stop"}


            """.ReplaceLineEndings("\n"),
            sse);
        SseGrammar.Validate(sse);
    }

    [Fact]
    public void Error_frame_escapes_only_what_json_requires()
    {
        var sse = Write(w =>
        {
            w.MessageStart("msg_013Zva2CMHLNnXjNJJKqJ2EF", default);
            w.Error("overloaded_error", "upstream \"gpu-3\" said: <b>größer</b> & \\ done\n");
        });
        Assert.EndsWith(
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"upstream \\\"gpu-3\\\" said: <b>größer</b> & \\\\ done\\n\"}}\n\n",
            sse);
        var parsed = SseGrammar.Validate(sse);
        Assert.Equal("upstream \"gpu-3\" said: <b>größer</b> & \\ done\n", (string?)parsed.Error!["error"]!["message"]);
    }

    [Fact]
    public void Model_tool_name_and_stop_sequence_are_escaped()
    {
        var sse = Write(
            w =>
            {
                w.MessageStart("msg_013Zva2CMHLNnXjNJJKqJ2EF", default);
                w.ToolUseStart(0, "toolu_01NRLabsLyVHZPKxbKvkfSMn", "mcp__ü\"name");
                w.InputJsonDelta(0, "{}"u8);
                w.BlockStop(0);
                w.MessageDelta("stop_sequence", "\"\"\"", default, null, null);
                w.MessageStop();
            },
            model: "my \"model\"");
        var parsed = SseGrammar.Validate(sse);
        Assert.Equal("my \"model\"", (string?)parsed.MessageStart["message"]!["model"]);
        Assert.Equal("mcp__ü\"name", parsed.Blocks[0].Name);
        Assert.Equal("\"\"\"", (string?)parsed.MessageDelta!["delta"]!["stop_sequence"]);
    }

    [Fact]
    public void Message_delta_carries_billing_cost_and_environment_impact_when_given()
    {
        var cost = new BillingCost { Currency = "USD", Amount = "0.012300000", Input = "0.002300000", Output = "0.010000000", CacheRead = "0.000000000", CacheWrite = "0.000000000" };
        var sse = Write(w =>
        {
            w.MessageStart("msg_013Zva2CMHLNnXjNJJKqJ2EF", default);
            w.MessageDelta("end_turn", null, new TokenUsage(1, 0, 0, 2, 0), cost, null);
            w.MessageStop();
        });
        var delta = SseGrammar.Validate(sse).MessageDelta!;
        Assert.Equal("USD", (string?)delta["billing_cost"]!["currency"]);
        Assert.False(delta.ContainsKey("environment_impact"));
    }

    [Fact]
    public void Tracks_pending_bytes_and_termination()
    {
        var pipe = PipeWriter.Create(new MemoryStream());
        var writer = new SseMessageWriter(pipe, "m");
        Assert.False(writer.HasPending);
        writer.Ping();
        Assert.True(writer.HasPending);
        writer.MarkFlushed();
        Assert.False(writer.HasPending);
        Assert.False(writer.Terminated);
        writer.Error("api_error", "x");
        Assert.True(writer.Terminated);
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Melious.Gateway.FunctionalTests.Clients;

/// <summary>
/// Answers for a scripted upstream in Anthropic mode (<c>Scenario.StartAsync(..., anthropicUpstream: true)</c>):
/// complete Anthropic Messages SSE streams, written the way api.anthropic.com writes them.
/// </summary>
internal static class AnthropicUpstream
{
    public static Task TextAsync(HttpContext context, string model, string text, int inputTokens = 1000) =>
        WriteAsync(context,
        [
            MessageStart(model, inputTokens),
            ("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = 0, ["content_block"] = new JsonObject { ["type"] = "text", ["text"] = "" } }),
            ("content_block_delta", Delta(0, new JsonObject { ["type"] = "text_delta", ["text"] = text })),
            ("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = 0 }),
            MessageDelta("end_turn", inputTokens, 12),
            ("message_stop", new JsonObject { ["type"] = "message_stop" }),
        ]);

    /// <summary>A tool_use block whose input is streamed as <c>input_json_delta</c> fragments.</summary>
    public static Task ToolUseAsync(HttpContext context, string model, string id, string name, JsonObject input, int inputTokens = 1000)
    {
        var json = input.ToJsonString();
        var third = json.Length / 3;
        return WriteAsync(context,
        [
            MessageStart(model, inputTokens),
            ("content_block_start", new JsonObject { ["type"] = "content_block_start", ["index"] = 0, ["content_block"] = new JsonObject { ["type"] = "tool_use", ["id"] = id, ["name"] = name, ["input"] = new JsonObject() } }),
            ("content_block_delta", Delta(0, new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = "" })),
            ("content_block_delta", Delta(0, new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = json[..third] })),
            ("content_block_delta", Delta(0, new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = json[third..] })),
            ("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = 0 }),
            MessageDelta("tool_use", inputTokens, 30),
            ("message_stop", new JsonObject { ["type"] = "message_stop" }),
        ]);
    }

    private static (string, JsonObject) MessageStart(string model, int inputTokens) => ("message_start", new JsonObject
    {
        ["type"] = "message_start",
        ["message"] = new JsonObject
        {
            ["id"] = "msg_01" + Guid.NewGuid().ToString("N")[..22],
            ["type"] = "message",
            ["role"] = "assistant",
            ["model"] = model,
            ["content"] = new JsonArray(),
            ["stop_reason"] = null,
            ["stop_sequence"] = null,
            ["usage"] = new JsonObject { ["input_tokens"] = inputTokens, ["cache_creation_input_tokens"] = 0, ["cache_read_input_tokens"] = 0, ["output_tokens"] = 1 },
        },
    });

    private static (string, JsonObject) MessageDelta(string stopReason, int inputTokens, int outputTokens) => ("message_delta", new JsonObject
    {
        ["type"] = "message_delta",
        ["delta"] = new JsonObject { ["stop_reason"] = stopReason, ["stop_sequence"] = null },
        ["usage"] = new JsonObject { ["input_tokens"] = inputTokens, ["output_tokens"] = outputTokens },
    });

    private static JsonObject Delta(int index, JsonObject delta) => new() { ["type"] = "content_block_delta", ["index"] = index, ["delta"] = delta };

    private static async Task WriteAsync(HttpContext context, IEnumerable<(string Name, JsonObject Data)> events)
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        foreach (var (name, data) in events)
        {
            await context.Response.WriteAsync($"event: {name}\ndata: {data.ToJsonString()}\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
    }

    /// <summary>True when an Anthropic request body's messages carry a tool_result block.</summary>
    public static bool HasToolResult(JsonElement body) =>
        body.GetProperty("messages").EnumerateArray().Any(m =>
            m.GetProperty("content") is { ValueKind: JsonValueKind.Array } content
            && content.EnumerateArray().Any(b => b.TryGetProperty("type", out var t) && t.GetString() == "tool_result"));
}

using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Melious.Gateway.Tests.Support;

/// <summary>One content block as a client (the TS SDK's MessageStream) would accumulate it from the events.</summary>
internal sealed record StreamBlock(string Type, int Index)
{
    public StringBuilder Text { get; } = new();

    public StringBuilder PartialJson { get; } = new();

    public StringBuilder Signature { get; } = new();

    public string? Id { get; init; }

    public string? Name { get; init; }

    public int Deltas { get; set; }

    /// <summary>The <c>content</c> of a <c>web_search_tool_result</c> block (complete in its content_block_start).</summary>
    public JsonNode? Content { get; init; }

    /// <summary>Citations a text block received as <c>citations_delta</c>.</summary>
    public JsonArray Citations { get; } = [];

    public bool Stopped { get; set; }
}

/// <summary>What a client sees at the end of a stream.</summary>
internal sealed record ParsedStream(
    IReadOnlyList<(string Event, JsonObject Data)> Events,
    IReadOnlyList<StreamBlock> Blocks,
    JsonObject MessageStart,
    JsonObject? MessageDelta,
    JsonObject? Error)
{
    public bool Completed => MessageDelta is not null && Error is null;
}

/// <summary>
/// Checks Anthropic SSE output against the grammar and the invariants the SDK and Claude Code rely on
/// (protocol.md §A.6, claude-code.md §4): every frame is <c>event: X\ndata: {json}\n\n</c> with
/// <c>data.type == X</c>; message_start first and once; block indices 0,1,2… in start order; one open block;
/// deltas only to the open block and of its type; every block stopped; message_delta then message_stop last,
/// or an <c>error</c> event last with no message_stop. Plus the gateway's own rules: no empty or whitespace-only
/// text block, a non-empty signature on every thinking block, tool input streamed as input_json_delta that parses to
/// an object, and tool ids unique and <c>^[a-zA-Z0-9_-]+$</c>. Server tools (web search): a <c>server_tool_use</c>
/// block (id <c>srvtoolu_…</c>, input streamed like a tool's) is answered, later in the same message and before
/// message_delta, by exactly one <c>web_search_tool_result</c> block naming its id, which carries its whole content
/// in content_block_start (an array of <c>web_search_result</c> items with url, title, encrypted_content and
/// page_age, or a <c>web_search_tool_result_error</c> with a known error code) and has no deltas.
/// </summary>
internal static class SseGrammar
{
    public static ParsedStream Validate(string sse, bool toolInputMustParse = true)
    {
        Assert.False(string.IsNullOrEmpty(sse), "the stream is empty");
        Assert.True(sse.EndsWith("\n\n", StringComparison.Ordinal), "the stream must end with a complete frame (\\n\\n)");
        Assert.DoesNotContain("\r", sse);

        var frames = sse[..^2].Split("\n\n");
        var events = new List<(string, JsonObject)>(frames.Length);
        foreach (var frame in frames)
        {
            var lines = frame.Split('\n');
            Assert.True(lines.Length == 2, $"a frame must be exactly an event: line and a data: line, got:\n{frame}");
            Assert.StartsWith("event: ", lines[0]);
            Assert.StartsWith("data: ", lines[1]);
            var name = lines[0]["event: ".Length..];
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(lines[1]["data: ".Length..]);
            }
            catch (JsonException ex)
            {
                Assert.Fail($"data of {name} is not JSON ({ex.Message}):\n{lines[1]}");
                throw;
            }

            var data = Assert.IsType<JsonObject>(node);
            Assert.Equal(name, (string?)data["type"]);
            events.Add((name, data));
        }

        Assert.True(events.Count > 0);
        Assert.Equal("message_start", events[0].Item1);
        var start = events[0].Item2;
        var message = Assert.IsType<JsonObject>(start["message"]);
        Assert.Equal("message", (string?)message["type"]);
        Assert.Equal("assistant", (string?)message["role"]);
        Assert.Matches("^msg_[A-Za-z0-9]{24}$", (string?)message["id"]);
        Assert.Empty(Assert.IsType<JsonArray>(message["content"]));
        Assert.True(message.ContainsKey("stop_reason") && message["stop_reason"] is null, "message_start.stop_reason must be present and null");
        Assert.True(message.ContainsKey("stop_sequence") && message["stop_sequence"] is null, "message_start.stop_sequence must be present and null");
        AssertUsage(Assert.IsType<JsonObject>(message["usage"]));

        var blocks = new List<StreamBlock>();
        StreamBlock? open = null;
        JsonObject? messageDelta = null;
        JsonObject? error = null;
        var stopped = false;
        var toolIds = new HashSet<string>(StringComparer.Ordinal);
        var unanswered = new List<string>();
        for (var i = 1; i < events.Count; i++)
        {
            var (name, data) = events[i];
            Assert.False(stopped, $"event {name} after message_stop");
            Assert.True(error is null, $"event {name} after error");
            switch (name)
            {
                case "message_start":
                    Assert.Fail("message_start sent twice");
                    break;
                case "ping":
                    break;
                case "content_block_start":
                {
                    Assert.True(messageDelta is null, "content_block_start after message_delta");
                    Assert.True(open is null, $"content_block_start while block {open?.Index} is open");
                    var index = (int)data["index"]!;
                    Assert.Equal(blocks.Count, index);
                    var block = Assert.IsType<JsonObject>(data["content_block"]);
                    var type = (string)block["type"]!;
                    switch (type)
                    {
                        case "text":
                            Assert.Equal("""{"type":"text","text":""}""", block.ToJsonString());
                            open = new StreamBlock(type, index);
                            break;
                        case "thinking":
                            Assert.Equal("""{"type":"thinking","thinking":"","signature":""}""", block.ToJsonString());
                            open = new StreamBlock(type, index);
                            break;
                        case "tool_use":
                            var id = (string)block["id"]!;
                            Assert.Matches("^[a-zA-Z0-9_-]+$", id);
                            Assert.True(toolIds.Add(id), $"tool_use id {id} is not unique");
                            var toolName = (string)block["name"]!;
                            Assert.False(string.IsNullOrEmpty(toolName), "tool_use without a name");
                            Assert.Empty(Assert.IsType<JsonObject>(block["input"]));
                            Assert.Equal(["type", "id", "name", "input", "caller"], block.Select(p => p.Key).ToArray());
                            Assert.Equal("direct", (string?)block["caller"]?["type"]);
                            open = new StreamBlock(type, index) { Id = id, Name = toolName };
                            break;
                        case "server_tool_use":
                        {
                            var serverId = (string)block["id"]!;
                            Assert.Matches("^srvtoolu_[a-zA-Z0-9_]+$", serverId);
                            Assert.True(toolIds.Add(serverId), $"server_tool_use id {serverId} is not unique");
                            Assert.Equal("web_search", (string?)block["name"]);
                            Assert.Empty(Assert.IsType<JsonObject>(block["input"]));
                            Assert.Equal(["type", "id", "name", "input"], block.Select(p => p.Key).ToArray());
                            unanswered.Add(serverId);
                            open = new StreamBlock(type, index) { Id = serverId, Name = (string)block["name"]! };
                            break;
                        }

                        case "web_search_tool_result":
                        {
                            var serverId = (string?)block["tool_use_id"];
                            Assert.True(serverId is not null && unanswered.Remove(serverId), $"web_search_tool_result for {serverId}, which is no unanswered server_tool_use");
                            Assert.Equal(["type", "tool_use_id", "content"], block.Select(p => p.Key).ToArray());
                            CheckSearchContent(block["content"]);
                            open = new StreamBlock(type, index) { Id = serverId, Content = block["content"]!.DeepClone() };
                            break;
                        }

                        default:
                            Assert.Fail($"unexpected content block type {type}");
                            break;
                    }

                    blocks.Add(open!);
                    break;
                }

                case "content_block_delta":
                {
                    var index = (int)data["index"]!;
                    Assert.True(open is not null && open.Index == index, $"content_block_delta for index {index}, but the open block is {open?.Index.ToString() ?? "none"}");
                    var delta = Assert.IsType<JsonObject>(data["delta"]);
                    var type = (string)delta["type"]!;
                    switch (type)
                    {
                        case "text_delta":
                            Assert.Equal("text", open!.Type);
                            open.Text.Append((string)delta["text"]!);
                            break;
                        case "citations_delta":
                        {
                            Assert.Equal("text", open!.Type);
                            var citation = Assert.IsType<JsonObject>(delta["citation"]);
                            Assert.Equal("web_search_result_location", (string?)citation["type"]);
                            Assert.True(Uri.TryCreate((string?)citation["url"], UriKind.Absolute, out _), $"citation url {citation["url"]}");
                            Assert.NotNull((string?)citation["cited_text"]);
                            Assert.False(string.IsNullOrEmpty((string?)citation["encrypted_index"]), "citation without encrypted_index");
                            open.Citations.Add(citation.DeepClone());
                            break;
                        }

                        case "thinking_delta":
                            Assert.Equal("thinking", open!.Type);
                            Assert.True(open.Signature.Length == 0, "thinking_delta after signature_delta");
                            open.Text.Append((string)delta["thinking"]!);
                            break;
                        case "signature_delta":
                            Assert.Equal("thinking", open!.Type);
                            open.Signature.Append((string)delta["signature"]!);
                            break;
                        case "input_json_delta":
                            Assert.Contains(open!.Type, (string[])["tool_use", "server_tool_use"]);
                            open.PartialJson.Append((string)delta["partial_json"]!);
                            break;
                        default:
                            Assert.Fail($"unexpected delta type {type}");
                            break;
                    }

                    open!.Deltas++;
                    break;
                }

                case "content_block_stop":
                {
                    var index = (int)data["index"]!;
                    Assert.True(open is not null && open.Index == index, $"content_block_stop for index {index}, but the open block is {open?.Index.ToString() ?? "none"}");
                    CheckClosedBlock(open!, toolInputMustParse);
                    open!.Stopped = true;
                    open = null;
                    break;
                }

                case "message_delta":
                {
                    Assert.True(open is null, $"message_delta while block {open?.Index} is open");
                    Assert.True(messageDelta is null, "message_delta sent twice");
                    Assert.True(unanswered.Count == 0, $"message_delta with server_tool_use {string.Join(", ", unanswered)} unanswered");
                    messageDelta = data;
                    var delta = Assert.IsType<JsonObject>(data["delta"]);
                    Assert.True(delta.ContainsKey("stop_reason"), "message_delta.delta.stop_reason missing");
                    Assert.True(delta.ContainsKey("stop_sequence"), "message_delta.delta.stop_sequence missing");
                    Assert.Contains((string?)delta["stop_reason"], StopReasons);
                    AssertUsage(Assert.IsType<JsonObject>(data["usage"]));
                    break;
                }

                case "message_stop":
                    Assert.True(messageDelta is not null, "message_stop without message_delta");
                    stopped = true;
                    break;
                case "error":
                {
                    var detail = Assert.IsType<JsonObject>(data["error"]);
                    Assert.Contains((string?)detail["type"], ErrorTypes);
                    Assert.False(string.IsNullOrEmpty((string?)detail["message"]), "error without a message");
                    error = data;
                    break;
                }

                default:
                    Assert.Fail($"unexpected event {name}");
                    break;
            }
        }

        if (error is null)
        {
            Assert.True(stopped, "the stream ended without message_stop or error");
            foreach (var block in blocks)
            {
                Assert.True(block.Stopped, $"block {block.Index} was never stopped");
            }
        }

        return new ParsedStream(events, blocks, start, messageDelta, error);
    }

    private static readonly string?[] StopReasons = ["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", "model_context_window_exceeded"];

    private static readonly string?[] ErrorTypes =
        ["invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error", "request_too_large", "rate_limit_error", "api_error", "timeout_error", "overloaded_error"];

    private static void CheckClosedBlock(StreamBlock block, bool toolInputMustParse)
    {
        switch (block.Type)
        {
            case "text":
                // Claude Code echoes text blocks back; a real Anthropic upstream rejects empty or whitespace-only
                // ones (claude-code.md §9.8, "text content blocks must contain non-whitespace text").
                Assert.False(string.IsNullOrWhiteSpace(block.Text.ToString()), $"text block {block.Index} is empty or whitespace only");
                break;
            case "thinking":
                Assert.True(block.Signature.Length > 0, $"thinking block {block.Index} has no signature_delta");
                break;
            case "web_search_tool_result":
                Assert.True(block.Deltas == 0, $"web_search_tool_result block {block.Index} has deltas");
                break;
            case "tool_use" or "server_tool_use":
                // Input only in content_block_start is lost by Claude Code: it must come as input_json_delta (claude-code.md §4).
                Assert.True(block.Deltas > 0, $"tool_use block {block.Index} has no input_json_delta");
                if (!toolInputMustParse)
                {
                    break;
                }

                JsonNode? input;
                try
                {
                    input = JsonNode.Parse(block.PartialJson.ToString());
                }
                catch (JsonException ex)
                {
                    Assert.Fail($"tool_use block {block.Index} input is not JSON ({ex.Message}): {block.PartialJson}");
                    throw;
                }

                Assert.IsType<JsonObject>(input);
                break;
        }
    }

    private static readonly string[] SearchErrorCodes = ["too_many_requests", "invalid_input", "max_uses_exceeded", "query_too_long", "unavailable"];

    private static void CheckSearchContent(JsonNode? content)
    {
        if (content is JsonObject error)
        {
            Assert.Equal("web_search_tool_result_error", (string?)error["type"]);
            Assert.Contains((string?)error["error_code"], SearchErrorCodes);
            return;
        }

        foreach (var item in Assert.IsType<JsonArray>(content))
        {
            var result = Assert.IsType<JsonObject>(item);
            Assert.Equal("web_search_result", (string?)result["type"]);
            Assert.True(Uri.TryCreate((string?)result["url"], UriKind.Absolute, out _), $"web_search_result url {result["url"]}");
            Assert.False(string.IsNullOrEmpty((string?)result["title"]), "web_search_result without a title");
            Assert.False(string.IsNullOrEmpty((string?)result["encrypted_content"]), "web_search_result without encrypted_content");
            Assert.True(result.ContainsKey("page_age"), "web_search_result without page_age (null when unknown)");
        }
    }

    private static void AssertUsage(JsonObject usage)
    {
        foreach (var key in new[] { "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens" })
        {
            Assert.True(usage[key] is JsonValue value && value.GetValueKind() == JsonValueKind.Number && (long)value >= 0, $"usage.{key} must be a non-negative number");
        }
    }

    /// <summary>
    /// The stream's blocks in the shape of a non-streaming <c>Message.content</c>. A tool input that does not parse
    /// (invalid upstream JSON streamed through) is taken from <paramref name="repaired"/>, the aggregator's output.
    /// </summary>
    public static string ToContent(ParsedStream stream, JsonArray? repaired = null)
    {
        var content = new JsonArray();
        for (var i = 0; i < stream.Blocks.Count; i++)
        {
            var block = stream.Blocks[i];
            content.Add(block.Type switch
            {
                "text" when block.Citations.Count > 0 => new JsonObject { ["type"] = "text", ["text"] = block.Text.ToString(), ["citations"] = block.Citations.DeepClone() },
                "text" => new JsonObject { ["type"] = "text", ["text"] = block.Text.ToString() },
                "thinking" => new JsonObject { ["type"] = "thinking", ["thinking"] = block.Text.ToString(), ["signature"] = block.Signature.ToString() },
                "server_tool_use" => new JsonObject { ["type"] = "server_tool_use", ["id"] = block.Id, ["name"] = block.Name, ["input"] = JsonNode.Parse(block.PartialJson.ToString()) },
                "web_search_tool_result" => new JsonObject { ["type"] = "web_search_tool_result", ["tool_use_id"] = block.Id, ["content"] = block.Content!.DeepClone() },
                _ => new JsonObject { ["type"] = "tool_use", ["id"] = block.Id, ["name"] = block.Name, ["input"] = ParseOr(block.PartialJson.ToString(), repaired?[i]?["input"]), ["caller"] = new JsonObject { ["type"] = "direct" } },
            });
        }

        return content.ToJsonString();
    }

    private static JsonNode? ParseOr(string json, JsonNode? fallback)
    {
        try
        {
            return JsonNode.Parse(json);
        }
        catch (JsonException) when (fallback is not null)
        {
            return fallback.DeepClone();
        }
    }
}

using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Melious.Gateway.FunctionalTests.Reliability;

/// <summary>One fuzz case: the body bytes, whether it asked for a stream, and the mutations applied (for the report).</summary>
internal sealed record FuzzCase(int Index, byte[] Body, string Mutations);

/// <summary>
/// Seeded generator of hostile Messages requests, derived from valid Claude Code-style requests (billing-header system
/// block, role:system message, tools, thinking, tool_use/tool_result turns, images) by 0–3 mutations each: truncation,
/// wrong types, huge strings, deep nesting, invalid UTF-8, unknown block types, huge tool schemas, invalid base64,
/// extreme max_tokens, thousands of messages, byte flips, duplicated keys and nulls. The same seed gives the same cases.
/// </summary>
internal sealed class FuzzCorpus(int seed)
{
    // A 1×1 PNG.
    private const string Png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

    private static readonly (string Name, int Weight)[] Mutations =
    [
        ("truncate", 10), ("wrong-type", 14), ("huge-string", 2), ("deep-nesting", 6), ("invalid-utf8", 8),
        ("unknown-block-type", 8), ("huge-tool-schema", 2), ("invalid-base64", 5), ("max-tokens", 8), ("many-messages", 2),
        ("byte-flips", 10), ("duplicate-keys", 8), ("nulls", 12), ("odd-text", 5),
    ];

    private readonly Random _random = new(seed);

    private static readonly HashSet<string> ByteMutations = ["truncate", "invalid-utf8", "byte-flips"];

    private readonly Dictionary<string, string> _deep = new(StringComparer.Ordinal);

    public FuzzCase Next(int index)
    {
        _deep.Clear();
        var root = Base(_random.Next(5));
        var count = _random.Next(10) switch { 0 => 0, < 6 => 1, < 9 => 2, _ => 3 };
        var names = Enumerable.Range(0, count).Select(_ => Pick()).ToList();
        foreach (var name in names.Where(n => !ByteMutations.Contains(n) && n != "duplicate-keys"))
        {
            MutateTree(name, root);
        }

        var bytes = names.Contains("duplicate-keys") ? DuplicateKeys(root) : Serialize(root);
        foreach (var name in names.Where(ByteMutations.Contains))
        {
            bytes = MutateBytes(name, bytes);
        }

        return new FuzzCase(index, bytes, names.Count == 0 ? "none" : string.Join('+', names));
    }

    /// <summary>Serializes without a depth limit, expanding deep-nesting placeholders into their raw text.</summary>
    private byte[] Serialize(JsonNode root)
    {
        var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { SkipValidation = true, MaxDepth = 100_000 }))
        {
            root.WriteTo(writer);
        }

        return Expand(stream.ToArray());
    }

    private byte[] Expand(byte[] bytes)
    {
        if (_deep.Count == 0)
        {
            return bytes;
        }

        var text = Encoding.UTF8.GetString(bytes);
        foreach (var (placeholder, raw) in _deep)
        {
            text = text.Replace($"\"{placeholder}\"", raw, StringComparison.Ordinal);
        }

        return Encoding.UTF8.GetBytes(text);
    }

    private string Pick()
    {
        var total = Mutations.Sum(m => m.Weight);
        var roll = _random.Next(total);
        foreach (var (name, weight) in Mutations)
        {
            if ((roll -= weight) < 0)
            {
                return name;
            }
        }

        return Mutations[^1].Name;
    }

    // ---------- valid bases ----------

    internal static JsonObject Base(int kind)
    {
        var billing = new JsonObject { ["type"] = "text", ["text"] = "x-anthropic-billing-header: cc_version=2.1.197.f2f; cc_entrypoint=cli; cch=3f2a1;" };
        var system = new JsonArray(
            billing,
            new JsonObject { ["type"] = "text", ["text"] = "You are Claude Code, Anthropic's official CLI for Claude.", ["cache_control"] = new JsonObject { ["type"] = "ephemeral" } },
            new JsonObject { ["type"] = "text", ["text"] = "Be concise. Use the tools.", ["cache_control"] = new JsonObject { ["type"] = "ephemeral" } });
        var tools = new JsonArray(
            Tool("Bash", new JsonObject { ["command"] = new JsonObject { ["type"] = "string" }, ["timeout"] = new JsonObject { ["type"] = "number", ["maximum"] = 600000 } }, "command"),
            Tool("Read", new JsonObject { ["file_path"] = new JsonObject { ["type"] = "string" }, ["offset"] = new JsonObject { ["type"] = "integer", ["minimum"] = 0 } }, "file_path"),
            Tool("mcp__github__create_issue", new JsonObject
            {
                ["title"] = new JsonObject { ["type"] = "string", ["maxLength"] = 256 },
                ["labels"] = new JsonObject { ["type"] = "array", ["items"] = new JsonObject { ["type"] = "string", ["enum"] = new JsonArray("bug", "feature") } },
                ["body"] = new JsonObject { ["anyOf"] = new JsonArray(new JsonObject { ["type"] = "string" }, new JsonObject { ["type"] = "null" }) },
            }, "title"));
        var userId = JsonSerializer.Serialize(new { device_id = new string('a', 64), account_uuid = "", session_id = "5b1c2a9e-8f5e-4a53-9a3c-1c2d3e4f5a6b" });

        JsonObject body = kind switch
        {
            0 => new JsonObject
            {
                ["model"] = "claude-opus-4-8",
                ["max_tokens"] = 64000,
                ["stream"] = true,
                ["system"] = system,
                ["messages"] = new JsonArray(
                    new JsonObject { ["role"] = "user", ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "text", ["text"] = "<system-reminder>Today's date is 2026-11-23.</system-reminder>" },
                        new JsonObject { ["type"] = "text", ["text"] = "list the files", ["cache_control"] = new JsonObject { ["type"] = "ephemeral" } }) },
                    new JsonObject { ["role"] = "system", ["content"] = "<MCP server instructions: use github tools for issues>" },
                    new JsonObject { ["role"] = "assistant", ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "thinking", ["thinking"] = "I should run ls.", ["signature"] = "c2lnbmF0dXJl" },
                        new JsonObject { ["type"] = "text", ["text"] = "" },
                        new JsonObject { ["type"] = "tool_use", ["id"] = "toolu_01ABCDEFGHIJKLMNOPQRSTUV", ["name"] = "Bash", ["input"] = new JsonObject { ["command"] = "ls" } }) },
                    new JsonObject { ["role"] = "user", ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = "toolu_01ABCDEFGHIJKLMNOPQRSTUV", ["content"] = "a.txt\nb.png", ["is_error"] = false },
                        new JsonObject { ["type"] = "text", ["text"] = "<system-reminder>ok</system-reminder>", ["cache_control"] = new JsonObject { ["type"] = "ephemeral" } }) }),
                ["tools"] = tools,
                ["metadata"] = new JsonObject { ["user_id"] = userId },
                ["thinking"] = new JsonObject { ["type"] = "adaptive" },
                ["context_management"] = new JsonObject { ["edits"] = new JsonArray(new JsonObject { ["type"] = "clear_thinking_20251015", ["keep"] = "all" }) },
                ["output_config"] = new JsonObject { ["effort"] = "high" },
            },
            1 => new JsonObject
            {
                ["model"] = "claude-haiku-4-5-20251001",
                ["max_tokens"] = 32000,
                ["temperature"] = 1,
                ["system"] = new JsonArray(billing.DeepClone(), new JsonObject { ["type"] = "text", ["text"] = "Summarize this coding conversation in under 50 characters." }),
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Please fix the failing test in src/app.ts" }),
                ["metadata"] = new JsonObject { ["user_id"] = "user_" + new string('b', 64) + "_account__session_5b1c2a9e-8f5e-4a53-9a3c-1c2d3e4f5a6b" },
            },
            2 => new JsonObject
            {
                ["model"] = "claude-sonnet-4-5-20250929",
                ["max_tokens"] = 8192,
                ["system"] = system,
                ["tools"] = tools,
                ["tool_choice"] = new JsonObject { ["type"] = "auto" },
                ["messages"] = new JsonArray(
                    new JsonObject { ["role"] = "user", ["content"] = "What is in screenshot.png?" },
                    new JsonObject { ["role"] = "assistant", ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "tool_use", ["id"] = "toolu_02", ["name"] = "Read", ["input"] = new JsonObject { ["file_path"] = "/tmp/screenshot.png" } }) },
                    new JsonObject { ["role"] = "user", ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = "toolu_02", ["content"] = new JsonArray(
                            new JsonObject { ["type"] = "image", ["source"] = new JsonObject { ["type"] = "base64", ["media_type"] = "image/png", ["data"] = Png } }) },
                        new JsonObject { ["type"] = "image", ["source"] = new JsonObject { ["type"] = "base64", ["media_type"] = "image/png", ["data"] = Png } }) }),
            },
            3 => new JsonObject
            {
                ["model"] = "claude-haiku-4-5-20251001",
                ["max_tokens"] = 4096,
                ["stream"] = true,
                ["temperature"] = 1,
                ["stop_sequences"] = new JsonArray("</done>", "\n\nHuman:"),
                ["system"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "x-anthropic-billing-header: cc_version=2.1.197.f2f; cc_entrypoint=cli; cc_is_subagent=true;" }),
                ["tools"] = tools,
                ["thinking"] = new JsonObject { ["type"] = "disabled" },
                ["messages"] = new JsonArray(
                    new JsonObject { ["role"] = "user", ["content"] = "Explore the repository layout" },
                    new JsonObject { ["role"] = "assistant", ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "tool_use", ["id"] = "toolu_03", ["name"] = "Bash", ["input"] = new JsonObject { ["command"] = "find . -maxdepth 2" } },
                        new JsonObject { ["type"] = "tool_use", ["id"] = "toolu_04", ["name"] = "Read", ["input"] = new JsonObject { ["file_path"] = "README.md" } }) },
                    new JsonObject { ["role"] = "user", ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = "toolu_04", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "# Readme" }) },
                        new JsonObject { ["type"] = "tool_result", ["tool_use_id"] = "toolu_03", ["content"] = "File does not exist.", ["is_error"] = true }) }),
            },
            _ => new JsonObject
            {
                ["model"] = "qwen3-coder",
                ["max_tokens"] = 32000,
                ["stream"] = true,
                ["system"] = system,
                ["thinking"] = new JsonObject { ["type"] = "enabled", ["budget_tokens"] = 31999 },
                ["messages"] = new JsonArray(
                    new JsonObject { ["role"] = "user", ["content"] = "hello" },
                    new JsonObject { ["role"] = "system", ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "text", ["text"] = "agent types and skills", ["cache_control"] = new JsonObject { ["type"] = "ephemeral" } }) },
                    new JsonObject { ["role"] = "user", ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "go on" }) }),
                ["metadata"] = new JsonObject { ["user_id"] = userId },
            },
        };
        return body;
    }

    private static JsonObject Tool(string name, JsonObject properties, string required) => new()
    {
        ["name"] = name,
        ["description"] = $"The {name} tool.",
        ["input_schema"] = new JsonObject
        {
            ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
            ["type"] = "object",
            ["properties"] = properties,
            ["required"] = new JsonArray(required),
            ["additionalProperties"] = false,
        },
    };

    // ---------- tree mutations ----------

    private void MutateTree(string name, JsonObject root)
    {
        switch (name)
        {
            case "wrong-type":
                Replace(root, RandomNode(root), WrongTypeValue());
                break;
            case "huge-string":
                var strings = Nodes(root).Where(n => n.Node is JsonValue v && v.GetValueKind() == JsonValueKind.String).ToList();
                if (strings.Count > 0)
                {
                    Replace(root, strings[_random.Next(strings.Count)], JsonValue.Create(RandomText(_random.Next(64 * 1024, 1024 * 1024))));
                }

                break;
            case "deep-nesting":
                Replace(root, RandomNode(root), Deep(_random.Next(4) switch { 0 => _random.Next(20, 127), 1 => _random.Next(127, 131), 2 => _random.Next(131, 2_000), _ => 50_000 }));
                break;
            case "unknown-block-type":
                var blocks = Nodes(root).Where(n => n.Node is JsonObject o && o.ContainsKey("type") && n.Parent is JsonArray).ToList();
                if (blocks.Count > 0)
                {
                    var block = (JsonObject)blocks[_random.Next(blocks.Count)].Node!;
                    block["type"] = _random.Next(6) switch
                    {
                        0 => "future_block",
                        1 => "",
                        2 => "TEXT",
                        3 => "image ",
                        4 => "tool_use",
                        _ => RandomText(_random.Next(1, 40)),
                    };
                }

                break;
            case "huge-tool-schema":
                var tools = root["tools"] as JsonArray ?? (JsonArray)(root["tools"] = new JsonArray());
                switch (_random.Next(3))
                {
                    case 0:
                        var props = new JsonObject();
                        var propertyCount = _random.Next(1_000, 20_000);
                        for (var i = 0; i < propertyCount; i++)
                        {
                            props[$"p{i}"] = new JsonObject { ["type"] = "string", ["description"] = RandomText(20) };
                        }

                        tools.Add(Tool("Huge", props, "p0"));
                        break;
                    case 1:
                        JsonNode schema = new JsonObject { ["type"] = "string" };
                        var levels = _random.Next(10, 200);
                        for (var i = 0; i < levels; i++)
                        {
                            schema = new JsonObject { ["anyOf"] = new JsonArray(schema, new JsonObject { ["type"] = "null" }) };
                        }

                        tools.Add(new JsonObject { ["name"] = "Nested", ["input_schema"] = new JsonObject { ["type"] = "object", ["properties"] = new JsonObject { ["x"] = schema } } });
                        break;
                    default:
                        var toolCount = _random.Next(500, 1_500);
                        for (var i = 0; i < toolCount; i++)
                        {
                            tools.Add(Tool($"t{i}", new JsonObject { ["a"] = new JsonObject { ["type"] = "string" } }, "a"));
                        }

                        break;
                }

                break;
            case "invalid-base64":
                var images = Nodes(root).Where(n => n.Node is JsonObject o && o["data"] is not null && o["media_type"] is not null).Select(n => (JsonObject)n.Node!).ToList();
                var bad = _random.Next(5) switch { 0 => "not base64!!", 1 => Png[..^3], 2 => "====", 3 => "\u00e9\u00e9\u00e9\u00e9", _ => Png.Replace('A', '*') };
                if (images.Count > 0)
                {
                    images[_random.Next(images.Count)]["data"] = bad;
                }
                else if (root["messages"] is JsonArray messages && messages.Count > 0)
                {
                    messages[0] = new JsonObject
                    {
                        ["role"] = "user",
                        ["content"] = new JsonArray(new JsonObject { ["type"] = "image", ["source"] = new JsonObject { ["type"] = "base64", ["media_type"] = "image/png", ["data"] = bad } }),
                    };
                }

                break;
            case "max-tokens":
                root["max_tokens"] = _random.Next(11) switch
                {
                    0 => JsonValue.Create(-1),
                    1 => JsonValue.Create(0),
                    2 => JsonValue.Create(1),
                    3 => JsonValue.Create(long.MinValue),
                    4 => JsonValue.Create(long.MaxValue),
                    5 => JsonNode.Parse("1e30"),
                    6 => JsonValue.Create(1.5),
                    7 => JsonValue.Create("100"),
                    8 => null,
                    9 => JsonValue.Create(2147483648L),
                    _ => JsonNode.Parse("18446744073709551616"),
                };
                break;
            case "many-messages":
                var many = new JsonArray();
                var n = _random.Next(1_000, 20_000);
                for (var i = 0; i < n; i++)
                {
                    many.Add(new JsonObject { ["role"] = i % 2 == 0 ? "user" : "assistant", ["content"] = $"m{i}" });
                }

                root["messages"] = many;
                break;
            case "nulls":
                var target = RandomNode(root);
                if (_random.Next(3) == 0 && root["messages"] is JsonArray list)
                {
                    list.Add(null);
                }
                else
                {
                    Replace(root, target, null);
                }

                break;
            case "odd-text":
                var texts = Nodes(root).Where(x => x.Node is JsonValue v && v.GetValueKind() == JsonValueKind.String).ToList();
                if (texts.Count > 0)
                {
                    Replace(root, texts[_random.Next(texts.Count)], JsonValue.Create(_random.Next(5) switch
                    {
                        0 => "\u0000\u0001\u001f control",
                        1 => "emoji 😀👍🏽‍♂️ and RTL \u202e text",
                        2 => new string('\n', 1000),
                        3 => "</s><|im_end|><|endoftext|>[DONE]\n\ndata: [DONE]\n\n",
                        _ => "{\"nested\":\"json in a string\"}",
                    }));
                }

                break;
        }
    }

    private JsonNode? WrongTypeValue() => _random.Next(8) switch
    {
        0 => JsonValue.Create(_random.Next()),
        1 => JsonValue.Create(-_random.NextDouble() * 1e12),
        2 => JsonValue.Create("str"),
        3 => JsonValue.Create(true),
        4 => new JsonArray(1, "two", null),
        5 => new JsonObject { ["unexpected"] = new JsonArray() },
        6 => null,
        _ => JsonValue.Create(""),
    };

    private JsonNode Deep(int depth)
    {
        // Kept as text (a placeholder in the tree, expanded on serialization): no deep JsonNode trees.
        var open = new StringBuilder(depth * 6);
        for (var i = 0; i < depth; i++)
        {
            open.Append(i % 2 == 0 ? "[" : "{\"k\":");
        }

        open.Append('1');
        for (var i = depth - 1; i >= 0; i--)
        {
            open.Append(i % 2 == 0 ? "]" : "}");
        }

        var placeholder = $"__deep_{_deep.Count}__";
        _deep[placeholder] = open.ToString();
        return JsonValue.Create(placeholder);
    }

    private string RandomText(int length)
    {
        const string alphabet = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\"\\\n\té中😀<>&'";
        var builder = new StringBuilder(length);
        while (builder.Length < length)
        {
            var c = alphabet[_random.Next(alphabet.Length)];
            if (char.IsHighSurrogate(c))
            {
                builder.Append("😀");
            }
            else if (!char.IsLowSurrogate(c))
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }

    private (JsonNode? Node, JsonNode? Parent, string? Key, int Index) RandomNode(JsonObject root)
    {
        var all = Nodes(root).ToList();
        return all[_random.Next(all.Count)];
    }

    /// <summary>Every node below the root with its parent and position (depth-first).</summary>
    private static IEnumerable<(JsonNode? Node, JsonNode? Parent, string? Key, int Index)> Nodes(JsonNode root)
    {
        var stack = new Stack<JsonNode>();
        stack.Push(root);
        while (stack.Count > 0)
        {
            var node = stack.Pop();
            if (node is JsonObject obj)
            {
                foreach (var (key, child) in obj.ToList())
                {
                    yield return (child, obj, key, -1);
                    if (child is not null)
                    {
                        stack.Push(child);
                    }
                }
            }
            else if (node is JsonArray array)
            {
                for (var i = 0; i < array.Count; i++)
                {
                    yield return (array[i], array, null, i);
                    if (array[i] is { } child)
                    {
                        stack.Push(child);
                    }
                }
            }
        }
    }

    private static void Replace(JsonObject root, (JsonNode? Node, JsonNode? Parent, string? Key, int Index) at, JsonNode? value)
    {
        switch (at.Parent)
        {
            case JsonObject obj when at.Key is not null:
                obj[at.Key] = value;
                break;
            case JsonArray array when at.Index >= 0:
                array[at.Index] = value;
                break;
            default:
                root["model"] = value;
                break;
        }
    }

    // ---------- byte mutations ----------

    private byte[] MutateBytes(string name, byte[] bytes)
    {
        switch (name)
        {
            case "truncate":
                return bytes[.._random.Next(bytes.Length)];
            case "invalid-utf8":
                // Inside a string value: after a quote that follows a colon.
                var positions = new List<int>();
                for (var i = 1; i < bytes.Length - 1; i++)
                {
                    if (bytes[i] == (byte)'"' && bytes[i - 1] == (byte)':')
                    {
                        positions.Add(i + 1);
                    }
                }

                var at = positions.Count > 0 ? positions[_random.Next(positions.Count)] : _random.Next(bytes.Length);
                byte[] invalid = _random.Next(6) switch
                {
                    0 => [0xC3, 0x28],
                    1 => [0xFF],
                    2 => [0xED, 0xA0, 0x80],
                    3 => [0xC0, 0xAF],
                    4 => [0xF4, 0x90, 0x80, 0x80],
                    _ => [0xE2, 0x82],
                };
                return [.. bytes[..at], .. invalid, .. bytes[at..]];
            default:
                var copy = (byte[])bytes.Clone();
                var flips = _random.Next(1, 20);
                for (var i = 0; i < flips && copy.Length > 0; i++)
                {
                    copy[_random.Next(copy.Length)] ^= (byte)(1 << _random.Next(8));
                }

                return copy;
        }
    }

    /// <summary>Serializes with one property of one object written twice (first with a different value).</summary>
    private byte[] DuplicateKeys(JsonObject root)
    {
        var objects = Nodes(root).Where(n => n.Node is JsonObject o && o.Count > 0).Select(n => (JsonObject)n.Node!).Prepend(root).ToList();
        var target = objects[_random.Next(Math.Min(objects.Count, 6))];
        var key = target.ElementAt(_random.Next(target.Count)).Key;
        var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { SkipValidation = true, MaxDepth = 100_000 }))
        {
            Write(writer, root, target, key, WrongTypeValue());
        }

        return Expand(stream.ToArray());
    }

    private static void Write(Utf8JsonWriter writer, JsonNode? node, JsonObject target, string key, JsonNode? duplicate)
    {
        switch (node)
        {
            case JsonObject obj:
                writer.WriteStartObject();
                foreach (var (name, child) in obj)
                {
                    if (ReferenceEquals(obj, target) && name == key)
                    {
                        writer.WritePropertyName(name);
                        WriteLeaf(writer, duplicate);
                    }

                    writer.WritePropertyName(name);
                    Write(writer, child, target, key, duplicate);
                }

                writer.WriteEndObject();
                break;
            case JsonArray array:
                writer.WriteStartArray();
                foreach (var child in array)
                {
                    Write(writer, child, target, key, duplicate);
                }

                writer.WriteEndArray();
                break;
            default:
                WriteLeaf(writer, node);
                break;
        }
    }

    private static void WriteLeaf(Utf8JsonWriter writer, JsonNode? node)
    {
        if (node is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            node.WriteTo(writer);
        }
    }
}

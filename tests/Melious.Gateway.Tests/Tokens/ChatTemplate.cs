using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Melious.Gateway.Tests.Tokens;

/// <summary>
/// Renders an Anthropic request the way a Qwen/ChatML chat template on vLLM would (tools as one <c>tojson</c> object
/// per line inside the tool preamble), so the tests can count the prompt a real upstream would count.
/// </summary>
internal static class ChatTemplate
{
    private static readonly JsonSerializerOptions Relaxed = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static string Render(JsonObject request)
    {
        var builder = new StringBuilder();
        builder.Append("<|im_start|>system\n").Append(Text(request["system"]));
        foreach (var message in request["messages"]!.AsArray())
        {
            if (message!["role"]!.GetValue<string>() == "system")
            {
                builder.Append("\n\n").Append(Text(message["content"]));
            }
        }

        if (request["tools"] is JsonArray { Count: > 0 } tools)
        {
            builder.Append("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>");
            foreach (var tool in tools)
            {
                var function = new JsonObject
                {
                    ["type"] = "function",
                    ["function"] = new JsonObject
                    {
                        ["name"] = tool!["name"]!.DeepClone(),
                        ["description"] = tool["description"]?.DeepClone(),
                        ["parameters"] = tool["input_schema"]!.DeepClone(),
                    },
                };
                builder.Append('\n').Append(function.ToJsonString(Relaxed));
            }

            builder.Append("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>");
        }

        builder.Append("<|im_end|>\n");
        foreach (var message in request["messages"]!.AsArray())
        {
            var role = message!["role"]!.GetValue<string>();
            if (role == "system")
            {
                continue;
            }

            builder.Append("<|im_start|>").Append(role).Append('\n').Append(Text(message["content"])).Append("<|im_end|>\n");
        }

        return builder.Append("<|im_start|>assistant\n").ToString();
    }

    private static string Text(JsonNode? content) => content switch
    {
        JsonValue value => value.GetValue<string>(),
        JsonArray blocks => string.Join("\n", blocks.Select(block => block?["type"]?.GetValue<string>() switch
        {
            "text" => block["text"]!.GetValue<string>(),
            "tool_result" => Text(block["content"]),
            "tool_use" => "<tool_call>\n" + new JsonObject { ["name"] = block["name"]!.DeepClone(), ["arguments"] = block["input"]!.DeepClone() }.ToJsonString(Relaxed) + "\n</tool_call>",
            "thinking" => "<think>\n" + block["thinking"]!.GetValue<string>() + "\n</think>",
            _ => "",
        })),
        _ => "",
    };
}

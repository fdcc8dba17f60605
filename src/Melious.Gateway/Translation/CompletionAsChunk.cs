using Melious.Gateway.Protocol;
using System.Buffers;
using System.Text.Json;

namespace Melious.Gateway.Translation;

/// <summary>
/// Some servers and proxies answer a streaming Chat Completions request with one <c>application/json</c>
/// <c>chat.completion</c>. This rewrites it as the single <c>chat.completion.chunk</c> a stream would have carried
/// (each choice's <c>message</c> becomes its <c>delta</c>, tool calls get their <c>index</c>; usage, finish and stop
/// reasons and every other field are kept), so the same stream translator serves it and the client gets a stream
/// (or a message) as it asked. An error object is passed on unchanged: the translator reports it.
/// </summary>
internal static class CompletionAsChunk
{
    /// <summary>The chunk, or null when <paramref name="json"/> is not a JSON object.</summary>
    public static byte[]? Convert(ReadOnlySpan<byte> json)
    {
        using var document = WireJson.ParseObject(json);
        if (document is null)
        {
            return null;
        }

        var root = document.RootElement;
        var output = new ArrayBufferWriter<byte>(json.Length + 64);
        using (var writer = new Utf8JsonWriter(output))
        {
            writer.WriteStartObject();
            foreach (var property in root.EnumerateObject())
            {
                if (property.NameEquals("object"))
                {
                    writer.WriteString("object", "chat.completion.chunk");
                }
                else if (property.NameEquals("choices") && property.Value.ValueKind == JsonValueKind.Array)
                {
                    writer.WritePropertyName("choices");
                    writer.WriteStartArray();
                    foreach (var choice in property.Value.EnumerateArray())
                    {
                        WriteChoice(writer, choice);
                    }

                    writer.WriteEndArray();
                }
                else
                {
                    property.WriteTo(writer);
                }
            }

            writer.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }

    private static void WriteChoice(Utf8JsonWriter writer, JsonElement choice)
    {
        if (choice.ValueKind != JsonValueKind.Object)
        {
            choice.WriteTo(writer);
            return;
        }

        writer.WriteStartObject();
        foreach (var property in choice.EnumerateObject())
        {
            if (property.NameEquals("message") && property.Value.ValueKind == JsonValueKind.Object)
            {
                writer.WritePropertyName("delta");
                WriteMessage(writer, property.Value);
            }
            else if (!property.NameEquals("delta") && !property.NameEquals("logprobs"))
            {
                property.WriteTo(writer);
            }
        }

        writer.WriteEndObject();
    }

    private static void WriteMessage(Utf8JsonWriter writer, JsonElement message)
    {
        writer.WriteStartObject();
        foreach (var property in message.EnumerateObject())
        {
            if (property.NameEquals("tool_calls") && property.Value.ValueKind == JsonValueKind.Array)
            {
                writer.WritePropertyName("tool_calls");
                writer.WriteStartArray();
                var index = 0;
                foreach (var call in property.Value.EnumerateArray())
                {
                    if (call.ValueKind != JsonValueKind.Object)
                    {
                        index++;
                        continue;
                    }

                    writer.WriteStartObject();
                    if (!call.TryGetProperty("index", out _))
                    {
                        writer.WriteNumber("index", index);
                    }

                    foreach (var field in call.EnumerateObject())
                    {
                        field.WriteTo(writer);
                    }

                    writer.WriteEndObject();
                    index++;
                }

                writer.WriteEndArray();
            }
            else
            {
                property.WriteTo(writer);
            }
        }

        writer.WriteEndObject();
    }
}

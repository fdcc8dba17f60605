using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.OpenAI;

/// <summary>
/// A translated <c>tools</c> list that is shared by every request with the same tools (see
/// <c>SharedToolList.Translation</c>) and written as JSON once: later requests copy the bytes. Claude Code sends the
/// same tool set, tens of KB of descriptions and schemas, on every turn. Never modified once built.
/// </summary>
internal sealed class SharedChatTools(int capacity) : List<ChatTool>(capacity)
{
    private Written? _written;

    /// <summary>The tools' JSON array as <paramref name="writer"/> would write it, from the first such write on.</summary>
    public ReadOnlySpan<byte> Json(Utf8JsonWriter writer, JsonSerializerOptions options)
    {
        var encoder = writer.Options.Encoder;
        if (Volatile.Read(ref _written) is { } written && ReferenceEquals(written.Encoder, encoder))
        {
            return written.Json;
        }

        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = encoder, SkipValidation = true }))
        {
            ChatToolsConverter.WriteArray(json, this, options);
        }

        var bytes = buffer.WrittenSpan.ToArray();
        Volatile.Write(ref _written, new Written(encoder, bytes));
        return bytes;
    }

    private sealed record Written(JavaScriptEncoder? Encoder, byte[] Json);
}

/// <summary>Writes <c>tools</c>; a <see cref="SharedChatTools"/> list as the bytes it was first written as.</summary>
internal sealed class ChatToolsConverter : JsonConverter<List<ChatTool>>
{
    public override List<ChatTool>? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new NotSupportedException("The upstream request is write-only.");

    public override void Write(Utf8JsonWriter writer, List<ChatTool> value, JsonSerializerOptions options)
    {
        if (value is SharedChatTools shared && !writer.Options.Indented)
        {
            writer.WriteRawValue(shared.Json(writer, options), skipInputValidation: true);
            return;
        }

        WriteArray(writer, value, options);
    }

    internal static void WriteArray(Utf8JsonWriter writer, List<ChatTool> tools, JsonSerializerOptions options)
    {
        var info = (System.Text.Json.Serialization.Metadata.JsonTypeInfo<ChatTool>)options.GetTypeInfo(typeof(ChatTool));
        writer.WriteStartArray();
        foreach (var tool in tools)
        {
            JsonSerializer.Serialize(writer, tool, info);
        }

        writer.WriteEndArray();
    }
}

/// <summary>
/// Writes a client JSON Schema as OpenAI <c>parameters</c>, dropping what OpenAI-compatible servers reject:
/// <c>$schema</c> keywords and <c>"required": null</c> (anthropics/claude-code #49637). It walks the schema
/// once while writing, so sanitizing allocates nothing.
/// </summary>
internal sealed class SanitizedSchemaConverter : JsonConverter<JsonElement>
{
    public override JsonElement Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        JsonElement.ParseValue(ref reader);

    public override void Write(Utf8JsonWriter writer, JsonElement value, JsonSerializerOptions options)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            // A schema that is not an object is not a function schema; give the server the minimal valid one.
            writer.WriteStartObject();
            writer.WriteString("type"u8, "object"u8);
            writer.WriteStartObject("properties"u8);
            writer.WriteEndObject();
            writer.WriteEndObject();
            return;
        }

        WriteSanitized(writer, value);
    }

    private static void WriteSanitized(Utf8JsonWriter writer, JsonElement element)
    {
        var raw = JsonMarshal.GetRawUtf8Value(element);

        // Most of a schema needs no change: copy every part that contains neither keyword verbatim.
        if (element.ValueKind is not JsonValueKind.Object and not JsonValueKind.Array || (raw.IndexOf("\"$schema\""u8) < 0 && raw.IndexOf("null"u8) < 0))
        {
            writer.WriteRawValue(raw, skipInputValidation: true);
            return;
        }

        if (element.ValueKind == JsonValueKind.Array)
        {
            writer.WriteStartArray();
            foreach (var item in element.EnumerateArray())
            {
                WriteSanitized(writer, item);
            }

            writer.WriteEndArray();
            return;
        }

        writer.WriteStartObject();
        foreach (var property in element.EnumerateObject())
        {
            var name = JsonMarshal.GetRawUtf8PropertyName(property);
            if (name.SequenceEqual("$schema"u8))
            {
                continue;
            }

            if (property.Value.ValueKind == JsonValueKind.Null && name.SequenceEqual("required"u8))
            {
                continue;
            }

            if (name.IndexOf((byte)'\\') < 0)
            {
                writer.WritePropertyName(name);
            }
            else
            {
                writer.WritePropertyName(property.Name);
            }

            WriteSanitized(writer, property.Value);
        }

        writer.WriteEndObject();
    }
}

/// <summary>Writes a JSON value as a JSON string holding its text (OpenAI <c>function.arguments</c>).</summary>
internal sealed class JsonElementAsStringConverter : JsonConverter<JsonElement>
{
    public override JsonElement Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        JsonElement.ParseValue(ref reader);

    public override void Write(Utf8JsonWriter writer, JsonElement value, JsonSerializerOptions options)
    {
        if (value.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            writer.WriteStringValue("{}"u8);
            return;
        }

        writer.WriteStringValue(JsonMarshal.GetRawUtf8Value(value));
    }
}

internal sealed class ChatToolChoiceConverter : JsonConverter<ChatToolChoice>
{
    public override ChatToolChoice Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new NotSupportedException("The gateway only writes tool_choice.");

    public override void Write(Utf8JsonWriter writer, ChatToolChoice value, JsonSerializerOptions options)
    {
        if (value.FunctionName is null)
        {
            writer.WriteStringValue(value.Mode);
            return;
        }

        writer.WriteStartObject();
        writer.WriteString("type"u8, "function"u8);
        writer.WriteStartObject("function"u8);
        writer.WriteString("name"u8, value.FunctionName);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }
}

internal sealed class ChatContentConverter : JsonConverter<ChatContent>
{
    public override ChatContent Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new NotSupportedException("The gateway only writes chat content.");

    public override void Write(Utf8JsonWriter writer, ChatContent value, JsonSerializerOptions options)
    {
        if (value.Text is not null)
        {
            writer.WriteStringValue(value.Text);
            return;
        }

        var info = (System.Text.Json.Serialization.Metadata.JsonTypeInfo<List<ChatContentPart>>)options.GetTypeInfo(typeof(List<ChatContentPart>));
        JsonSerializer.Serialize(writer, value.Parts ?? [], info);
    }
}

internal sealed class ImageUrlConverter : JsonConverter<ImageUrl>
{
    public override ImageUrl Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new NotSupportedException("The gateway only writes image URLs.");

    public override void Write(Utf8JsonWriter writer, ImageUrl value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        writer.WritePropertyName("url"u8);
        if (value.Base64Data is not null)
        {
            writer.WriteStringValueSegment("data:", isFinalSegment: false);
            writer.WriteStringValueSegment(value.MediaType ?? "image/png", isFinalSegment: false);
            writer.WriteStringValueSegment(";base64,", isFinalSegment: false);
            writer.WriteStringValueSegment(value.Base64Data, isFinalSegment: true);
        }
        else
        {
            writer.WriteStringValue(value.Url);
        }

        writer.WriteEndObject();
    }
}

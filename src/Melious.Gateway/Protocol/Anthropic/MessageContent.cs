using System.Text.Json;
using System.Text.Json.Serialization;

namespace Melious.Gateway.Protocol.Anthropic;

/// <summary>
/// A <c>content</c> (or <c>system</c>) value: either a bare string or an array of content blocks.
/// </summary>
[JsonConverter(typeof(MessageContentConverter))]
public sealed record MessageContent
{
    public MessageContent(string text) => Text = text;

    public MessageContent(List<ContentBlock> blocks) => Blocks = blocks;

    /// <summary>Set when the wire value was a string.</summary>
    public string? Text { get; }

    /// <summary>Set when the wire value was an array.</summary>
    public List<ContentBlock>? Blocks { get; }

    public static implicit operator MessageContent(string text) => new(text);
}

internal sealed class MessageContentConverter : JsonConverter<MessageContent>
{
    public override MessageContent? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                return new MessageContent(reader.GetString()!);
            case JsonTokenType.StartArray:
                // The list's converter reads on from here; JsonSerializer.Deserialize(ref reader) would first skip
                // the whole array to find its end, tokenizing every block twice.
                var blocks = (JsonConverter<List<ContentBlock>>)options.GetTypeInfo(typeof(List<ContentBlock>)).Converter;
                return new MessageContent(blocks.Read(ref reader, typeof(List<ContentBlock>), options) ?? []);
            case JsonTokenType.Null:
                return null;
            default:
                throw new JsonException("must be a string or an array of content blocks");
        }
    }

    public override void Write(Utf8JsonWriter writer, MessageContent value, JsonSerializerOptions options)
    {
        if (value.Text is not null)
        {
            writer.WriteStringValue(value.Text);
            return;
        }

        var info = (System.Text.Json.Serialization.Metadata.JsonTypeInfo<List<ContentBlock>>)options.GetTypeInfo(typeof(List<ContentBlock>));
        JsonSerializer.Serialize(writer, value.Blocks ?? [], info);
    }
}

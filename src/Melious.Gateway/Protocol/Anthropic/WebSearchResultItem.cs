using System.Text.Json;

namespace Melious.Gateway.Protocol.Anthropic;

/// <summary>One <c>web_search_result</c> as the client sees it; <see cref="EncryptedContent"/> is the gateway-signed page text.</summary>
public sealed record WebSearchResultItem(string Url, string Title, string? PageAge, string EncryptedContent)
{
    /// <summary>
    /// Writes the <c>content</c> of a <c>web_search_tool_result</c>: the result array, or
    /// <c>{"type":"web_search_tool_result_error","error_code":…}</c>.
    /// </summary>
    internal static void WriteContent(Utf8JsonWriter writer, IReadOnlyList<WebSearchResultItem>? results, string? errorCode)
    {
        if (errorCode is not null)
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "web_search_tool_result_error"u8);
            writer.WriteString("error_code"u8, errorCode);
            writer.WriteEndObject();
            return;
        }

        writer.WriteStartArray();
        foreach (var item in results ?? [])
        {
            writer.WriteStartObject();
            writer.WriteString("type"u8, "web_search_result"u8);
            writer.WriteString("url"u8, item.Url);
            writer.WriteString("title"u8, item.Title);
            writer.WriteString("encrypted_content"u8, item.EncryptedContent);
            if (item.PageAge is null)
            {
                writer.WriteNull("page_age"u8);
            }
            else
            {
                writer.WriteString("page_age"u8, item.PageAge);
            }

            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }
}

/// <summary>A <c>web_search_result_location</c> citation on a text block (best effort: see docs/web-search.md).</summary>
public sealed record WebSearchCitation(string Url, string Title, string CitedText, string EncryptedIndex)
{
    public string Type { get; init; } = "web_search_result_location";

    internal void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type"u8, "web_search_result_location"u8);
        writer.WriteString("cited_text"u8, CitedText);
        writer.WriteString("url"u8, Url);
        writer.WriteString("title"u8, Title);
        writer.WriteString("encrypted_index"u8, EncryptedIndex);
        writer.WriteEndObject();
    }
}

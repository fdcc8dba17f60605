using System.Text;
using System.Text.Json;
using Melious.Gateway.Protocol.Anthropic;
using Melious.Gateway.Protocol.OpenAI;
using Melious.Gateway.Search;

namespace Melious.Gateway.Translation;

/// <summary>
/// The upstream side of the <c>web_search</c> server tool on OpenAI-compatible upstreams (docs/web-search.md): the
/// function tool offered to the model, the tool message that carries results to it, and the replay of
/// <c>server_tool_use</c> + <c>web_search_tool_result</c> blocks as an assistant tool call plus a tool message.
/// Live results and replayed ones give the upstream byte-identical messages, so its prefix cache keeps working.
/// </summary>
internal static class WebSearchTranslation
{
    public const string ToolName = "web_search";

    private static readonly JsonElement Parameters = JsonDocument.Parse(
        """{"type":"object","properties":{"query":{"type":"string","description":"The search query"}},"required":["query"]}""").RootElement.Clone();

    /// <summary>The function tool the model calls to search.</summary>
    public static ChatTool Tool { get; } = new(new ChatFunction
    {
        Name = ToolName,
        Description = "Search the web for current information. Returns result titles, URLs and page excerpts. "
            + "Use it for facts that may have changed or that you do not know; cite the URLs you use.",
        Parameters = Parameters,
    });

    /// <summary>The web search server tool of the request, if it has one.</summary>
    public static ToolDefinition? Find(List<ToolDefinition>? tools)
    {
        foreach (var tool in tools ?? [])
        {
            if (tool.IsWebSearch)
            {
                return tool;
            }
        }

        return null;
    }

    public static bool HasServerBlocks(MessageContent content)
    {
        foreach (var block in content.Blocks ?? [])
        {
            if (block is ServerToolUseBlock or WebSearchToolResultBlock)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Splits an assistant turn at each <c>web_search_tool_result</c>: the blocks before it (the search as a
    /// tool call) go out through <paramref name="addAssistant"/>, the result as a tool message, and the rest
    /// continues as the next assistant message. Server tools other than web search (web_fetch, code execution) ran
    /// elsewhere and have no result the model could read; they are dropped, as before.
    /// </summary>
    public static void AddAssistant(List<ChatMessage> messages, MessageContent content, Action<List<ChatMessage>, MessageContent> addAssistant, SearchResultSigner? signer)
    {
        var segment = new List<ContentBlock>();
        var queries = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var block in content.Blocks ?? [])
        {
            switch (block)
            {
                case ServerToolUseBlock { Name: ToolName, Id: { Length: > 0 } id } call:
                    segment.Add(new ToolUseBlock { Id = id, Name = ToolName, Input = call.Input });
                    queries[id] = QueryOf(call.Input);
                    break;
                case ServerToolUseBlock:
                    break;
                case WebSearchToolResultBlock { ToolUseId: { Length: > 0 } id } result when queries.ContainsKey(id):
                    addAssistant(messages, new MessageContent(segment));
                    segment = [];
                    messages.Add(new ChatMessage
                    {
                        Role = "tool",
                        ToolCallId = id,
                        Content = new ChatContent(ReplayedResultText(queries[id], result, signer)),
                    });
                    break;
                case WebSearchToolResultBlock:
                    break;
                default:
                    segment.Add(block);
                    break;
            }
        }

        if (segment.Count > 0)
        {
            addAssistant(messages, new MessageContent(segment));
        }
    }

    public static string? QueryOf(JsonElement? input) =>
        input is { ValueKind: JsonValueKind.Object } o && o.TryGetProperty("query", out var q) && q.ValueKind == JsonValueKind.String ? q.GetString() : null;

    /// <summary>What the model reads for a search: numbered results with title, URL, age and excerpt.</summary>
    public static string ResultText(string? query, IReadOnlyList<WebSearchHit> hits)
    {
        var text = new StringBuilder();
        text.Append("Web search results for \"").Append(query ?? "").Append("\":");
        if (hits.Count == 0)
        {
            text.Append("\n(no results)");
        }

        for (var i = 0; i < hits.Count; i++)
        {
            var hit = hits[i];
            text.Append("\n\n[").Append(i + 1).Append("] ").Append(hit.Title)
                .Append("\nURL: ").Append(hit.Url);
            if (!string.IsNullOrEmpty(hit.PageAge))
            {
                text.Append("\nPublished: ").Append(hit.PageAge);
            }

            if (!string.IsNullOrEmpty(hit.Content))
            {
                text.Append('\n').Append(hit.Content);
            }
        }

        return text.ToString();
    }

    /// <summary>What the model reads when a search failed.</summary>
    public static string ErrorText(string? query, string errorCode) => errorCode switch
    {
        WebSearchErrors.Unavailable => $"Web search for \"{query}\" failed: web search is not available on this gateway right now (unavailable). Tell the user you could not search the web.",
        WebSearchErrors.MaxUsesExceeded => $"Web search for \"{query}\" was not run: the maximum number of searches for this response has been reached (max_uses_exceeded). Answer with the results you already have.",
        _ => $"Web search for \"{query}\" failed ({errorCode}).",
    };

    /// <summary>
    /// A replayed result for the model. Results whose <c>encrypted_content</c> this gateway sealed come back with
    /// their page text; others (another gateway's, Anthropic's own, tampered) keep only title and URL, which the
    /// client saw anyway.
    /// </summary>
    private static string ReplayedResultText(string? query, WebSearchToolResultBlock result, SearchResultSigner? signer)
    {
        if (result.Content is not { } content)
        {
            return ErrorText(query, WebSearchErrors.Unavailable);
        }

        if (content.ValueKind == JsonValueKind.Object)
        {
            var code = content.TryGetProperty("error_code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()! : WebSearchErrors.Unavailable;
            return ErrorText(query, code);
        }

        var hits = new List<WebSearchHit>();
        if (content.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in content.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Object)
                {
                    continue;
                }

                var url = Str(item, "url") ?? "";
                var title = Str(item, "title") ?? url;
                var age = Str(item, "page_age");
                var opened = signer?.Open(Str(item, "encrypted_content"));
                hits.Add(opened is not null && opened.Url == url ? opened : new WebSearchHit(url, title, age, ""));
            }
        }

        return ResultText(query, hits);
    }

    private static string? Str(JsonElement item, string name) =>
        item.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}

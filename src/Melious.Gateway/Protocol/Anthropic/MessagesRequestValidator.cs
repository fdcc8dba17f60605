using System.Buffers.Text;
using System.Globalization;

namespace Melious.Gateway.Protocol.Anthropic;

/// <summary>
/// Checks a parsed request the way the Messages API does and names the offending field
/// (<c>messages.3.content.0.source.data: invalid base64</c>). Unknown fields and block types are not errors.
/// </summary>
public static class MessagesRequestValidator
{
    private static readonly string[] Roles = ["user", "assistant", "system"];
    private static readonly string[] ToolChoiceTypes = ["auto", "any", "tool", "none"];
    private static readonly string[] ThinkingTypes = ["enabled", "adaptive", "disabled"];

    /// <summary>Returns null when the request is valid, else the error message.</summary>
    public static string? Validate(MessagesRequest request, LimitsOptions limits, bool requireMaxTokens)
    {
        if (string.IsNullOrWhiteSpace(request.Model))
        {
            return "model: Field required";
        }

        if (request.Model.Length > 256)
        {
            return "model: String should have at most 256 characters";
        }

        if (requireMaxTokens)
        {
            if (request.MaxTokens is null)
            {
                return "max_tokens: Field required";
            }

            if (request.MaxTokens < 0)
            {
                return "max_tokens: Input should be greater than or equal to 0";
            }
        }

        if (request.Messages is null)
        {
            return "messages: Field required";
        }

        if (request.Messages.Count == 0)
        {
            return "messages: at least one message is required";
        }

        if (request.Messages.Count > limits.MaxMessages)
        {
            return string.Create(CultureInfo.InvariantCulture, $"messages: at most {limits.MaxMessages} messages are allowed");
        }

        if (request.Temperature is { } temperature && (double.IsNaN(temperature) || temperature < 0 || temperature > 1))
        {
            return "temperature: Input should be between 0 and 1";
        }

        if (request.TopP is { } topP && (double.IsNaN(topP) || topP < 0 || topP > 1))
        {
            return "top_p: Input should be between 0 and 1";
        }

        if (request.TopK is < 0)
        {
            return "top_k: Input should be greater than or equal to 0";
        }

        if (request.StopSequences is { } stops)
        {
            if (stops.Count > limits.MaxStopSequences)
            {
                return string.Create(CultureInfo.InvariantCulture, $"stop_sequences: at most {limits.MaxStopSequences} are allowed");
            }

            for (var i = 0; i < stops.Count; i++)
            {
                if (string.IsNullOrEmpty(stops[i]))
                {
                    return string.Create(CultureInfo.InvariantCulture, $"stop_sequences.{i}: must be a non-empty string");
                }
            }
        }

        if (request.System is { } system && ValidateContent(system, "system", limits) is { } systemError)
        {
            return systemError;
        }

        for (var i = 0; i < request.Messages.Count; i++)
        {
            var message = request.Messages[i];
            if (message is null)
            {
                return string.Create(CultureInfo.InvariantCulture, $"messages.{i}: must be an object");
            }

            if (message.Role is null)
            {
                return string.Create(CultureInfo.InvariantCulture, $"messages.{i}.role: Field required");
            }

            if (!Roles.Contains(message.Role))
            {
                return string.Create(CultureInfo.InvariantCulture, $"messages.{i}.role: Input should be 'user', 'assistant' or 'system'");
            }

            if (message.Content is null)
            {
                return string.Create(CultureInfo.InvariantCulture, $"messages.{i}.content: Field required");
            }

            if (ValidateContent(message.Content, string.Create(CultureInfo.InvariantCulture, $"messages.{i}.content"), limits) is { } error)
            {
                return error;
            }
        }

        if (request.Tools is { } tools)
        {
            if (tools.Count > limits.MaxTools)
            {
                return string.Create(CultureInfo.InvariantCulture, $"tools: at most {limits.MaxTools} tools are allowed");
            }

            for (var i = 0; i < tools.Count; i++)
            {
                var tool = tools[i];
                if (tool is null)
                {
                    return string.Create(CultureInfo.InvariantCulture, $"tools.{i}: must be an object");
                }

                // A typed tool is Anthropic's to check (an Anthropic upstream does; an OpenAI one never gets it): the
                // dated ones carry a fixed name, but an MCP connector toolset has none (it names its server).
                if (tool.Type == ToolDefinition.McpToolset && string.IsNullOrWhiteSpace(tool.McpServerName))
                {
                    return string.Create(CultureInfo.InvariantCulture, $"tools.{i}.mcp_server_name: Field required");
                }

                if (!tool.IsServerTool)
                {
                    if (string.IsNullOrWhiteSpace(tool.Name))
                    {
                        return string.Create(CultureInfo.InvariantCulture, $"tools.{i}.name: Field required");
                    }

                    if (tool.InputSchema is not { } schema)
                    {
                        return string.Create(CultureInfo.InvariantCulture, $"tools.{i}.input_schema: Field required");
                    }

                    if (schema.ValueKind != System.Text.Json.JsonValueKind.Object)
                    {
                        return string.Create(CultureInfo.InvariantCulture, $"tools.{i}.input_schema: Input should be an object");
                    }
                }
            }
        }

        if (request.ToolChoice is { } choice)
        {
            if (choice.Type is null || !ToolChoiceTypes.Contains(choice.Type))
            {
                return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'";
            }

            if (choice.Type == "tool" && string.IsNullOrWhiteSpace(choice.Name))
            {
                return "tool_choice.name: Field required";
            }
        }

        if (request.Thinking is { } thinking)
        {
            if (thinking.Type is null || !ThinkingTypes.Contains(thinking.Type))
            {
                return "thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'";
            }

            if (thinking.BudgetTokens is < 0)
            {
                return "thinking.budget_tokens: Input should be greater than or equal to 0";
            }
        }

        return null;
    }

    private static string? ValidateContent(MessageContent content, string path, LimitsOptions limits)
    {
        if (content.Blocks is not { } blocks)
        {
            return null;
        }

        for (var j = 0; j < blocks.Count; j++)
        {
            var blockPath = string.Create(CultureInfo.InvariantCulture, $"{path}.{j}");
            switch (blocks[j])
            {
                case null:
                    return blockPath + ": must be an object";
                case TextBlock { Text: null }:
                    return blockPath + ".text: Field required";
                case ImageBlock image when ValidateSource(image.Source, blockPath) is { } error:
                    return error;
                case DocumentBlock document when document.Source is null:
                    return blockPath + ".source: Field required";
                case DocumentBlock { Source.Type: "base64" } document when ValidateBase64(document.Source.Data, blockPath + ".source.data") is { } error:
                    return error;
                case ToolUseBlock toolUse when string.IsNullOrEmpty(toolUse.Id) || string.IsNullOrEmpty(toolUse.Name):
                    return blockPath + ": tool_use requires id and name";
                case ToolResultBlock result when string.IsNullOrEmpty(result.ToolUseId):
                    return blockPath + ".tool_use_id: Field required";
                case ToolResultBlock { Content: { } inner } when ValidateContent(inner, blockPath + ".content", limits) is { } error:
                    return error;
            }
        }

        return null;
    }

    private static string? ValidateSource(MediaSource? source, string path)
    {
        if (source is null)
        {
            return path + ".source: Field required";
        }

        return source.Type switch
        {
            "base64" when string.IsNullOrEmpty(source.MediaType) => path + ".source.media_type: Field required",
            "base64" => ValidateBase64(source.Data, path + ".source.data"),
            "url" when !Uri.TryCreate(source.Url, UriKind.Absolute, out _) => path + ".source.url: must be an absolute URL",
            "url" => null,
            _ => path + ".source.type: Input should be 'base64' or 'url'",
        };
    }

    private static string? ValidateBase64(string? data, string path)
    {
        if (string.IsNullOrEmpty(data))
        {
            return path + ": Field required";
        }

        return Base64.IsValid(data.AsSpan()) ? null : path + ": invalid base64 data";
    }
}

using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;

namespace Melious.Gateway.FunctionalTests.Clients;

/// <summary>Reads what the gateway sent to an OpenAI-compatible scripted upstream, and what it received and logged.</summary>
internal static class ScenarioExtensions
{
    /// <summary>The OpenAI <c>tool</c> messages of a chat/completions body.</summary>
    public static IEnumerable<JsonElement> ToolMessages(this UpstreamRequest request) =>
        request.Json.GetProperty("messages").EnumerateArray().Where(m => m.GetProperty("role").GetString() == "tool");

    public static bool HasToolMessage(this UpstreamRequest request) => request.ToolMessages().Any();

    /// <summary>A tool message's content as text (a string, or the concatenated text parts).</summary>
    public static string ContentText(JsonElement message) => message.GetProperty("content") switch
    {
        { ValueKind: JsonValueKind.String } s => s.GetString()!,
        { ValueKind: JsonValueKind.Array } parts => string.Concat(parts.EnumerateArray().Select(p => p.TryGetProperty("text", out var t) ? t.GetString() : "")),
        _ => "",
    };

    public static string Model(this UpstreamRequest request) => request.Json.GetProperty("model").GetString()!;

    /// <summary>
    /// The HTTP requests the gateway received from its client ("METHOD /path?query"), from ASP.NET Core's
    /// "Request starting" lines (needs <c>Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics</c> = Information).
    /// </summary>
    public static IReadOnlyList<string> ClientRequests(this TestGateway gateway) =>
        gateway.Logs.Lines
            .Select(l => System.Text.RegularExpressions.Regex.Match(l, @"Request starting HTTP/[\d.]+ (?<method>[A-Z]+) https?://[^/\s]+(?<path>/\S*)"))
            .Where(m => m.Success)
            .Select(m => m.Groups["method"].Value + " " + m.Groups["path"].Value)
            .ToList();

    /// <summary>The gateway's "routed … stream=…" debug lines: one per Messages request it accepted, with the client's stream flag.</summary>
    public static IReadOnlyList<bool> RoutedStreamFlags(this TestGateway gateway) =>
        gateway.Logs.Lines
            .Where(l => l.Contains(" routed (", StringComparison.Ordinal) && l.Contains("stream=", StringComparison.Ordinal))
            .Select(l => l.Contains("stream=True", StringComparison.Ordinal))
            .ToList();
}

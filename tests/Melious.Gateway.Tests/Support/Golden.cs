using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Melious.Gateway.Tests.Support;

/// <summary>
/// Golden files under <c>Golden/</c> (copied to the output directory). Inputs and expected outputs are stored
/// verbatim; only the random parts (msg_/toolu_ ids, thinking signatures) are normalized before comparing.
/// Set <c>MELIOUS_UPDATE_GOLDEN=1</c> to (re)write expected files in the source tree from the actual output;
/// review every such diff by hand before committing it.
/// </summary>
internal static partial class Golden
{
    private static readonly JsonWriterOptions Indented = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static bool Updating => Environment.GetEnvironmentVariable("MELIOUS_UPDATE_GOLDEN") == "1";

    public static string PathOf(string relative) => Path.Combine(AppContext.BaseDirectory, "Golden", relative);

    public static bool Exists(string relative) => File.Exists(PathOf(relative));

    public static string Read(string relative) => File.ReadAllText(PathOf(relative), Encoding.UTF8);

    public static byte[] ReadBytes(string relative) => File.ReadAllBytes(PathOf(relative));

    /// <summary>Compares text exactly (after <see cref="Normalize"/> of the actual text).</summary>
    public static void AssertText(string relative, string actual)
    {
        var normalized = Normalize(actual);
        if (Updating)
        {
            WriteSource(relative, normalized);
            return;
        }

        Assert.True(Exists(relative), $"golden file {relative} is missing; run with MELIOUS_UPDATE_GOLDEN=1 to create it");
        var expected = Read(relative).ReplaceLineEndings("\n");
        Assert.Equal(expected, normalized);
    }

    /// <summary>Compares JSON structurally (<see cref="JsonNode.DeepEquals"/>) after normalizing the actual text.</summary>
    public static void AssertJson(string relative, string actualJson)
    {
        var normalized = Normalize(actualJson);
        if (Updating)
        {
            WriteSource(relative, Pretty(normalized));
            return;
        }

        Assert.True(Exists(relative), $"golden file {relative} is missing; run with MELIOUS_UPDATE_GOLDEN=1 to create it");
        var expected = JsonNode.Parse(Read(relative));
        var actual = JsonNode.Parse(normalized);
        if (!JsonNode.DeepEquals(expected, actual))
        {
            // Show both sides in a stable, readable form.
            Assert.Equal(Pretty(Read(relative)), Pretty(normalized));
            Assert.Fail("JSON differs");
        }
    }

    /// <summary>Indented JSON with object keys sorted, so that diffs show only real differences.</summary>
    public static string Pretty(string json)
    {
        using var document = JsonDocument.Parse(json);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, Indented))
        {
            document.RootElement.WriteTo(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan) + "\n";
    }

    /// <summary>Replaces minted ids by placeholders in order of first appearance and signatures by <c>&lt;sig&gt;</c>.</summary>
    public static string Normalize(string text)
    {
        text = Placeholders(text, MessageId(), "msg_");
        text = Placeholders(text, ToolUseId(), "toolu_");
        return Signature().Replace(text, "${head}<sig>\"");
    }

    private static string Placeholders(string text, Regex pattern, string prefix)
    {
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        return pattern.Replace(text, match =>
        {
            if (!seen.TryGetValue(match.Value, out var n))
            {
                n = seen.Count + 1;
                seen[match.Value] = n;
            }

            return $"{prefix}<{n}>";
        });
    }

    private static void WriteSource(string relative, string content, [CallerFilePath] string here = "")
    {
        // here = …/tests/Melious.Gateway.Tests/Support/Golden.cs
        var project = Path.GetDirectoryName(Path.GetDirectoryName(here))!;
        var path = Path.Combine(project, "Golden", relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content, new UTF8Encoding(false));
    }

    [GeneratedRegex("msg_[A-Za-z0-9]{24}(?![A-Za-z0-9])")]
    private static partial Regex MessageId();

    [GeneratedRegex("toolu_[A-Za-z0-9]{24}(?![A-Za-z0-9])")]
    private static partial Regex ToolUseId();

    [GeneratedRegex("(?<head>\"signature\"\\s*:\\s*\")[^\"]+\"")]
    private static partial Regex Signature();
}

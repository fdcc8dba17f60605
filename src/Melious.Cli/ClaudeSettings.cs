using System.Text.Json;
using System.Text.Json.Nodes;

namespace Melious.Cli;

/// <summary>One change to an <c>env</c> entry of a Claude Code settings file.</summary>
public sealed record EnvChange(string Name, string? Before, string? After)
{
    public override string ToString() => After is null
        ? $"  - {Name} = {ClaudeEnvironment.Show(Name, Before)}"
        : Before is null
            ? $"  + {Name} = {ClaudeEnvironment.Show(Name, After)}"
            : $"  ~ {Name}: {ClaudeEnvironment.Show(Name, Before)} → {ClaudeEnvironment.Show(Name, After)}";
}

/// <summary>
/// A Claude Code settings file (<c>.claude/settings.local.json</c>, <c>.claude/settings.json</c>,
/// <c>~/.claude/settings.json</c>): reads its <c>env</c> block and merges changes into it, keeping every other key
/// and env entry. Files holding a key are written with mode 0600.
/// </summary>
public sealed class ClaudeSettings
{
    private readonly JsonObject _root;

    private ClaudeSettings(string path, JsonObject root, bool exists)
    {
        Path = path;
        _root = root;
        Exists = exists;
    }

    public string Path { get; }

    public bool Exists { get; }

    public static string UserFile => System.IO.Path.Combine(UserConfig.Home, ".claude", "settings.json");

    public static string ProjectLocalFile(string project) => System.IO.Path.Combine(project, ".claude", "settings.local.json");

    public static string ProjectSharedFile(string project) => System.IO.Path.Combine(project, ".claude", "settings.json");

    public static ClaudeSettings Load(string path)
    {
        if (!File.Exists(path))
        {
            return new ClaudeSettings(path, [], exists: false);
        }

        var text = File.ReadAllText(path);
        try
        {
            var node = string.IsNullOrWhiteSpace(text) ? new JsonObject() : JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            return node is JsonObject root
                ? new ClaudeSettings(path, root, exists: true)
                : throw new CliException($"{path} does not hold a JSON object");
        }
        catch (JsonException ex)
        {
            throw new CliException($"{path} is not valid JSON ({ex.Message}); fix or move it first");
        }
    }

    /// <summary>The <c>env</c> entries as strings (numbers and booleans as their JSON text).</summary>
    public Dictionary<string, string> Env()
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        if (_root["env"] is JsonObject block)
        {
            foreach (var (name, value) in block)
            {
                env[name] = value switch
                {
                    null => "",
                    JsonValue v when v.TryGetValue<string>(out var s) => s,
                    _ => Text(value),
                };
            }
        }

        return env;
    }

    private static string Text(JsonNode node)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            node.WriteTo(writer);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>The changes that setting (value) or removing (null) these entries would make.</summary>
    public List<EnvChange> Plan(IEnumerable<KeyValuePair<string, string?>> entries)
    {
        var current = Env();
        var changes = new List<EnvChange>();
        foreach (var (name, value) in entries)
        {
            var before = current.TryGetValue(name, out var b) ? b : null;
            if (before != value)
            {
                changes.Add(new EnvChange(name, before, value));
            }
        }

        return changes;
    }

    /// <summary>
    /// Where <c>doctor --fix</c> keeps the copies of the files it rewrites: next to the user config
    /// (<c>~/.config/melious/backups/</c>, 0700), never next to the file, where a project's .gitignore would not cover it.
    /// </summary>
    public static string BackupDirectory => System.IO.Path.Combine(System.IO.Path.GetDirectoryName(UserConfig.FilePath)!, "backups");

    /// <summary>
    /// Applies changes to the <c>env</c> block (dropping the block when it ends up empty) and writes the file. With
    /// <paramref name="backup"/>, the old file is first copied (mode 0600) into <see cref="BackupDirectory"/>; returns
    /// the copy's path, or null when there was none.
    /// </summary>
    public string? Apply(IReadOnlyList<EnvChange> changes, bool backup)
    {
        var block = _root["env"] as JsonObject;
        if (block is null)
        {
            block = [];
            _root["env"] = block;
        }

        foreach (var change in changes)
        {
            if (change.After is null)
            {
                block.Remove(change.Name);
            }
            else
            {
                block[change.Name] = change.After;
            }
        }

        if (block.Count == 0)
        {
            _root.Remove("env");
        }

        var directory = System.IO.Path.GetDirectoryName(Path)!;
        Directory.CreateDirectory(directory);
        string? copy = null;
        if (backup && File.Exists(Path))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(BackupDirectory);
            }
            else
            {
                Directory.CreateDirectory(BackupDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }

            // The whole path in the name (which project), and the time (one copy per repair).
            var name = System.IO.Path.GetFullPath(Path).TrimStart(System.IO.Path.DirectorySeparatorChar, System.IO.Path.AltDirectorySeparatorChar, ':')
                .Replace(System.IO.Path.DirectorySeparatorChar, '_').Replace(System.IO.Path.AltDirectorySeparatorChar, '_').Replace(':', '_');
            copy = System.IO.Path.Combine(BackupDirectory, $"{name}.{DateTime.UtcNow:yyyyMMdd'T'HHmmssfff'Z'}.bak");
            var copyOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                copyOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using (var target = new FileStream(copy, copyOptions))
            using (var source = File.OpenRead(Path))
            {
                source.CopyTo(target);
            }
        }

        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(Path, options))
        {
            using var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
            _root.WriteTo(writer);
            writer.Flush();
            stream.Write("\n"u8);
        }

        Restrict(Path);
        return copy;
    }

    private static void Restrict(string path)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    /// <summary>
    /// Makes sure the project's .gitignore covers <c>.claude/settings.local.json</c>; returns what it did, or null
    /// when it was already covered.
    /// </summary>
    public static string? EnsureGitIgnored(string project)
    {
        var gitignore = System.IO.Path.Combine(project, ".gitignore");
        var lines = File.Exists(gitignore) ? File.ReadAllLines(gitignore) : [];
        string[] covering = [".claude/settings.local.json", "/.claude/settings.local.json", "settings.local.json", "**/settings.local.json", ".claude/", ".claude", "/.claude/", "/.claude", ".claude/*"];
        if (lines.Select(l => l.Trim()).Any(l => covering.Contains(l, StringComparer.Ordinal)))
        {
            return null;
        }

        var prefix = File.Exists(gitignore) && new FileInfo(gitignore).Length > 0 && !File.ReadAllText(gitignore).EndsWith('\n') ? "\n" : "";
        File.AppendAllText(gitignore, prefix + "# Claude Code settings with a Melious key (melious config claude-code)\n.claude/settings.local.json\n");
        return $"added .claude/settings.local.json to {gitignore}";
    }
}

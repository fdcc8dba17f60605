namespace Melious.Functions.Tests.Infrastructure;

/// <summary>Locates the repository root (the folder holding Melious.Functions.sln) and the Node tools in tools/.</summary>
internal static class RepoPaths
{
    private static readonly Lazy<string> LazyRoot = new(FindRoot);

    public static string Root => LazyRoot.Value;

    public static string File(params string[] parts) => Path.Combine([Root, .. parts]);

    /// <summary>A tool from tools/node_modules/.bin, or the path in an environment variable.</summary>
    public static string Tool(string name, string overrideVariable)
    {
        if (Environment.GetEnvironmentVariable(overrideVariable) is { Length: > 0 } configured)
        {
            return configured;
        }

        var path = Path.Combine(Root, "tools", "node_modules", ".bin", name);
        if (!System.IO.File.Exists(path))
        {
            throw new InvalidOperationException($"{name} is not installed: run `npm install` in tools/ (scripts/test.sh does), or set {overrideVariable}.");
        }

        return path;
    }

    private static string FindRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !System.IO.File.Exists(Path.Combine(directory.FullName, "Melious.Functions.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Melious.Functions.sln not found above " + AppContext.BaseDirectory);
    }
}

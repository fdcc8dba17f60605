namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>Locates the repository and the Node tools the test command installed (tools/node_modules).</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string NodeBin => Path.Combine(Root, "tools", "node_modules", ".bin");

    /// <summary>A tool from tools/node_modules/.bin (installed by scripts/test.sh), or a path from an environment override.</summary>
    public static string Tool(string name, string overrideVariable)
    {
        if (Environment.GetEnvironmentVariable(overrideVariable) is { Length: > 0 } configured)
        {
            return configured;
        }

        var path = Path.Combine(NodeBin, name);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"{name} is not installed: run scripts/test.sh (it runs `npm install` in tools/), or set {overrideVariable}.");
        }

        return path;
    }

    private static string FindRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Melious.Functions.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Melious.Functions.sln not found above " + AppContext.BaseDirectory);
    }
}

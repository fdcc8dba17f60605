namespace Melious.Gateway.FunctionalTests.Infrastructure;

/// <summary>
/// The built Functions app (src/Melious.Functions/bin/&lt;Configuration&gt;/net10.0, built with these tests through
/// the project reference) and the real Azure Functions host that runs it: Core Tools' <c>func</c> when installed,
/// else <c>../shared/functions-host/run.sh</c> next to the repository (or <c>MELIOUS_FUNCTIONS_HOST</c>).
/// </summary>
public static class FunctionsApp
{
    /// <summary>The configuration these tests were built in (Debug or Release), read from their output path.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Replace('\\', '/').Contains("/bin/Release/", StringComparison.Ordinal) ? "Release" : "Debug";

    public static string Directory { get; } = Path.Combine(RepoPaths.Root, "src", "Melious.Functions", "bin", Configuration, "net10.0");

    public static string MetadataFile => Path.Combine(Directory, "functions.metadata");

    /// <summary>The host's run.sh (the offline build of the real host), or null when it is not there.</summary>
    public static string? HostRunScript
    {
        get
        {
            var folder = Environment.GetEnvironmentVariable("MELIOUS_FUNCTIONS_HOST") is { Length: > 0 } configured
                ? configured
                : Path.GetFullPath(Path.Combine(RepoPaths.Root, "..", "shared", "functions-host"));
            var script = Path.Combine(folder, "run.sh");
            return File.Exists(script) ? script : null;
        }
    }

    /// <summary>Azure Functions Core Tools' <c>func</c> on PATH, used when run.sh is not there.</summary>
    public static string? Func =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, "func"))
            .FirstOrDefault(File.Exists);

    /// <summary>Why the Functions host tests cannot run here, or null when they can.</summary>
    public static string? MissingHost =>
        HostRunScript is null && Func is null
            ? "the real Functions host: neither ../shared/functions-host/run.sh (or MELIOUS_FUNCTIONS_HOST naming its folder) nor Azure Functions Core Tools (func) found"
            : !File.Exists(MetadataFile) ? $"the Functions app built ({MetadataFile} missing)" : null;
}

namespace Melious.Admin;

/// <summary>An operator error (bad argument, unknown id): reported as one line on stderr with its exit code.</summary>
internal sealed class CliException(string message, int exitCode = ExitCodes.Failure) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

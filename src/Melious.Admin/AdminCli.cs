using System.CommandLine;
using System.CommandLine.Invocation;
using Microsoft.Extensions.Configuration;

namespace Melious.Admin;

/// <summary>
/// <c>melious-admin</c>: API keys, the model catalog and tiers, and usage reports, against the gateway's own tables.
/// Runs in-process for tests: all output goes to the given writers, errors are one line on stderr.
/// </summary>
public static class AdminCli
{
    /// <summary>Parses and runs one command line.</summary>
    /// <param name="args">The arguments, without the program name.</param>
    /// <param name="stdout">Results (the new key of <c>keys create</c> is its last line).</param>
    /// <param name="stderr">Errors and warnings, one line each.</param>
    /// <param name="configuration">Settings with the gateway's keys (<c>Melious:Storage:…</c>); environment variables when null.</param>
    /// <param name="cancellationToken">Cancelled on Ctrl-C (Program.cs): the command stops where it safely can.</param>
    /// <returns>An exit code from <see cref="ExitCodes"/>.</returns>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, IConfiguration? configuration = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        configuration ??= new ConfigurationBuilder().AddEnvironmentVariables().Build();

        var cli = new CliContext(stdout, stderr, configuration);
        try
        {
            var root = CreateRootCommand(cli);
            var parsed = root.Parse(args);
            if (parsed.Action is ParseErrorAction)
            {
                var messages = parsed.Errors.Select(e => ErrorMessages.OneLine(e.Message)).Distinct();
                stderr.WriteLine($"error: {string.Join("; ", messages)} (see --help)");
                return ExitCodes.Failure;
            }

            // No termination handler of System.CommandLine: it would end the process 2 s after Ctrl-C whatever the
            // command was doing (keys create between writing the row and printing the key). The caller's token
            // carries Ctrl-C instead, and a command decides where it may stop.
            var invocation = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null };
            return await parsed.InvokeAsync(invocation, cancellationToken);
        }
        catch (Exception ex)
        {
            return cli.Fail(ex, cancellationToken);
        }
        finally
        {
            await stdout.FlushAsync();
            await stderr.FlushAsync();
        }
    }

    internal static RootCommand CreateRootCommand(CliContext cli)
    {
        var root = new RootCommand(
            "Administration of the Melious gateway: API keys, the model catalog and tiers, usage reports. " +
            "Storage settings are read from the same environment variables as the gateway (Melious__Storage__…).")
        {
            cli.ConnectionString,
            cli.TablePrefix,
            KeysCommands.Create(cli),
            ModelsCommands.Create(cli),
            TiersCommands.Create(cli),
            UsageCommands.Create(cli),
        };
        return root;
    }
}

using System.Net.Sockets;
using Azure;
using Azure.Identity;
using Microsoft.Extensions.Options;

namespace Melious.Admin;

/// <summary>Turns any exception into one line for stderr and an exit code. Never a stack trace, never a secret.</summary>
internal static class ErrorMessages
{
    /// <param name="exception">What went wrong.</param>
    /// <param name="cancellationToken">The command's token: only its cancellation (Ctrl-C) is "cancelled".</param>
    public static (string Message, int ExitCode) Describe(Exception exception, CancellationToken cancellationToken = default) => exception switch
    {
        CliException cli => (cli.Message, cli.ExitCode),
        OperationCanceledException when cancellationToken.IsCancellationRequested => ("cancelled", ExitCodes.Cancelled),

        // Azure.Core ends a request that got no answer within the network timeout with a TaskCanceledException, and
        // after its retries with an AggregateException of them: storage did not answer, nobody cancelled.
        OperationCanceledException => (TimedOut(exception, 1), ExitCodes.Failure),
        AggregateException aggregate when aggregate.Flatten().InnerExceptions is { Count: > 0 } all && all.All(e => e is OperationCanceledException) =>
            cancellationToken.IsCancellationRequested ? ("cancelled", ExitCodes.Cancelled) : (TimedOut(all[0], all.Count), ExitCodes.Failure),
        AggregateException aggregate when aggregate.Flatten().InnerExceptions is [var first, ..] => Describe(first, cancellationToken),
        RequestFailedException { Status: 0 } failed => ("storage unreachable: " + FirstLine(failed.InnerException?.Message ?? failed.Message), ExitCodes.Failure),
        RequestFailedException failed => (StorageFailure(failed), ExitCodes.Failure),
        HttpRequestException or SocketException or IOException => ("storage unreachable: " + FirstLine(exception.Message), ExitCodes.Failure),
        AuthenticationFailedException => ("storage authentication failed: " + FirstLine(exception.Message), ExitCodes.Failure),
        OptionsValidationException invalid => ("invalid configuration: " + string.Join("; ", invalid.Failures.Select(FirstLine)), ExitCodes.Failure),
        FormatException or UriFormatException => ("invalid storage settings: " + FirstLine(exception.Message), ExitCodes.Failure),
        ArgumentException argument => (FirstLine(WithoutParameterSuffix(argument)), ExitCodes.Failure),
        _ => ($"{exception.GetType().Name}: {FirstLine(exception.Message)}", ExitCodes.Failure),
    };

    private static string TimedOut(Exception timeout, int attempts)
    {
        // "The operation was cancelled because it exceeded the configured timeout of 0:00:15. …"
        var match = System.Text.RegularExpressions.Regex.Match(timeout.Message, @"timeout of (\d+:\d{2}:\d{2}(?:\.\d+)?)");
        var each = match.Success && TimeSpan.TryParse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture, out var limit)
            ? $"no answer within {limit.TotalSeconds.ToString("0.#", System.Globalization.CultureInfo.InvariantCulture)} s"
            : "no answer";
        return attempts > 1 ? $"storage unreachable: timed out ({each}, {attempts} attempts)" : $"storage unreachable: timed out ({each})";
    }

    private static string StorageFailure(RequestFailedException failed)
    {
        var code = string.IsNullOrEmpty(failed.ErrorCode) ? "" : " " + failed.ErrorCode;
        var hint = failed.Status switch
        {
            401 or 403 => " (check the storage credentials and the identity's role assignments)",
            _ => "",
        };
        return $"storage request failed ({failed.Status}{code}): {FirstLine(failed.Message)}{hint}";
    }

    private static string WithoutParameterSuffix(ArgumentException argument)
    {
        var message = argument.Message;
        var suffix = argument.ParamName is null ? null : $" (Parameter '{argument.ParamName}')";
        return suffix is not null && message.EndsWith(suffix, StringComparison.Ordinal) ? message[..^suffix.Length] : message;
    }

    /// <summary>All lines of a short message joined (parse errors list the accepted values on separate lines).</summary>
    internal static string OneLine(string? message) =>
        string.Join(' ', (message ?? "").Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    internal static string FirstLine(string? message)
    {
        var text = (message ?? "").Trim();
        var end = text.IndexOfAny(['\r', '\n']);
        return end < 0 ? text : text[..end].Trim();
    }
}

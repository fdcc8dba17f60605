namespace Melious.Admin;

/// <summary>Process exit codes of <c>melious-admin</c>.</summary>
public static class ExitCodes
{
    /// <summary>The command did what it was asked.</summary>
    public const int Success = 0;

    /// <summary>Any error: bad arguments, unknown id, unreachable storage, invalid configuration.</summary>
    public const int Failure = 1;

    /// <summary><c>usage reconcile</c> found differences between the daily rollups and the billing rows.</summary>
    public const int Differences = 2;

    /// <summary>Interrupted (Ctrl+C).</summary>
    public const int Cancelled = 130;
}

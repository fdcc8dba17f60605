namespace Melious.Functions;

/// <summary>The usage queue the Functions app's trigger reads (and the gateway's publisher must write to).</summary>
public static class UsageQueue
{
    /// <summary>
    /// A literal on purpose: the platform's scale controller has to read it from the trigger to start instances
    /// for the queue function, and it does not resolve <c>%Section:Key%</c> settings stored as <c>Section__Key</c>.
    /// </summary>
    public const string Name = "usage-events";
}

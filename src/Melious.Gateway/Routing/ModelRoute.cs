namespace Melious.Gateway.Routing;

/// <summary>How a requested model name was resolved.</summary>
public enum RouteKind
{
    /// <summary>An exact catalog id.</summary>
    Exact,

    /// <summary>An explicit alias entry.</summary>
    Alias,

    /// <summary>The name contains opus, sonnet or haiku.</summary>
    Tier,

    /// <summary>Any other name, sent as-is to the default upstream.</summary>
    PassThrough,
}

/// <summary>The result of routing: the client's name (echoed on every response) and the upstream model.</summary>
public sealed record ModelRoute(string RequestedModel, ModelEntry Model, RouteKind Kind);

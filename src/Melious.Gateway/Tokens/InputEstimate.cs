using Melious.Gateway.Protocol.Anthropic;

namespace Melious.Gateway.Tokens;

/// <summary>
/// The prompt's token estimate, known up front or counted on first use. A forwarder whose upstream body does not
/// depend on the estimate (see <see cref="TokenEstimator.UpperBound"/>) defers it and counts right after the request
/// is handed to the socket, while the upstream works on it: the count is then off the time to first token. Whoever
/// reads <see cref="Value"/> first counts; a reader on another thread (an early upstream error) waits for that count.
/// The request is released once counted.
/// </summary>
internal sealed class InputEstimate
{
    private readonly Lock _gate = new();
    private MessagesRequest? _request;
    private long _value;

    private InputEstimate(long value, MessagesRequest? request)
    {
        _value = value;
        _request = request;
    }

    public static InputEstimate Of(long value) => new(value, null);

    public static InputEstimate Deferred(MessagesRequest request) => new(0, request);

    /// <summary>True until a deferred estimate is counted.</summary>
    public bool IsDeferred => Volatile.Read(ref _request) is not null;

    public long Value
    {
        get
        {
            if (Volatile.Read(ref _request) is null)
            {
                return _value;
            }

            lock (_gate)
            {
                if (_request is { } request)
                {
                    _value = TokenEstimator.EstimateRequest(request);
                    Volatile.Write(ref _request, null);
                }

                return _value;
            }
        }
    }
}

using Microsoft.AspNetCore.Http;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Middleware;

namespace Melious.Functions;

/// <summary>
/// Ends an HTTP invocation's request in the worker when the host cancels the invocation.
/// </summary>
/// <remarks>
/// The host forwards each HTTP request to the worker's Kestrel. When the client disconnects, the host sends the worker
/// an <c>InvocationCancel</c> at once (the function's <see cref="FunctionContext.CancellationToken"/>), but the
/// forwarded request lives on: the host's proxy first drains the worker's response, for up to 2 s. For a stream
/// that is 2 s more of upstream tokens nobody reads, billed, before <see cref="HttpContext.RequestAborted"/> fires.
/// Aborting the worker's request turns the cancel into the same client disconnect the core handles on the self-host.
/// </remarks>
internal sealed class HttpInvocationCancel : IFunctionsWorkerMiddleware
{
    public async Task Invoke(FunctionContext context, FunctionExecutionDelegate next)
    {
        if (context.GetHttpContext() is not { } http)
        {
            await next(context);
            return;
        }

        using var registration = context.CancellationToken.Register(static state => ((HttpContext)state!).Abort(), http);
        await next(context);
    }
}

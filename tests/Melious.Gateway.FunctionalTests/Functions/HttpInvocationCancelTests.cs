using Melious.Functions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Azure.Functions.Worker;
using Moq;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// The host cancels an invocation (<c>InvocationCancel</c>) as soon as its client disconnects; the worker's forwarded
/// request must end then, not when the host's proxy has drained the response (up to 2 s). End to end:
/// <c>StreamingTestsOnFunctionsHost.ClientDisconnect_*</c>.
/// </summary>
public sealed class HttpInvocationCancelTests
{
    // The key under which the ASP.NET Core integration puts the invocation's HttpContext (FunctionContext.GetHttpContext).
    private const string HttpContextKey = "HttpRequestContext";

    [Fact]
    public async Task InvocationCancel_AbortsTheWorkersRequest()
    {
        using var cancel = new CancellationTokenSource();
        var (http, lifetime) = NewHttpContext();
        var context = NewFunctionContext(cancel.Token, http);

        var running = new HttpInvocationCancel().Invoke(context, async _ =>
        {
            // Like the core, the function runs until its request is aborted.
            await Task.Delay(Timeout.Infinite, http.RequestAborted).ContinueWith(static _ => { }, TaskScheduler.Default);
        });
        Assert.False(running.IsCompleted);

        await cancel.CancelAsync();
        await running.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.Equal(1, lifetime.Aborts);
    }

    [Fact]
    public async Task CancelAfterTheFunctionEnded_AbortsNothing()
    {
        using var cancel = new CancellationTokenSource();
        var (http, lifetime) = NewHttpContext();
        var ran = false;

        await new HttpInvocationCancel().Invoke(NewFunctionContext(cancel.Token, http), _ =>
        {
            ran = true;
            return Task.CompletedTask;
        });
        await cancel.CancelAsync();

        Assert.True(ran);
        Assert.Equal(0, lifetime.Aborts);
    }

    [Fact]
    public async Task NonHttpInvocation_RunsAsItIs()
    {
        using var cancel = new CancellationTokenSource();
        var ran = false;

        await new HttpInvocationCancel().Invoke(NewFunctionContext(cancel.Token, http: null), _ =>
        {
            ran = true;
            return Task.CompletedTask;
        });

        Assert.True(ran);
    }

    private static (DefaultHttpContext Http, RecordingLifetime Lifetime) NewHttpContext()
    {
        var http = new DefaultHttpContext();
        var lifetime = new RecordingLifetime();
        http.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        return (http, lifetime);
    }

    private static FunctionContext NewFunctionContext(CancellationToken token, HttpContext? http)
    {
        var items = new Dictionary<object, object>();
        if (http is not null)
        {
            items[HttpContextKey] = http;
        }

        var context = new Mock<FunctionContext>();
        context.SetupGet(c => c.CancellationToken).Returns(token);
        context.SetupGet(c => c.Items).Returns(items);
        return context.Object;
    }

    private sealed class RecordingLifetime : IHttpRequestLifetimeFeature
    {
        private readonly CancellationTokenSource _aborted = new();

        public int Aborts { get; private set; }

        public CancellationToken RequestAborted
        {
            get => _aborted.Token;
            set => throw new NotSupportedException();
        }

        public void Abort()
        {
            Aborts++;
            _aborted.Cancel();
        }
    }
}

using System.Collections.Concurrent;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Microsoft.Playwright;

namespace Melious.Gateway.FunctionalTests.Dashboard;

/// <summary>
/// Headless Debian Chromium (<c>/usr/bin/chromium</c>, or <c>MELIOUS_CHROMIUM</c>) driven by Playwright, pointed at
/// one gateway base URL (self-host or Functions host: the URL is all it needs). Every request to another origin
/// is aborted and recorded, and console errors and page errors are collected; <see cref="AssertClean"/> fails on either.
/// </summary>
public sealed class DashboardBrowser : IAsyncDisposable
{
    private readonly IPlaywright _playwright;
    private readonly IBrowser _browser;

    private DashboardBrowser(IPlaywright playwright, IBrowser browser, IBrowserContext context, IPage page, string baseUrl)
    {
        _playwright = playwright;
        _browser = browser;
        Context = context;
        Page = page;
        BaseUrl = baseUrl;
    }

    public static string ChromiumPath => Environment.GetEnvironmentVariable("MELIOUS_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    /// <summary>Where screenshots go: the test results directory of scripts/test.sh.</summary>
    public static string ScreenshotDirectory => Path.Combine(RepoPaths.Root, "artifacts", "test-results", "dashboard");

    public IBrowserContext Context { get; }

    public IPage Page { get; }

    public string BaseUrl { get; }

    public ConcurrentQueue<string> Blocked { get; } = new();

    public ConcurrentQueue<string> Errors { get; } = new();

    public static async Task<DashboardBrowser> StartAsync(string baseUrl)
    {
        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"Chromium not found at {ChromiumPath}: scripts/test.sh installs it (apt-get install -y chromium), or set MELIOUS_CHROMIUM.");
        }

        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        var context = await browser.NewContextAsync(new BrowserNewContextOptions { AcceptDownloads = true, ViewportSize = new ViewportSize { Width = 1360, Height = 900 } });
        var origin = new Uri(baseUrl).GetLeftPart(UriPartial.Authority);
        var page = await context.NewPageAsync();
        var harness = new DashboardBrowser(playwright, browser, context, page, baseUrl.TrimEnd('/'));
        await context.RouteAsync("**/*", async route =>
        {
            var url = route.Request.Url;
            if (url.StartsWith(origin + "/", StringComparison.OrdinalIgnoreCase) || url.Equals(origin, StringComparison.OrdinalIgnoreCase))
            {
                await route.ContinueAsync();
            }
            else
            {
                harness.Blocked.Enqueue(url);
                await route.AbortAsync();
            }
        });
        page.Console += (_, message) =>
        {
            if (message.Type is "error" or "warning")
            {
                harness.Errors.Enqueue($"console {message.Type}: {message.Text}");
            }
        };
        page.PageError += (_, error) => harness.Errors.Enqueue("page error: " + error);
        return harness;
    }

    /// <summary>
    /// Runs an action that navigates (a click on a link or a submit) and waits until a new page is rendered: every
    /// page the dashboard renders carries a fresh nonce in <c>body[data-rendered]</c>.
    /// </summary>
    public async Task NavigateByAsync(Func<Task> action)
    {
        var before = await Page.EvaluateAsync<string?>("() => document.body ? document.body.dataset.rendered || '' : ''");
        await action();
        try
        {
            await Page.WaitForFunctionAsync("old => !!document.body && !!document.body.dataset.rendered && document.body.dataset.rendered !== old", before);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"no new page after the action; now at {Page.Url}: {await Page.ContentAsync()}");
        }
    }

    public Task<IResponse?> GotoAsync(string pathAndQuery) => Page.GotoAsync(BaseUrl + pathAndQuery);

    public async Task SignInAsync(string key)
    {
        await GotoAsync("/dashboard");
        await Page.FillAsync("#key", key);
        await NavigateByAsync(() => Page.ClickAsync("#sign-in"));
    }

    public Task SignOutAsync() => NavigateByAsync(() => Page.ClickAsync("#logout"));

    public async Task<string> TotalAsync(string name) => (await Page.TextContentAsync($"[data-total=\"{name}\"]"))!.Trim();

    public async Task<string[][]> TableAsync(string id) =>
        await Page.EvalOnSelectorAllAsync<string[][]>($"#{id} tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent))");

    public async Task<string[]> HeadersAsync(string id) =>
        await Page.EvalOnSelectorAllAsync<string[]>($"#{id} thead th", "cells => cells.map(c => c.textContent)");

    public async Task ShowRangeAsync(string preset, string? from = null, string? to = null, string? account = null)
    {
        await Page.SelectOptionAsync("#range", preset);
        if (from is not null)
        {
            await Page.FillAsync("#from", from);
            await Page.FillAsync("#to", to!);
        }

        if (account is not null)
        {
            await Page.FillAsync("#account", account);
        }

        await NavigateByAsync(() => Page.ClickAsync("#apply"));
    }

    public async Task ScreenshotAsync(string name)
    {
        Directory.CreateDirectory(ScreenshotDirectory);
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(ScreenshotDirectory, name + ".png"), FullPage = true });
    }

    public void AssertClean()
    {
        Assert.True(Blocked.IsEmpty, "requests to other origins: " + string.Join(", ", Blocked));
        Assert.True(Errors.IsEmpty, "console/page errors: " + string.Join(" | ", Errors));
    }

    public async ValueTask DisposeAsync()
    {
        await Context.CloseAsync();
        await _browser.CloseAsync();
        _playwright.Dispose();
    }
}

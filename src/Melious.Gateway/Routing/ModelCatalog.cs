using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Routing;

/// <summary>
/// Holds the current <see cref="CatalogSnapshot"/> and refreshes it from the <c>models</c> table in the background,
/// so routing never waits on storage. If storage is unreachable the last good snapshot stays in use; if it was
/// never reachable, a snapshot built from configuration serves until it is.
/// </summary>
public sealed partial class ModelCatalog(ModelCatalogStore store, IOptions<GatewayOptions> options, TimeProvider time, ILogger<ModelCatalog> logger) : BackgroundService
{
    private volatile CatalogSnapshot? _current;

    public CatalogSnapshot Current => _current ??= store.FromConfiguration();

    /// <summary>True once the catalog has been read from storage (readiness).</summary>
    public bool LoadedFromStorage => _current?.FromStorage == true;

    /// <summary>Loads the catalog now (used at start and by tests that just changed the table).</summary>
    public async Task<bool> RefreshAsync(CancellationToken cancellationToken)
    {
        try
        {
            _current = await store.LoadAsync(cancellationToken);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.RefreshFailed(logger, ex.GetType().Name, ex.Message);
            _current ??= store.FromConfiguration();
            return false;
        }
    }

    private static readonly TimeSpan StartupBound = TimeSpan.FromSeconds(10);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // The first load happens before the host serves requests, bounded so an unreachable storage account
        // cannot hold up start; the background loop keeps trying.
        using var startup = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        startup.CancelAfter(StartupBound);
        try
        {
            await RefreshAsync(startup.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The start-up bound passed (RefreshAsync rethrows a cancellation of the token it was given): serve the
            // configured routes meanwhile. Before, this ended the host: a gateway started while storage was slow
            // (Azurite on a loaded machine) exited with "Hosting failed to start".
            Log.RefreshFailed(logger, nameof(TimeoutException), $"the first load took longer than {StartupBound.TotalSeconds:0} s");
            _current ??= store.FromConfiguration();
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.Catalog.RefreshInterval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            await RefreshAsync(stoppingToken);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Could not load the model catalog ({Error}: {Message}); keeping the previous mapping")]
        public static partial void RefreshFailed(ILogger logger, string error, string message);
    }
}

using Azure.Data.Tables;
using Melious.Gateway.Routing;
using Melious.Gateway.Storage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace Melious.Gateway.Endpoints;

/// <summary>
/// <c>GET|HEAD /healthz</c> (liveness: the process serves HTTP) and <c>GET|HEAD /healthz/ready</c> (readiness: the
/// storage account answers, the model catalog has been loaded from it, and no secret setting is a Key Vault reference
/// left unresolved, see <see cref="Hosting.KeyVaultReferences"/>). Unauthenticated, for containers and
/// load balancers, so the body is only <c>ok</c> or <c>fail</c>: no versions, names or reasons.
/// </summary>
public sealed class HealthEndpoint(StorageClients storage, ModelCatalog catalog, IOptions<GatewayOptions> options)
{
    private static readonly TimeSpan StorageTimeout = TimeSpan.FromSeconds(3);

    public Task LiveAsync(HttpContext http) => WriteAsync(http, ok: true);

    public async Task ReadyAsync(HttpContext http)
    {
        var ok = catalog.LoadedFromStorage && Hosting.KeyVaultReferences.Unresolved(options.Value).Count == 0 && await StorageReachableAsync(http.RequestAborted);
        await WriteAsync(http, ok);
    }

    private async Task<bool> StorageReachableAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StorageTimeout);
        try
        {
            // One small page of the catalog table: proves the account, the credential and the table.
            await foreach (var _ in storage.Table(TableNames.Models).QueryAsync<TableEntity>(maxPerPage: 1, select: ["PartitionKey"], cancellationToken: timeout.Token).AsPages(pageSizeHint: 1))
            {
                break;
            }

            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private static Task WriteAsync(HttpContext http, bool ok)
    {
        http.Response.StatusCode = ok ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        http.Response.ContentType = "text/plain";
        http.Response.Headers.CacheControl = "no-store";
        var body = ok ? "ok"u8.ToArray() : "fail"u8.ToArray();
        http.Response.ContentLength = body.Length;
        return HttpMethods.IsHead(http.Request.Method) ? Task.CompletedTask : http.Response.Body.WriteAsync(body, http.RequestAborted).AsTask();
    }
}

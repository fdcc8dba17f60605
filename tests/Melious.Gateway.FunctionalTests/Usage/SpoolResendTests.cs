using System.Text.Json;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Melious.Gateway.FunctionalTests.Usage;

/// <summary>
/// Spooled usage events are resent in queue messages of the normal size, however large the spool file: a full
/// batch of events with long names is more than one queue message holds. Real Azurite (which, like Azure, refuses a
/// message over 64 KiB with 413).
/// </summary>
public sealed class SpoolResendTests(AzuriteFixture azurite)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SpoolFileLargerThanAQueueMessage_IsResentSplit_AndDoesNotBlockTheFilesAfterIt()
    {
        var prefix = AzuriteFixture.NewPrefix();
        var spool = new UsageSpool(Path.Combine(Path.GetTempPath(), "melious-spool-" + prefix));
        var tag = Guid.NewGuid().ToString("N")[..8];

        // A full batch (MaxEventsPerMessage = 32) with 256-character model names and 128-character session ids,
        // written as the publisher spools it; then a small file that sorts after it.
        var large = UsagePipelineTests.SyntheticEvents(32, tag).Select((e, i) => e with
        {
            RequestedModel = $"requested-{i:D3}-".PadRight(256, 'r'),
            UpstreamModel = $"upstream-{i:D3}-".PadRight(256, 'u'),
            FallbackFrom = $"fallback-{i:D3}-".PadRight(256, 'f'),
            SessionId = $"session-{i:D3}-".PadRight(128, 's'),
        }).ToList();
        spool.Write(large);
        await Task.Delay(5, Ct); // the spool's file names start with the time in milliseconds
        var small = UsagePipelineTests.SyntheticEvents(2, tag).ToList();
        spool.Write(small);
        var files = spool.Files().ToList();
        Assert.Equal(2, files.Count);
        Assert.True(new FileInfo(files[0]).Length > 48 * 1024, $"the first spool file must exceed one queue message once Base64-encoded ({new FileInfo(files[0]).Length} bytes)");

        await using var gateway = await TestGateway.StartAsync(azurite.ConnectionString, "http://127.0.0.1:9/v1", new Dictionary<string, string?> { ["Melious:Usage:RunConsumer"] = "false" }, prefix: prefix);
        Assert.Equal(gateway.SpoolDirectory, Path.GetDirectoryName(files[0]));

        var deadline = DateTime.UtcNow.AddSeconds(60);
        while ((gateway.Publisher.Delivered < large.Count + small.Count || Directory.EnumerateFiles(gateway.SpoolDirectory).Any()) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100, Ct);
        }

        Assert.Empty(Directory.EnumerateFiles(gateway.SpoolDirectory));
        Assert.Equal(large.Count + small.Count, gateway.Publisher.Delivered);

        // Every event is in the queue exactly once.
        var queue = gateway.Services.GetRequiredService<StorageClients>().Queue(gateway.QueueName);
        var received = new List<UsageEvent>();
        while (true)
        {
            var messages = (await queue.ReceiveMessagesAsync(32, TimeSpan.FromMinutes(1), Ct)).Value;
            if (messages.Length == 0)
            {
                break;
            }

            received.AddRange(messages.SelectMany(m => JsonSerializer.Deserialize(m.Body.ToMemory().Span, UsageJsonContext.Default.UsageMessage)!.Events));
        }

        Assert.Equal(large.Concat(small).Select(e => e.RequestId).Order(), received.Select(e => e.RequestId).Order());
        Assert.Equal(large.Select(e => e.UpstreamModel).Order(), received.Where(e => e.UpstreamModel.Length == 256).Select(e => e.UpstreamModel).Order());
    }
}

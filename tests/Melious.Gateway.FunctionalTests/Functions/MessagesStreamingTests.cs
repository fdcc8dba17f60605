using Azure.Data.Tables;
using Azure.Storage.Queues;
using Melious.Functions;
using Melious.Gateway.FunctionalTests.Infrastructure;
using Melious.Gateway.Auth;
using Melious.Gateway.Storage;
using Melious.Gateway.Usage;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>
/// The path a Claude Code request takes through the Functions app, minus the host's proxy: an Anthropic stream
/// through <see cref="MessagesFunction"/> (scripted OpenAI upstream), then its usage event through the queue and
/// <see cref="UsageQueueFunction"/> into the billing table (real Azurite).
/// </summary>
public sealed class MessagesStreamingTests
{
    [Fact]
    public async Task StreamingMessage_IsServedByTheFunction_AndItsUsageIsWrittenByTheQueueFunction()
    {
        var cancellationToken = TestContext.Current.CancellationToken;
        await using var upstream = await ScriptedUpstream.OpenAIAsync(Sse.TextAnswer(["Hel", "lo"], prompt: 12));
        var prefix = AzuriteFixture.NewPrefix();

        // The trigger's literal queue name, which no other test may read: so an Azurite of this test's own.
        await using var azurite = new AzuriteProcess();
        await azurite.StartAsync();
        var queueName = UsageQueue.Name;
        using var host = await FunctionsTestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Melious:Storage:ConnectionString"] = azurite.ConnectionString,
            ["Melious:Storage:TablePrefix"] = prefix,
            ["Melious:Usage:RunConsumer"] = "false",
            ["Melious:Upstream:BaseUrl"] = upstream.OpenAIBaseUrl,
            ["Melious:Models:Main"] = "main-model",
            ["Melious:Models:Secondary"] = "secondary-model",
            ["Melious:Models:Lightweight"] = "light-model",
        });
        try
        {
            var (key, _) = await host.Services.GetRequiredService<ApiKeyStore>().CreateAsync("acme", "functions-test", null, cancellationToken);
            var http = TestRequests.Create(
                host.Services,
                "POST",
                "/v1/messages",
                """{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}""",
                key);

            var result = await ActivatorUtilities.CreateInstance<MessagesFunction>(host.Services).RunAsync(http.Request);

            Assert.IsType<EmptyResult>(result);
            Assert.Equal(200, http.Response.StatusCode);
            Assert.StartsWith("text/event-stream", http.Response.ContentType);
            var sse = TestRequests.ResponseText(http);
            var events = EventNames(sse);
            Assert.Equal("message_start", events[0]);
            Assert.Equal("message_stop", events[^1]);
            Assert.Contains("content_block_delta", events);
            Assert.Contains("\"model\":\"claude-sonnet-4-5\"", sse);
            Assert.Contains("Hel", sse);
            Assert.Equal("secondary-model", upstream.Requests.Single().Json.GetProperty("model").GetString());

            // The usage event the stream produced, as the queue trigger would receive it (Base64-decoded text).
            var requestId = http.Response.Headers["request-id"].ToString();
            await host.Services.GetRequiredService<QueueUsagePublisher>().FlushAsync(TimeSpan.FromSeconds(15), cancellationToken);
            var storage = host.Services.GetRequiredService<StorageClients>();
            var message = await ReceiveAsync(storage.Queue(queueName), cancellationToken);
            var usageFunction = ActivatorUtilities.CreateInstance<UsageQueueFunction>(host.Services);

            await usageFunction.RunAsync(message, QueueTrigger.Context("message-1", 1), cancellationToken);
            await usageFunction.RunAsync(message, QueueTrigger.Context("message-1", 2), cancellationToken); // redelivery

            var billing = new List<TableEntity>();
            await foreach (var row in storage.Table(TableNames.Billing).QueryAsync<TableEntity>(TableClient.CreateQueryFilter($"RowKey eq {requestId}"), cancellationToken: cancellationToken))
            {
                billing.Add(row);
            }

            Assert.Single(billing);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    private static List<string> EventNames(string sse) =>
        sse.Split('\n')
            .Where(line => line.StartsWith("event: ", StringComparison.Ordinal))
            .Select(line => line["event: ".Length..].Trim())
            .Where(name => name != "ping")
            .ToList();

    private static async Task<string> ReceiveAsync(QueueClient queue, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            var messages = (await queue.ReceiveMessagesAsync(1, TimeSpan.FromMinutes(1), cancellationToken)).Value;
            if (messages.Length > 0)
            {
                return messages[0].Body.ToString();
            }

            Assert.True(DateTime.UtcNow < deadline, $"no usage message arrived on {queue.Name}");
            await Task.Delay(100, cancellationToken);
        }
    }
}

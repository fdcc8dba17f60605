using System.Globalization;
using Microsoft.Azure.Functions.Worker;
using Moq;

namespace Melious.Gateway.FunctionalTests.Functions;

/// <summary>The parts of a queue trigger invocation the usage function reads: its binding data.</summary>
internal static class QueueTrigger
{
    public static FunctionContext Context(string messageId, long dequeueCount)
    {
        var binding = new Mock<BindingContext>();
        binding.SetupGet(b => b.BindingData).Returns(new Dictionary<string, object?>
        {
            ["Id"] = messageId,
            ["DequeueCount"] = dequeueCount.ToString(CultureInfo.InvariantCulture),
        });
        var context = new Mock<FunctionContext>();
        context.SetupGet(c => c.BindingContext).Returns(binding.Object);
        return context.Object;
    }
}

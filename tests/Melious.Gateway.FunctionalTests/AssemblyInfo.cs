using Melious.Gateway.FunctionalTests.Infrastructure;

[assembly: AssemblyFixture(typeof(AzuriteFixture))]

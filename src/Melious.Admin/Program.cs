using Melious.Admin;
using Microsoft.Extensions.Configuration;

// Settings come from the environment, as for the gateway: Melious__Storage__ConnectionString, Melious__Storage__TablePrefix, …
var configuration = new ConfigurationBuilder().AddEnvironmentVariables().Build();
return await AdminCli.RunAsync(args, Console.Out, Console.Error, configuration);

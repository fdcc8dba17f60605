using Melious.Cli;

return await MeliousCli.RunAsync(args);

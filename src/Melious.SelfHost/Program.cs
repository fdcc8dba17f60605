using Melious.SelfHost;

SelfHostApp.Create(args).Run();

using DeCloud.Cli.Commands;

return await CliApp.RunAsync(args).ConfigureAwait(false);

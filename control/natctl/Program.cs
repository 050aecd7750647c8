return await Natd.Ctl.Cli.RunAsync(args, Console.Out, Console.Error).ConfigureAwait(false);

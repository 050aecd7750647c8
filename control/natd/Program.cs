using Natd.Control.Modes;

// natd: no arguments runs the built-in lab; `run` forwards live; `replay` translates a capture.
return await NatdMain.RunAsync(args, Console.Out, Console.Error).ConfigureAwait(false);

using Microsoft.Extensions.Logging;
using Natd.Control.Config;

namespace Natd.Control.Modes;

/// <summary>Command-line entry of natd: picks the mode and turns failures into one clear line and an exit code.</summary>
internal static class NatdMain
{
    public const string Usage = """
        usage:
          natd                                   run the built-in lab (needs root): three network namespaces,
                                                 real curl/UDP/ping traffic through natd, then teardown
          natd run [--config natd.yaml] [--state FILE]
                                                 forward live on the configured interfaces (AF_XDP where it
                                                 works, else AF_PACKET);
                                                 --state saves sessions on shutdown and restores them at start
          natd replay [--config natd.yaml] --in IN.pcap[ng] --out OUT.pcapng [--drops DROPS.pcapng] [--inside-trace]
                                                 translate a capture offline (no privileges)
          natd config check FILE                 validate a configuration file
          natd config describe                   print every configuration key with its default
          natd lookup [--config natd.yaml] (--inside A | --external A:PORT | --table) [--json]
                                                 deterministic NAT (RFC 7422) from the configuration alone:
                                                 INSIDE EXTERNAL:LOW-HIGH, or every subscriber as CSV;
                                                 exit 0 found, 1 not found, 2 usage or configuration error
        exit codes: 0 ok, 1 usage or environment error, 2 bad configuration or input
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0)
        {
            return await LabMode.RunAsync(stdout, stderr).ConfigureAwait(false);
        }
        try
        {
            switch (args[0])
            {
                case "run":
                    return await RunMode.RunAsync(Option(args, "--config"), Option(args, "--state"), stdout, stderr).ConfigureAwait(false);
                case "replay":
                    return ReplayMode.Run(args[1..], stdout, stderr);
                case "lookup":
                    return LookupMode.Run(args[1..], stdout, stderr);
                case "lab":
                    return await LabMode.RunAsync(stdout, stderr).ConfigureAwait(false);
                case "config" when args.Length == 3 && args[1] == "check":
                    var cfg = ConfigLoader.LoadFile(args[2]);
                    foreach (var w in cfg.Warnings)
                    {
                        stderr.WriteLine($"warning: {w}");
                    }
                    stdout.WriteLine($"{args[2]}: ok");
                    return 0;
                case "config" when args.Length == 2 && args[1] == "describe":
                    stdout.Write(ConfigLoader.Describe());
                    return 0;
                case "config":
                    throw new UsageException(args.Length >= 2 && args[1] is "check" or "describe"
                        ? $"config {args[1]}: {(args[1] == "check" ? "expected one FILE" : "takes no arguments")}"
                        : $"config: expected 'check FILE' or 'describe'{(args.Length >= 2 ? $", not '{args[1]}'" : "")}");
                case "-h" or "--help" or "help":
                    stdout.WriteLine(Usage);
                    return 0;
                default:
                    stderr.WriteLine($"natd: unknown command '{args[0]}'");
                    stderr.WriteLine(Usage);
                    return 1;
            }
        }
        catch (ConfigException e)
        {
            stderr.WriteLine("natd: configuration rejected, nothing started:");
            foreach (var err in e.Errors)
            {
                stderr.WriteLine($"  {err}");
            }
            return 2;
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"natd: {e.Message}");
            stderr.WriteLine(Usage);
            return 1;
        }
    }

    /// <summary>The value after <paramref name="name"/>, or null; a missing value is a usage error.</summary>
    public static string? Option(string[] args, string name)
    {
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == name)
            {
                if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    throw new UsageException($"{name} needs a value");
                }
                return args[i + 1];
            }
        }
        return null;
    }

    /// <summary>Loads the named file or, with none, the built-in defaults; prints warnings.</summary>
    public static NatdConfig LoadConfig(string? path, TextWriter stderr)
    {
        var cfg = path is null ? ConfigLoader.Default() : ConfigLoader.LoadFile(path);
        foreach (var w in cfg.Warnings)
        {
            stderr.WriteLine($"natd: warning: {w}");
        }
        return cfg;
    }

    public static ILoggerFactory Loggers(string level) => LoggerFactory.Create(b =>
    {
        b.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        });
        b.SetMinimumLevel(Enum.TryParse<LogLevel>(level, ignoreCase: true, out var l) ? l : LogLevel.Information);
        b.AddFilter("Microsoft", LogLevel.Warning);
        b.AddFilter("Akka", LogLevel.Warning); // Akka.Hosting's start and stop chatter; Akka's own events are warnings and up already
    });
}

/// <summary>A command line natd cannot act on.</summary>
internal sealed class UsageException(string message) : Exception(message);

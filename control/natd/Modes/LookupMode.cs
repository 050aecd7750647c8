using System.Text.Json;
using Natd.Contracts;
using Natd.Control.Api;
using Natd.Control.Config;

namespace Natd.Control.Modes;

/// <summary>
/// <c>natd lookup</c>: deterministic NAT lookups (RFC 7422) from the configuration file alone, no
/// daemon needed (the legal-request case). <c>--inside A</c> and <c>--external A:P</c> print
/// <c>INSIDE EXTERNAL:LOW-HIGH</c> (or the JSON object with <c>--json</c>); <c>--table</c> prints
/// every subscriber as CSV (<see cref="LookupRow.CsvHeader"/>; a JSON array with <c>--json</c>).
/// Exit codes: 0 found, 1 not found (why on stderr), 2 usage or configuration error.
/// </summary>
internal static class LookupMode
{
    public const int Found = 0, NotFound = 1, Usage = 2;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string? config = null, inside = null, external = null;
        bool table = false, json = false;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--config" or "--inside" or "--external":
                    if (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    {
                        return UsageError(stderr, $"{args[i]} needs a value");
                    }
                    string value = args[++i];
                    _ = args[i - 1] switch
                    {
                        "--config" => config = value,
                        "--inside" => inside = value,
                        _ => external = value,
                    };
                    break;
                case "--table":
                    table = true;
                    break;
                case "--json":
                    json = true;
                    break;
                default:
                    return UsageError(stderr, $"unexpected argument '{args[i]}'");
            }
        }
        if ((inside is null ? 0 : 1) + (external is null ? 0 : 1) + (table ? 1 : 0) != 1)
        {
            return UsageError(stderr, "lookup needs exactly one of --inside A, --external A:PORT or --table");
        }
        var cfg = NatdMain.LoadConfig(config, stderr); // a bad file: ConfigException, exit 2 in NatdMain
        var map = DeterministicLookup.MapOf(cfg.Nat, out string? why);
        if (map is null)
        {
            stderr.WriteLine($"natd: {why}");
            return Usage;
        }
        if (table)
        {
            WriteTable(map, json, stdout);
            return Found;
        }
        var outcome = inside is not null
            ? DeterministicLookup.Inside(map, inside, out LookupRow? row, out string message)
            : DeterministicLookup.External(map, external!, out row, out message);
        switch (outcome)
        {
            case DeterministicLookup.Outcome.Found:
                stdout.WriteLine(json ? JsonSerializer.Serialize(row!, WireJsonContext.Default.LookupRow) : row!.Line());
                return Found;
            case DeterministicLookup.Outcome.NotFound:
                stderr.WriteLine($"natd: {message}");
                return NotFound;
            default:
                return UsageError(stderr, message);
        }
    }

    /// <summary>Every subscriber, streamed row by row: a /10 has four million.</summary>
    private static void WriteTable(Dataplane.Nat.DeterministicMap map, bool json, TextWriter stdout)
    {
        if (!json)
        {
            stdout.WriteLine(LookupRow.CsvHeader);
            foreach (var r in map.Table())
            {
                stdout.WriteLine(DeterministicLookup.Row(r).Csv());
            }
            return;
        }
        stdout.Write('[');
        bool first = true;
        foreach (var r in map.Table())
        {
            stdout.Write(first ? "\n" : ",\n");
            first = false;
            stdout.Write(JsonSerializer.Serialize(DeterministicLookup.Row(r), WireJsonContext.Default.LookupRow));
        }
        stdout.WriteLine("\n]");
    }

    private static int UsageError(TextWriter stderr, string message)
    {
        stderr.WriteLine($"natd: {message}");
        stderr.WriteLine("usage: natd lookup [--config natd.yaml] (--inside A | --external A:PORT | --table) [--json]");
        return Usage;
    }
}

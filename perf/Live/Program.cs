using System.Globalization;
using System.Runtime.InteropServices;
using Natd.Control.Lab;
using Natd.Live;

// Natd.Live gen ...        the frame generator (run inside the inside host's namespace)
// Natd.Live run ...        the harness (perf/live/run calls it)
// Natd.Live cleanup        deletes namespaces left by a killed harness
if (args.Length > 0 && args[0] == "gen")
{
    return Generator.Run(args[1..], Console.Out);
}
if (args.Length > 0 && args[0] == "cleanup")
{
    foreach (var ns in LabTopology.CleanupStale("natdlive"))
    {
        Console.Error.WriteLine($"live: removed stale namespace {ns}");
    }
    return 0;
}
if (args.Length == 0 || args[0] != "run")
{
    Console.Error.WriteLine("usage: Natd.Live run --natd NATD.DLL [--dotnet PATH] [--seconds S] [--runs N] [--max-workers N] [--pin] [--save FILE] [--base-natd NATD.DLL --base-label NAME] [--driver af_packet|af_xdp] [--xdp-fill-ring N]\n       Natd.Live gen --dst-mac MAC [--if eth0] [--load established|setup] [--seconds S] [--start N]");
    return 1;
}

string dotnet = "dotnet";
string? natdDll = null;
string? save = null;
string? baseNatd = null;
string? baseLabel = null;
string? driver = null;
double seconds = 5;
int runs = 3;
int maxWorkers = Math.Max(2, Environment.ProcessorCount);
int? xdpFillRing = null;
bool pin = false;
for (int i = 1; i < args.Length; i += 2)
{
    if (args[i] == "--pin")
    {
        pin = true;
        i--;
        continue;
    }
    if (i + 1 >= args.Length)
    {
        Console.Error.WriteLine($"live: {args[i]} needs a value");
        return 1;
    }
    switch (args[i])
    {
        case "--dotnet": dotnet = args[i + 1]; break;
        case "--natd": natdDll = args[i + 1]; break;
        case "--save": save = args[i + 1]; break;
        case "--base-natd": baseNatd = args[i + 1]; break;
        case "--base-label": baseLabel = args[i + 1]; break;
        case "--driver": driver = args[i + 1]; break;
        case "--seconds": seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--runs": runs = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--max-workers": maxWorkers = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        case "--xdp-fill-ring": xdpFillRing = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
        default:
            Console.Error.WriteLine($"live: unknown option {args[i]}");
            return 1;
    }
}
if (natdDll is null || !File.Exists(natdDll))
{
    Console.Error.WriteLine($"live: --natd must name natd.dll (got '{natdDll}')");
    return 1;
}

if (driver is not null && driver != "af_packet" && driver != "af_xdp")
{
    Console.Error.WriteLine($"live: --driver must be af_packet or af_xdp (got '{driver}')");
    return 1;
}

if (baseNatd is not null && !File.Exists(baseNatd))
{
    Console.Error.WriteLine($"live: --base-natd must name the base build's natd.dll (got '{baseNatd}')");
    return 1;
}

LabTopology.CleanupStale("natdlive");
var harness = new Harness(dotnet, natdDll, typeof(Harness).Assembly.Location, seconds, runs, maxWorkers, pin, Console.Out, baseNatd, baseLabel, driver, xdpFillRing);
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; harness.Cancel(); });
using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; harness.Cancel(); });
try
{
    string report = harness.Run();
    if (save is not null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(save))!);
        File.WriteAllText(save, report);
        Console.Error.WriteLine($"live: saved {save}");
    }
    return 0;
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine("live: interrupted; lab torn down");
    return 130;
}
catch (LabException e)
{
    Console.Error.WriteLine($"live: {e.Message}");
    return 1;
}

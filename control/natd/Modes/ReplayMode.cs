using Natd.Control.Replay;

namespace Natd.Control.Modes;

/// <summary>`natd replay`: offline translation of a capture; prints a summary with drops by reason.</summary>
internal static class ReplayMode
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        string? input = NatdMain.Option(args, "--in") ?? throw new UsageException("replay needs --in IN.pcap[ng]");
        string? output = NatdMain.Option(args, "--out") ?? throw new UsageException("replay needs --out OUT.pcapng");
        string? drops = NatdMain.Option(args, "--drops");
        bool insideTrace = args.Contains("--inside-trace");
        var config = NatdMain.LoadConfig(NatdMain.Option(args, "--config"), stderr);
        if (!File.Exists(input))
        {
            stderr.WriteLine($"natd: replay input '{input}' does not exist");
            return 2;
        }
        ReplaySummary s;
        try
        {
            using var inStream = File.OpenRead(input);
            using var outStream = File.Create(output);
            using var dropStream = drops is null ? null : File.Create(drops);
            s = Replayer.Run(config, inStream, outStream, dropStream, insideTrace);
        }
        catch (ReplayInputException e)
        {
            stderr.WriteLine($"natd: {input}: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"natd: replay cannot open its files: {e.Message}");
            return 1;
        }
        stdout.WriteLine($"natd replay: {input} -> {output}{(insideTrace ? " (inside trace)" : "")}");
        stdout.WriteLine($"  frames read        {s.FramesRead}");
        stdout.WriteLine($"  from inside        {s.FromInside}");
        stdout.WriteLine($"  from outside       {s.FromOutside}{(insideTrace ? $" (replies rebuilt from the trace: {s.RebuiltReplies})" : "")}");
        stdout.WriteLine($"  sent inside        {s.SentInside}");
        stdout.WriteLine($"  sent outside       {s.SentOutside}");
        if (s.SkippedLinkType > 0)
        {
            stdout.WriteLine($"  skipped (not Ethernet) {s.SkippedLinkType}");
        }
        stdout.WriteLine($"  forwarded          {s.Forwarded}");
        stdout.WriteLine($"  consumed           {s.Consumed}");
        stdout.WriteLine($"  sessions at end    {s.SessionsAtEnd}");
        stdout.WriteLine($"  dropped            {s.TotalDrops}");
        foreach (var (reason, n) in s.Drops.OrderByDescending(kv => kv.Value))
        {
            stdout.WriteLine($"    {reason,-24} {n}");
        }
        return 0;
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using Natd.Control.Config;
using Natd.Control.Replay;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Io;
using Natd.Tests.Support;
using Xunit.Abstractions;

namespace Natd.Tests.Replay;

/// <summary>
/// Every capture of the shared folder (well-formed conversations and the malformed frames that
/// once crashed packet parsers) through the replayer, plain and --inside-trace, with the lab
/// configuration: no exception but ReplayInputException for a file that is unreadable or has no
/// Ethernet frame, no hang, every frame accounted for, and nothing untranslated or corrupt on OUT.
/// </summary>
public class HostileCaptureTests(ITestOutputHelper log)
{
    private static readonly TimeSpan PerFile = TimeSpan.FromSeconds(10);
    // A hang detector, not a speed target: about 25 s on an idle 2-core machine, and well past
    // 100 s when other builds share the cores (the per-file bound above catches a real hang).
    private static readonly TimeSpan Whole = TimeSpan.FromSeconds(300);
    private static readonly Ipv4Prefix InsideNetwork = Ipv4Prefix.Parse("10.0.0.0/24");

    [Fact]
    public async Task Every_shared_capture_replays_without_crash_hang_or_leak()
    {
        string[] files = [.. Directory.GetFiles(Captures.Tcpdump)
            .Where(f => f.EndsWith(".pcap", StringComparison.Ordinal) || f.EndsWith(".pcapng", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)];
        Assert.True(files.Length > 400, $"only {files.Length} captures in {Captures.Tcpdump}");
        var config = ConfigLoader.Default();
        var failures = new ConcurrentQueue<string>();
        long replayed = 0, rejected = 0, framesRead = 0, framesSent = 0;
        var running = new ConcurrentDictionary<string, Stopwatch>();
        var zlip = new ConcurrentDictionary<string, ReplaySummary>();

        var work = Task.Run(() => Parallel.ForEach(files, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, file =>
        {
            string name = Path.GetFileName(file);
            byte[] bytes = File.ReadAllBytes(file);
            foreach (bool insideTrace in new[] { false, true })
            {
                string what = $"{name}{(insideTrace ? " --inside-trace" : "")}";
                var sw = Stopwatch.StartNew();
                running[what] = sw;
                try
                {
                    var r = ReplayKit.Run(bytes, config, insideTrace);
                    sw.Stop();
                    Interlocked.Increment(ref replayed);
                    Interlocked.Add(ref framesRead, r.Summary.FramesRead);
                    Interlocked.Add(ref framesSent, r.Out.Count);
                    if (name.StartsWith("dns-zlip-", StringComparison.Ordinal) && !insideTrace)
                    {
                        zlip[name] = r.Summary;
                    }
                    foreach (string problem in Audit(bytes, r, insideTrace))
                    {
                        failures.Enqueue($"{what}: {problem}");
                    }
                }
                catch (ReplayInputException e)
                {
                    sw.Stop();
                    Interlocked.Increment(ref rejected);
                    if (ReadableEthernetFrames(bytes) is int n && n > 0)
                    {
                        failures.Enqueue($"{what}: rejected ({e.Message}) although it is a readable capture with {n} Ethernet frames");
                    }
                }
                catch (Exception e)
                {
                    failures.Enqueue($"{what}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
                }
                finally
                {
                    running.TryRemove(what, out _);
                }
                if (sw.Elapsed > PerFile)
                {
                    failures.Enqueue($"{what}: took {sw.Elapsed.TotalSeconds:F1} s (bound {PerFile.TotalSeconds} s)");
                }
            }
        }));
        bool finished = await Task.WhenAny(work, Task.Delay(Whole)) == work;
        Assert.True(finished, $"replay of the captures did not finish in {Whole.TotalSeconds} s; still running: {string.Join(", ", running.Keys)}");
        await work;
        log.WriteLine($"{files.Length} files: {replayed} replays, {rejected} rejected as input; {framesRead} frames read, {framesSent} frames sent");
        Assert.True(failures.IsEmpty, $"{failures.Count} problems:\n{string.Join("\n", failures.Take(40))}");
        Assert.True(replayed > 400);
        // The lab configuration translates none of these captures' conversations (their hosts are
        // not on 10.0.0.0/24; RealCaptureRoundTripTests translates them with their own networks).
        // The only frames it used to forward were the dns-zlip ones from 10.0.0.1: UDP whose length
        // field (8) is shorter than the IP payload, which natd now drops (issue 9, bug 6).
        Assert.Equal(3, zlip.Count);
        foreach (var (name, summary) in zlip)
        {
            Assert.True(summary.SentInside + summary.SentOutside == 0, $"{name}: forwarded a UDP datagram whose length is shorter than its IP payload");
            Assert.True(summary.Drops.GetValueOrDefault(DropReasons.Label(DropReason.BadL4Length)) > 0, $"{name}: not dropped as bad-l4-length");
        }
    }

    /// <summary>Frames PcapReader reads before the end or an error, counting Ethernet ones; null when the header itself is unreadable.</summary>
    private static int? ReadableEthernetFrames(byte[] bytes)
    {
        int ethernet = 0;
        try
        {
            using var reader = new PcapReader(new MemoryStream(bytes));
            while (reader.TryRead(out var rec))
            {
                ethernet += rec.LinkType == 1 ? 1 : 0;
            }
            return ethernet;
        }
        catch (PcapFormatException)
        {
            // A corrupt file: rejecting it whole is fine, whatever came before the damage.
            return null;
        }
    }

    private static IEnumerable<string> Audit(byte[] input, ReplayResult r, bool insideTrace)
    {
        var s = r.Summary;
        int records = 0;
        using (var reader = new PcapReader(new MemoryStream(input)))
        {
            while (reader.TryRead(out _))
            {
                records++;
            }
        }
        if (s.FramesRead != records)
        {
            yield return $"summary says {s.FramesRead} frames read, the file holds {records}";
        }
        // Each frame read is skipped (link type), dropped before the engine (snapped, or an
        // unsolicited inside-trace reply), or handed to the engine from one side.
        long processed = s.FromInside + s.FromOutside;
        long early = s.Drops.GetValueOrDefault(DropReasons.Label(DropReason.Truncated))
            + (insideTrace ? s.Drops.GetValueOrDefault(DropReasons.Label(DropReason.NoSession)) : 0);
        if (processed + s.SkippedLinkType > s.FramesRead || s.FramesRead > processed + s.SkippedLinkType + early)
        {
            yield return $"frames do not add up: read {s.FramesRead}, inside {s.FromInside}, outside {s.FromOutside}, skipped {s.SkippedLinkType}, truncated/unsolicited {early}";
        }
        if (processed > 0 && s.SentInside + s.SentOutside + s.TotalDrops == 0)
        {
            yield return $"{processed} frames processed, none sent, none dropped";
        }
        if (r.Out.Count != s.SentInside + s.SentOutside)
        {
            yield return $"OUT holds {r.Out.Count} frames, summary says {s.SentInside} + {s.SentOutside} sent";
        }
        if (r.Out.Count(f => f.Interface == "inside") != s.SentInside)
        {
            yield return $"OUT's inside side holds {r.Out.Count(f => f.Interface == "inside")} frames, summary says {s.SentInside}";
        }
        if (r.Drops.Count > s.TotalDrops)
        {
            yield return $"drops file holds {r.Drops.Count} frames, summary counts {s.TotalDrops} drops";
        }
        foreach (var d in r.Drops)
        {
            if (string.IsNullOrEmpty(d.Comment) || !Enumerable.Range(0, DropReasons.Count).Any(i => DropReasons.Label((DropReason)i) == d.Comment))
            {
                yield return $"dropped frame at {d.TimestampNs} has comment '{d.Comment}', not a drop reason";
            }
        }
        foreach (var f in r.Out)
        {
            if (f.Interface is not ("inside" or "outside"))
            {
                yield return $"OUT frame on interface '{f.Interface}'";
                continue;
            }
            if (!ReplayKit.IsIpv4(f.Data))
            {
                if (!ReplayKit.IsArp(f.Data))
                {
                    yield return $"OUT {f.Interface} frame at {f.TimestampNs} is neither IPv4 nor ARP: ethertype {f.Data[12]:x2}{f.Data[13]:x2}";
                }
                continue;
            }
            var src = Packets(f.Data, 26);
            var dst = Packets(f.Data, 30);
            if (f.Interface == "outside" && InsideNetwork.Contains(src))
            {
                yield return $"leak: OUT outside frame at {f.TimestampNs} has inside source {Frames.Src(f.Data)}";
            }
            if (f.Interface == "inside" && !InsideNetwork.Contains(dst))
            {
                yield return $"OUT inside frame at {f.TimestampNs} is addressed to {Frames.Dst(f.Data)}, outside the inside network";
            }
            if (!Frames.ChecksumsValid(f.Data))
            {
                yield return $"OUT {f.Interface} frame at {f.TimestampNs} has a bad checksum: {ReplayKit.Hex(f.Data)}";
            }
        }
    }

    private static uint Packets(byte[] f, int offset) => BitConverter.ToUInt32(f, offset);
}

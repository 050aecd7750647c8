using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>
/// The --inside-trace round trip, checked against an independent model of which inbound frames a
/// NAT lets back in: an inbound TCP/UDP/ICMP echo reply frame to the client is reproduced when an
/// outbound frame of the same flow came before it (for TCP, a SYN: RFC 5382 lets only a SYN create
/// a mapping) and the flow was not idle longer than its timeout; every other inbound frame to the
/// client is unsolicited.
/// </summary>
internal static class RoundTrip
{
    internal sealed record Outcome(ReplayResult Result, List<CapFrame> Reproduced, List<CapFrame> Unsolicited);

    public static Outcome Check(byte[] capture, NatdConfig config, string client)
    {
        var input = ReplayKit.Read(capture);
        var reproduced = new List<CapFrame>();
        var unsolicited = new List<CapFrame>();
        var lastSeen = new Dictionary<(string, string, int, int, byte), long>();
        var t = config.Nat.Timeouts;
        foreach (var f in input)
        {
            if (ReplayKit.Tuple(f.Data) is not { } k)
            {
                continue;
            }
            // TCP is held to the transitory timeout: an upper bound that is safe for short captures.
            long timeoutNs = (k.Proto == 6 ? t.TcpTransitory : k.Proto == 17 ? t.Udp : t.Icmp) * 1_000_000_000L;
            if (k.Src == client)
            {
                var key = (k.Src, k.Dst, k.SPort, k.DPort, k.Proto);
                bool creates = k.Proto != 6 || (Frames.L4Offset(f.Data) + 14 <= f.Data.Length && (f.Data[Frames.L4Offset(f.Data) + 13] & 0x16) == 0x02);
                if (creates || lastSeen.ContainsKey(key))
                {
                    lastSeen[key] = f.TimestampNs;
                }
            }
            else if (k.Dst == client && (k.Proto != 1 || f.Data[Frames.L4Offset(f.Data)] == 0))
            {
                var key = (client, k.Src, k.DPort, k.SPort, k.Proto);
                if (k.Proto == 1)
                {
                    key = (client, k.Src, k.SPort, 0, k.Proto); // echo reply: the request's id
                }
                if (lastSeen.TryGetValue(key, out long seen) && f.TimestampNs - seen <= timeoutNs)
                {
                    reproduced.Add(f);
                    lastSeen[key] = f.TimestampNs;
                }
                else
                {
                    unsolicited.Add(f);
                }
            }
        }

        var r = ReplayKit.Run(capture, config, insideTrace: true);
        var inside = r.Out.Where(f => f.Interface == "inside").ToList();
        Assert.True(reproduced.Count == inside.Count,
            $"natd reproduced {inside.Count} inbound frames, the model expects {reproduced.Count}; drops: {string.Join(", ", r.Summary.Drops.Select(kv => $"{kv.Key}={kv.Value}"))}");
        for (int i = 0; i < reproduced.Count; i++)
        {
            CapFrame want = reproduced[i], got = inside[i];
            string what = $"inbound frame {i} ({ReplayKit.Tuple(want.Data)}) at {want.TimestampNs}";
            Assert.True(want.TimestampNs == got.TimestampNs, $"{what}: OUT has timestamp {got.TimestampNs}");
            Assert.True(ReplayKit.Hex(ReplayKit.Masked(want.Data)) == ReplayKit.Hex(ReplayKit.Masked(got.Data)),
                $"{what} not reproduced:\n want {ReplayKit.Hex(ReplayKit.Masked(want.Data))}\n got  {ReplayKit.Hex(ReplayKit.Masked(got.Data))}");
            Assert.True(Frames.Ttl(want.Data) - 1 == Frames.Ttl(got.Data), $"{what}: TTL {Frames.Ttl(got.Data)}, expected {Frames.Ttl(want.Data) - 1}");
            Assert.True(Frames.PlainChecksum(got.Data.AsSpan(14, (got.Data[14] & 0xF) * 4)) == 0, $"{what}: IPv4 header checksum");
            Assert.Equal(ReplayKit.ReplayInsideMac, got.Data[6..12]);
        }
        string noSession = DropReasons.Label(DropReason.NoSession);
        var dropped = r.Drops.Where(d => d.Comment == noSession).ToList();
        Assert.Equal(unsolicited.Select(u => (u.TimestampNs, ReplayKit.Hex(u.Data))), dropped.Select(d => (d.TimestampNs, ReplayKit.Hex(d.Data))));
        Assert.Equal(reproduced.Count, r.Summary.RebuiltReplies);
        return new Outcome(r, reproduced, unsolicited);
    }
}

using FsCheck;
using FsCheck.Fluent;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// Property: for random flows, translate out, build the remote's reply to what left natd,
/// translate back: the inside host gets exactly its original 5-tuple reversed, and every checksum
/// natd emits verifies (with an independent checksum implementation).
/// </summary>
public class RoundTripProperties
{
    public record Flow(int Proto, int HostOctet, int SrcPort, int RemoteA, int RemoteB, int RemotePort, byte[] Payload, bool ZeroUdpChecksum);

    private static Arbitrary<Flow> Flows()
    {
        var gen =
            from proto in Gen.Elements(1, 6, 17)
            from host in Gen.Choose(2, 254)
            from sport in Gen.Choose(1, 65535)
            from ra in Gen.Choose(1, 223)
            from rb in Gen.Choose(0, 255)
            from rport in Gen.Choose(1, 65535)
            from len in Gen.Choose(0, 300)
            from payload in Gen.ArrayOf(Gen.Choose(0, 255).Select(i => (byte)i), len)
            from zero in Gen.Elements(false, false, false, true)
            select new Flow(proto, host, sport, IsPublic(ra, rb) ? ra : 8, rb, rport, payload, zero);
        return gen.ToArbitrary();
    }

    // Remotes are Internet hosts: loopback, RFC 1918, RFC 6598 and link-local sources are dropped
    // from outside (IngressFilterTests covers those), so they are not remotes for a round trip.
    private static bool IsPublic(int a, int b)
        => a is not (10 or 127)
           && !(a == 172 && b is >= 16 and <= 31)
           && !(a == 192 && b == 168)
           && !(a == 100 && b is >= 64 and <= 127)
           && !(a == 169 && b == 254);

    [Fact]
    public void Translate_out_reply_back_restores_original_tuple_with_valid_checksums()
    {
        var h = new EngineHarness(s => s with { MaxSessions = 20_000 });
        Prop.ForAll(Flows(), f =>
        {
            string inside = $"10.0.0.{f.HostOctet}";
            string remote = $"{f.RemoteA}.{f.RemoteB}.7.9";
            h.Engine.Learn(Side.Inside, Natd.Dataplane.Packets.Ipv4.Parse(inside), Natd.Dataplane.Packets.MacAddress.Read(InsideHostMac));
            byte[] outbound = f.Proto switch
            {
                6 => Tcp(inside, f.SrcPort, remote, f.RemotePort, 0x02, payload: f.Payload),
                17 => Udp(inside, f.SrcPort, remote, f.RemotePort, f.Payload, zeroChecksum: f.ZeroUdpChecksum),
                _ => Icmp(inside, remote, 8, 0, f.SrcPort, 3, f.Payload),
            };
            var o = h.Out(outbound);
            if (!ChecksumsValid(o) || Src(o) != EngineHarness.External || Dst(o) != remote)
            {
                return false;
            }
            byte[] reply = f.Proto switch
            {
                6 => Tcp(remote, f.RemotePort, EngineHarness.External, SrcPort(o), 0x12, ack: 1001, payload: f.Payload),
                17 => Udp(remote, f.RemotePort, EngineHarness.External, SrcPort(o), f.Payload, zeroChecksum: f.ZeroUdpChecksum),
                _ => Icmp(remote, EngineHarness.External, 0, 0, IcmpId(o), 3, f.Payload),
            };
            var back = h.Out(Frames.WithMacs(reply, EngineHarness.RouterMac, GatewayOutsideMac), Side.Outside);
            bool tuple = Src(back) == remote && Dst(back) == inside
                && (f.Proto == 1 ? IcmpId(back) == f.SrcPort : SrcPort(back) == f.RemotePort && DstPort(back) == f.SrcPort);
            return tuple && ChecksumsValid(back) && Ttl(back) == 63;
        }).QuickCheckThrowOnFailure();
    }
}

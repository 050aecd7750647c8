using Natd.Dataplane.Rings;
using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// The engine with <c>nat.allocation: deterministic</c> (RFC 7422): mappings take ports inside the
/// subscriber's range on its address (TCP, UDP and ICMP identifiers), sources outside the
/// deterministic prefixes are refused, nothing is logged per session, and with several shards
/// every frame of a flow lands on the shard that allocated its port.
/// </summary>
public class DeterministicEngineTests
{
    private const string Remote = EngineHarness.OutsideHost, Ext = EngineHarness.External;

    // 64 subscribers on one address: 1008 ports each; 10.0.0.2 is subscriber 2, ports 3040-4047.
    private static NatSettings Deterministic(NatSettings s, int ports = 0) => s with
    {
        Cgnat = new CgnatSettings
        {
            Allocation = PortAllocation.Deterministic,
            Deterministic = new DeterministicSettings([Ipv4Prefix.Parse("10.0.0.0/26")], ports),
        },
    };

    [Fact]
    public void Udp_tcp_and_icmp_take_ports_inside_the_subscribers_range_and_replies_come_back()
    {
        var h = new EngineHarness(s => Deterministic(s));
        Assert.NotNull(h.Engine.Deterministic);
        Assert.True(h.Engine.Deterministic!.TryForward(Ipv4.Parse("10.0.0.2"), out var r));
        Assert.Equal("10.0.0.2 198.51.100.1:3040-4047", r.ToString());
        var seen = new HashSet<int>();
        for (int i = 0; i < 300; i++)
        {
            byte[] o = h.Out(Udp("10.0.0.2", 20000 + i, Remote, 53));
            Assert.Equal(Ext, Src(o));
            Assert.InRange(SrcPort(o), r.Low, r.High);
            seen.Add(SrcPort(o));
            byte[] back = h.Out(EngineHarness.FromOutside(Udp(Remote, 53, Ext, SrcPort(o))), Side.Outside);
            Assert.Equal("10.0.0.2", Dst(back));
            Assert.Equal(20000 + i, DstPort(back));
        }
        Assert.Equal(300, seen.Count);
        byte[] t = h.Out(Tcp("10.0.0.2", 40000, Remote, 80, 0x02));
        Assert.InRange(SrcPort(t), r.Low, r.High);
        byte[] e = h.Out(Icmp("10.0.0.2", Remote, 8, 0, 777, 1));
        Assert.InRange(IcmpId(e), r.Low, r.High);
        byte[] eb = h.Out(EngineHarness.FromOutside(Icmp(Remote, Ext, 0, 0, IcmpId(e), 1)), Side.Outside);
        Assert.Equal(777, IcmpId(eb));
    }

    [Fact]
    public void Isakmp_esp_and_gre_leave_from_the_address_of_the_subscribers_range()
    {
        // Two addresses, 32 subscribers on each: a subscriber's port-less flows and ISAKMP leave from
        // the address its range is on, as its TCP and UDP do (RFC 4787 REQ-2), not from an address
        // hash of the host. Found by the cgn fuzz target.
        var h = new EngineHarness(s => Deterministic(s) with
        {
            Pool = [Ipv4.Parse(Ext), Ipv4.Parse("198.51.100.7")],
            Rules = [new ForwardRule { Name = "all", Action = RuleAction.Masquerade }],
            DefaultPolicy = RuleAction.Deny,
        });
        var addresses = new HashSet<string>();
        for (int host = 2; host < 64; host++)
        {
            string inside = $"10.0.0.{host}", remote = $"203.0.113.{host}";
            Assert.True(h.Engine.Deterministic!.TryForward(Ipv4.Parse(inside), out var r));
            string paired = Ipv4.Format(r.External);
            addresses.Add(paired);
            Assert.Equal(paired, Src(h.Out(Udp(inside, 40000, Remote, 53))));
            var isakmp = new byte[28];
            isakmp[0] = (byte)host; // the initiator cookie, one per host
            Assert.Equal(paired, Src(h.Out(Udp(inside, 500, remote, 500, isakmp))));
            var esp = new byte[24];
            esp[2] = 0x10;
            esp[3] = (byte)host; // the SPI, one per host (0 is reserved)
            Assert.Equal(paired, Src(h.Out(Wrap(inside, remote, IpProtocol.Esp, esp, 64, null, null))));
            Assert.Equal(paired, Src(h.Out(Wrap(inside, remote, IpProtocol.Gre, new byte[16], 64, null, null))));
        }
        Assert.Equal(2, addresses.Count);
    }

    [Fact]
    public void A_source_outside_the_deterministic_prefixes_is_refused_and_counted()
    {
        var h = new EngineHarness(s => Deterministic(s));
        Assert.Equal(Verdict.Drop, h.Run(Udp("10.0.0.100", 5000, Remote, 53), Side.Inside, out _));
        Assert.Equal(DropReason.NotDeterministicSubscriber, h.LastDrop);
        Assert.Equal(1, h.Drops(DropReason.NotDeterministicSubscriber));
        Assert.Equal(0, h.Engine.Table.Count);
    }

    [Fact]
    public void A_full_range_refuses_the_next_mapping_and_other_subscribers_are_unaffected()
    {
        var h = new EngineHarness(s => Deterministic(s, ports: 64));
        Assert.True(h.Engine.Deterministic!.TryForward(Ipv4.Parse("10.0.0.2"), out var r));
        Assert.Equal(64, r.High - r.Low + 1);
        for (int i = 0; i < 64; i++)
        {
            Assert.InRange(SrcPort(h.Out(Udp("10.0.0.2", 20000 + i, Remote, 53))), r.Low, r.High);
        }
        Assert.Equal(Verdict.Drop, h.Run(Udp("10.0.0.2", 30000, Remote, 53), Side.Inside, out _));
        Assert.Equal(DropReason.PortExhausted, h.LastDrop);
        Assert.True(h.Engine.Deterministic.TryForward(Ipv4.Parse("10.0.0.3"), out var r3));
        Assert.InRange(SrcPort(h.Out(Udp("10.0.0.3", 30000, Remote, 53))), r3.Low, r3.High);
    }

    [Fact]
    public void No_session_is_logged_the_map_is_the_log()
    {
        foreach (bool deterministic in new[] { false, true })
        {
            var h = new EngineHarness(s => deterministic ? Deterministic(s) : s);
            h.Engine.Table.Events = new SpscRing<NatEvent>(64);
            h.Out(Udp("10.0.0.2", 20000, Remote, 53));
            // The dynamic control run proves the ring is wired: it logs the session.
            Assert.Equal(deterministic ? 0 : 1, h.Engine.Table.Events.Count);
        }
    }

    [Fact]
    public void A_reload_that_moves_the_ranges_closes_mappings_outside_their_new_range()
    {
        var h = new EngineHarness(s => Deterministic(s));
        byte[] o = h.Out(Udp("10.0.0.2", 20000, Remote, 53));
        Assert.InRange(SrcPort(o), 3040, 4047);
        Assert.Equal(1, h.Engine.Table.Count);
        // Ports 100 per subscriber: 10.0.0.2's range becomes 1224-1323, its mapping's port is outside it.
        Assert.Null(h.Engine.UpdateSettings(Deterministic(h.Engine.Settings, ports: 100)));
        Assert.Equal(0, h.Engine.Table.Count);
        Assert.InRange(SrcPort(h.Out(Udp("10.0.0.2", 20000, Remote, 53))), 1224, 1323);
        // A reload to a map the pool cannot hold is refused and changes nothing.
        string? refused = h.Engine.UpdateSettings(Deterministic(h.Engine.Settings, ports: 2000));
        Assert.NotNull(refused);
        Assert.Contains("need 2 addresses", refused, StringComparison.Ordinal);
        Assert.Equal(100, h.Engine.Deterministic!.PortsPerSubscriber);
    }

    [Theory]
    [InlineData(2, 17)]
    [InlineData(2, 6)]
    [InlineData(3, 1)]
    [InlineData(4, 17)]
    public void With_several_shards_each_flow_stays_on_the_shard_that_owns_its_subscriber(int shards, byte proto)
    {
        var s = Deterministic(EngineHarness.LabSettings() with
        {
            Outside = EngineHarness.LabSettings().Outside with { Neighbours = [new(Ipv4.Parse(Remote), MacAddress.Read(OutsideHostMac))] },
        });
        var map = new ShardMap(s, shards);
        var det = DeterministicMap.For(s)!;
        var engines = new NatEngine[shards];
        for (int k = 0; k < shards; k++)
        {
            engines[k] = new NatEngine(s, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac), new EngineOptions { Seed = (ulong)k + 1, Shard = k, Shards = shards });
        }
        var rng = new Random(7 + shards * 10 + proto);
        var seen = new int[shards];
        var residues = new HashSet<int>();
        for (int i = 0; i < 300; i++)
        {
            string host = $"10.0.0.{rng.Next(2, 64)}"; // .0 is the network, .1 natd's inside address
            int sport = rng.Next(1024, 65536), rport = rng.Next(1, 65536);
            byte[] frame = proto switch
            {
                6 => Tcp(host, sport, Remote, rport, 0x02),
                17 => Udp(host, sport, Remote, rport),
                _ => Icmp(host, Remote, 8, 0, sport, 1),
            };
            int owner = map.Owner(frame, Side.Inside);
            seen[owner]++;
            var slot = new byte[FrameBatch.SlotSize];
            frame.CopyTo(slot, 0);
            int len = frame.Length;
            var ctx = new PacketContext(engines[owner].Counters, 1000);
            Assert.Equal(Verdict.ToOutside, engines[owner].Process(slot, ref len, Side.Inside, FrameFlags.None, ref ctx));
            byte[] o = slot[..len];
            int ext = proto == 1 ? IcmpId(o) : SrcPort(o);
            Assert.True(det.TryForward(Ipv4.Parse(host), out var r));
            Assert.InRange(ext, r.Low, r.High);
            residues.Add(ext % shards);
            byte[] reply = proto switch
            {
                6 => Tcp(Remote, rport, Ext, ext, 0x12, ack: 1001),
                17 => Udp(Remote, rport, Ext, ext),
                _ => Icmp(Remote, Ext, 0, 0, ext, 1),
            };
            // The reply's owner is read off the range its port lies in, not port % shards.
            Assert.Equal(owner, map.Owner(EngineHarness.FromOutside(reply), Side.Outside));
            if (proto != 1)
            {
                Assert.Equal(owner, map.OwnerOfExpectation(inbound: true, proto, Ipv4.Parse(Ext), (ushort)ext, 0));
            }
        }
        Assert.All(seen, n => Assert.True(n > 0, "every shard owns some subscribers"));
        // No shard's allocator is confined to its port % shards slice in this mode.
        Assert.Equal(shards, residues.Count);
    }
}

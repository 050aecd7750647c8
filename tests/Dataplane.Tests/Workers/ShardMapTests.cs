using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Workers;

/// <summary>
/// <see cref="ShardMap"/> is the only owner-of function: the shard that allocated an external port,
/// the owner of the frames of its flow both ways, of its exported session record, of an
/// expectation on it, and the allocator's slice all agree; forwards, backends and port-less state
/// are shard 0's.
/// </summary>
public class ShardMapTests
{
    private const string Ext = "198.51.100.1", Remote = "198.51.100.2";

    private static NatSettings Settings() => EngineHarness.LabSettings() with
    {
        Outside = EngineHarness.LabSettings().Outside with { Neighbours = [new(Ipv4.Parse(Remote), MacAddress.Read(OutsideHostMac))] },
        Forwards =
        [
            new PortForward
            {
                Protocol = 17, ExternalAddress = Ipv4.Parse(Ext), ExternalPorts = new PortRange(5000, 5000),
                Backends = [new(Ipv4.Parse("10.0.0.2"), 0)],
            },
        ],
    };

    [Theory]
    [InlineData(2, 17)]
    [InlineData(2, 6)]
    [InlineData(3, 17)]
    [InlineData(4, 6)]
    [InlineData(4, 1)]
    public void Random_flows_are_owned_by_the_shard_that_allocated_their_port_everywhere(int shards, byte proto)
    {
        var s = Settings();
        var map = new ShardMap(s, shards);
        var engines = new NatEngine[shards];
        for (int k = 0; k < shards; k++)
        {
            engines[k] = new NatEngine(s, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac), new EngineOptions { Seed = (ulong)k + 1, Shard = k, Shards = shards });
        }
        var rng = new Random(20240610 + shards * 10 + proto);
        var seen = new int[shards];
        for (int i = 0; i < 200; i++)
        {
            string host = $"10.0.0.{rng.Next(3, 255)}";
            int sport = rng.Next(1024, 65536), rport = rng.Next(1, 65536);
            byte[] frame = proto switch
            {
                6 => Tcp(host, sport, Remote, rport, 0x02),
                17 => Udp(host, sport, Remote, rport),
                _ => Icmp(host, Remote, 8, 0, sport, 1),
            };
            int owner = map.Owner(frame, Side.Inside);
            Assert.Equal(map.OwnerOfInside(Ipv4.Parse(host)), owner);
            seen[owner]++;
            var slot = new byte[FrameBatch.SlotSize];
            frame.CopyTo(slot, 0);
            int len = frame.Length;
            var ctx = new PacketContext(engines[owner].Counters, 1000);
            Assert.Equal(Verdict.ToOutside, engines[owner].Process(slot, ref len, Side.Inside, FrameFlags.None, ref ctx));
            byte[] o = slot[..len];
            int ext = proto == 1 ? IcmpId(o) : SrcPort(o);
            Assert.Equal(owner, map.OwnerOfExternalPort(ext));
            byte[] reply = proto switch
            {
                6 => Tcp(Remote, rport, Ext, ext, 0x12, ack: 1001),
                17 => Udp(Remote, rport, Ext, ext),
                _ => Icmp(Remote, Ext, 0, 0, ext, 1),
            };
            Assert.Equal(owner, map.Owner(EngineHarness.FromOutside(reply), Side.Outside));
            if (proto != 1)
            {
                Assert.Equal(owner, map.OwnerOfExpectation(inbound: true, proto, Ipv4.Parse(Ext), (ushort)ext, 0));
            }
            Assert.Equal(owner, map.OwnerOfExpectation(inbound: false, proto, Ipv4.Parse(Ext), 0, Ipv4.Parse(host)));
        }
        Assert.All(seen, n => Assert.True(n > 0, "every shard owns some of the flows"));
        for (int k = 0; k < shards; k++)
        {
            var records = new List<SessionRecord>();
            engines[k].ExportSessions(records, 1000);
            Assert.NotEmpty(records);
            // The record of a restored session goes back to the shard that owns both of its frames.
            Assert.All(records, r => Assert.Equal(k, map.OwnerOf(r)));
        }
    }

    [Theory]
    [InlineData(2, 0)]
    [InlineData(2, 1)]
    [InlineData(3, 2)]
    [InlineData(4, 3)]
    [InlineData(5, 0)]
    public void The_allocator_hands_out_exactly_the_ports_the_map_gives_its_shard(int shards, int shard)
    {
        var ports = new PortAllocator(1, 1024, 65535, seed: 9, shard, shards, p => ShardMap.OwnerOfPort(p, shards));
        for (int i = 0; i < 2000; i++)
        {
            int p = ports.Allocate(0, 0, privileged: false);
            Assert.Equal(shard, ShardMap.OwnerOfPort(p, shards));
        }
        for (int p = 1024; p < 1100; p++)
        {
            // Another shard's port is never free here; this shard's may be.
            if (ShardMap.OwnerOfPort(p, shards) != shard)
            {
                Assert.False(ports.TryReserve(0, 1, p));
            }
            else
            {
                Assert.True(ports.TryReserve(0, 1, p));
            }
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    public void Deterministic_ports_are_owned_by_their_subscribers_shard_and_other_ports_by_port_mod_shards(int shards)
    {
        var s = Settings() with
        {
            Forwards = [],
            Cgnat = new CgnatSettings
            {
                Allocation = PortAllocation.Deterministic,
                Deterministic = new DeterministicSettings([Ipv4Prefix.Parse("10.0.0.0/26")], 500),
            },
        };
        var map = new ShardMap(s, shards);
        var det = DeterministicMap.For(s)!;
        uint ext = Ipv4.Parse(Ext);
        for (int port = 1; port < 65536; port++)
        {
            int owner = map.OwnerOfArrival(IpProtocol.Tcp, ext, FlowKey.PortToRaw((ushort)port)); // TCP: UDP 500 is ISAKMP's (shard 0)
            int expected = det.TryReverse(ext, port, out long i) ? map.OwnerOfInside(det.SubscriberAt(i)) : ShardMap.OwnerOfPort(port, shards);
            Assert.Equal(expected, owner);
            // The allocators pre-mark nothing: only a subscriber's owner allocates in its range.
            Assert.Equal(-1, map.OwnerOfExternalPort(port));
        }
        // 64 subscribers x 500 ports from 1024: 33024 and up are in no range.
        Assert.Equal(ShardMap.OwnerOfPort(40000, shards), map.OwnerOfArrival(IpProtocol.Tcp, ext, FlowKey.PortToRaw(40000)));
        var allocator = new PortAllocator(1, 1024, 65535, seed: 3, 1, shards, map.OwnerOfExternalPort);
        Assert.True(allocator.TryReserve(0, 1, 1024 + shards)); // port % shards == 0: another shard's slice in dynamic mode
    }

    [Fact]
    public void Hosts_of_one_subscriber_prefix_share_a_shard()
    {
        var s = Settings() with { Forwards = [], Cgnat = new CgnatSettings { SubscriberPrefix = 28 } };
        var map = new ShardMap(s, 4);
        var owners = new HashSet<int>();
        for (int h = 0; h < 256; h++)
        {
            uint a = Ipv4.Parse($"10.0.0.{h}");
            Assert.Equal(map.OwnerOfInside(s.Cgnat.SubscriberOf(a)), map.OwnerOfInside(a));
            owners.Add(map.OwnerOfInside(a));
        }
        Assert.True(owners.Count > 1);
    }

    [Fact]
    public void A_forward_backends_whole_subscriber_is_shard_zeros_and_so_is_its_deterministic_range()
    {
        // The backend 10.0.0.2 is in subscriber 10.0.0.0/30: its neighbours share its shard and range.
        var s = Settings() with
        {
            Cgnat = new CgnatSettings
            {
                SubscriberPrefix = 30,
                Allocation = PortAllocation.Deterministic,
                Deterministic = new DeterministicSettings([Ipv4Prefix.Parse("10.0.0.0/24")]),
            },
        };
        var det = DeterministicMap.For(s)!;
        Assert.True(det.TryForward(Ipv4.Parse("10.0.0.3"), out var r));
        for (int shards = 2; shards <= 4; shards++)
        {
            var map = new ShardMap(s, shards);
            foreach (string host in new[] { "10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3" })
            {
                Assert.Equal(ShardMap.PortLessShard, map.OwnerOfInside(Ipv4.Parse(host)));
            }
            for (int port = r.Low; port <= r.High; port++)
            {
                Assert.Equal(ShardMap.PortLessShard, map.OwnerOfArrival(IpProtocol.Tcp, Ipv4.Parse(Ext), FlowKey.PortToRaw((ushort)port)));
            }
        }
    }

    public static TheoryData<string, byte[], Side> PinnedToShardZero() => new()
    {
        { "forward arrival", EngineHarness.FromOutside(Udp(Remote, 40000, Ext, 5000)), Side.Outside },
        { "backend in2out", Udp("10.0.0.2", 5000, Remote, 40000), Side.Inside },
        { "GRE in2out", Wrap("10.0.0.7", Remote, 47, new byte[24], 64, null, null), Side.Inside },
        { "ESP in2out", Wrap("10.0.0.7", Remote, 50, new byte[24], 64, null, null), Side.Inside },
        { "GRE out2in", EngineHarness.FromOutside(Wrap(Remote, Ext, 47, new byte[24], 64, null, null)), Side.Outside },
    };

    [Theory]
    [MemberData(nameof(PinnedToShardZero))]
    public void Forwards_backends_and_port_less_state_are_shard_zeros(string what, byte[] frame, Side ingress)
    {
        for (int shards = 2; shards <= 5; shards++)
        {
            Assert.True(ShardMap.PortLessShard == new ShardMap(Settings(), shards).Owner(frame, ingress), $"{what} with {shards} shards");
        }
    }

    [Theory]
    [InlineData(47, SessionOrigin.PortLess, "10.0.0.7")]
    [InlineData(50, SessionOrigin.PortLess, "10.0.0.9")]
    [InlineData(17, SessionOrigin.Forward, "10.0.0.2")]
    [InlineData(6, SessionOrigin.Forward, "10.0.0.200")]
    [InlineData(17, SessionOrigin.Masquerade, "10.0.0.2")] // a backend's own outbound flow
    public void Session_records_of_forwards_and_port_less_protocols_are_restored_to_shard_zero(byte proto, SessionOrigin origin, string inside)
    {
        for (int shards = 1; shards <= 4; shards++)
        {
            Assert.Equal(0, new ShardMap(Settings(), shards).OwnerOfSession(proto, origin, Ipv4.Parse(inside)));
        }
    }

    [Theory]
    [InlineData(0, 160_000, 4096)]
    [InlineData(0, 16_000, 1000)]
    [InlineData(0, 100, 64)]
    [InlineData(1, 160_000, 16)]
    [InlineData(3, 100, 16)]
    public void Ipsec_tables_are_sized_for_shard_zero_only(int shard, int maxSessions, int expected)
    {
        Assert.Equal(expected, ShardMap.IpsecCapacity(shard, maxSessions));
        var engine = new NatEngine(Settings() with { MaxSessions = maxSessions }, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac),
            new EngineOptions { Seed = 1, Shard = shard, Shards = 4 });
        Assert.Equal(expected, engine.Ipsec.Capacity); // the engine sizes its table with the map's answer
    }

    [Fact]
    public void One_shard_owns_everything()
    {
        var map = new ShardMap(Settings(), 1);
        Assert.Equal(-1, map.Owner(Udp("10.0.0.5", 1, Remote, 2), Side.Inside)); // "whoever received it": the only poller
        Assert.Equal(0, map.OwnerOfInside(Ipv4.Parse("10.0.0.5")));
        Assert.Equal(0, map.OwnerOfArrival(IpProtocol.Udp, Ipv4.Parse(Ext), FlowKey.PortToRaw(40001)));
        Assert.Equal(0, map.OwnerOfExternalPort(40001));
    }

    [Fact]
    public void A_forward_arrival_is_shard_zeros_whatever_its_port_slice()
    {
        var map = new ShardMap(Settings(), 3);
        Assert.NotEqual(0, ShardMap.OwnerOfPort(5000, 3)); // 5000 % 3 == 2: only the forward pins it
        Assert.Equal(0, map.OwnerOfArrival(IpProtocol.Udp, Ipv4.Parse(Ext), FlowKey.PortToRaw(5000)));
        Assert.Equal(2, map.OwnerOfArrival(IpProtocol.Tcp, Ipv4.Parse(Ext), FlowKey.PortToRaw(5000))); // the forward is UDP only
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void Every_address_of_a_subscriber_prefix_shares_one_shard(int shards)
    {
        // With /32 subscribers the 64 hosts of a /26 spread over the shards; with /26 they are one subscriber, one shard.
        var hosts = Enumerable.Range(0, 64).Select(i => Ipv4.Parse($"10.0.1.{i}")).ToArray();
        var perHost = new ShardMap(Settings(), shards);
        Assert.True(hosts.Select(perHost.OwnerOfInside).Distinct().Count() > 1);
        var prefixed = new ShardMap(Settings() with { Cgnat = new CgnatSettings { SubscriberPrefix = 26 } }, shards);
        Assert.Single(hosts.Select(prefixed.OwnerOfInside).Distinct());
        Assert.Equal(perHost.OwnerOfInside(hosts[0]), prefixed.OwnerOfInside(hosts[37])); // the subscriber's own address decides
    }
}

using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Workers;

/// <summary>
/// RFC 4787 REQ-14 through 1 and 2 pollers over in-memory ports: a datagram's fragments arrive out
/// of order, each on another poller. From inside they go to the inside host's shard (no ports
/// needed); from outside they meet at the datagram's shard (<see cref="ShardMap.OwnerOfDatagram"/>),
/// which learns the owner from the first fragment's port and hands them all there, so a reply's
/// fragments are un-translated whichever shard owns the datagram hash and the port.
/// </summary>
public class FragmentShardTests
{
    private const string Ext = "198.51.100.1", Remote = "198.51.100.2";

    private static byte[] Payload(int n)
    {
        var p = new byte[n];
        for (int i = 0; i < n; i++)
        {
            p[i] = (byte)(i * 13 + 1);
        }
        return p;
    }

    [Fact]
    public void ShardMap_routes_inbound_fragments_by_datagram_and_outbound_ones_by_inside_host()
    {
        var map = new ShardMap(EngineHarness.LabSettings(), 4);
        var outFrags = FragmentKit.Split(Udp("10.0.0.7", 40000, Remote, 53, Payload(4000)), 1480, id: 99);
        foreach (var f in outFrags)
        {
            FrameParser.Parse(f, Side.Inside, 0, out ParsedFrame p);
            Assert.Equal(map.OwnerOfInside(Ipv4.Parse("10.0.0.7")), map.Owner(p, f));
        }
        for (ushort id = 0; id < 32; id++)
        {
            var inFrags = FragmentKit.Split(EngineHarness.FromOutside(Udp(Remote, 53, Ext, 40001, Payload(4000))), 1480, id);
            FrameParser.Parse(inFrags[0], Side.Outside, 0, out ParsedFrame first);
            int meet = map.OwnerOfDatagram(first);
            Assert.Equal(40001 % 4, map.OwnerOfFlow(first, inFrags[0])); // the first fragment's port names the owner
            foreach (var f in inFrags)
            {
                FrameParser.Parse(f, Side.Outside, 0, out ParsedFrame p);
                Assert.Equal(meet, map.Owner(p, f)); // every fragment meets at one shard
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Udp_4000_bytes_each_way_in_reverse_order_across_pollers(int workers)
    {
        await using var gw = await ShardedGateway.StartAsync(workers, s => s);
        int n = 0;
        bool routed = false, local = false;
        foreach (string client in gw.Clients)
        {
            for (int rx = 0; rx < workers; rx++, n++)
            {
                int sport = 43000 + n;
                var whole = Udp(client, sport, Remote, 5000, Payload(4000), smac: ShardedGateway.MacOf(client), dmac: GatewayInsideMac);
                var frags = FragmentKit.Split(whole, 1480, id: (ushort)(100 + n));
                for (int i = frags.Count - 1; i >= 0; i--)
                {
                    gw.Inject((rx + i) % workers, Side.Inside, frags[i]);
                }
                var joined = FragmentKit.Join(await gw.Take(Side.Outside, frags.Count));
                Assert.True(ChecksumsValid(joined));
                Assert.Equal(Ext, Src(joined));
                Assert.Equal(Remote, Dst(joined));
                Assert.Equal(Payload(4000), joined[(14 + 20 + 8)..]);
                int ext = SrcPort(joined);

                // The reply: pick an identification whose meeting shard is the port's owner on one
                // round and another shard on the next, so both the local and the routed path run.
                var reply = Udp(Remote, 5000, Ext, ext, Payload(3800), smac: OutsideHostMac, dmac: GatewayOutsideMac);
                List<byte[]> back = [];
                for (ushort id = (ushort)(200 + (n * 50)); ; id++)
                {
                    back = FragmentKit.Split(reply, 1480, id);
                    FrameParser.Parse(back[0], Side.Outside, 0, out ParsedFrame p);
                    bool isRouted = workers > 1 && gw.Router.OwnerOfDatagram(p) != gw.Router.OwnerOfFlow(p, back[0]);
                    if (workers == 1 || isRouted == (n % 2 == 0))
                    {
                        routed |= isRouted;
                        local |= !isRouted;
                        break;
                    }
                }
                for (int i = back.Count - 1; i >= 0; i--)
                {
                    gw.Inject((rx + i + 1) % workers, Side.Outside, back[i]);
                }
                var joinedBack = FragmentKit.Join(await gw.Take(Side.Inside, back.Count));
                Assert.True(ChecksumsValid(joinedBack));
                Assert.Equal(client, Dst(joinedBack));
                Assert.Equal(sport, DstPort(joinedBack));
                Assert.Equal(Payload(3800), joinedBack[(14 + 20 + 8)..]);
            }
        }
        Assert.True(local);
        Assert.Equal(workers > 1, routed);
    }
}

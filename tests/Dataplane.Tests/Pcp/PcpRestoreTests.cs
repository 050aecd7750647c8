using Natd.Dataplane.Io;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;
using Natd.Dataplane.Rings;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Pcp.PcpKit;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Pcp;

/// <summary>
/// The restart snapshot (<c>natd run --state</c>) brings back explicit MAP mappings whose host had
/// no session when it was written, in every allocation mode: the same external endpoint, the
/// subscriber's port block claimed again (the same holding: no second <c>port-block-allocate</c>),
/// reachable from outside; with two shards each mapping restored on the shard its external port
/// arrives at.
/// </summary>
public class PcpRestoreTests
{
    private const string Host = EngineHarness.InsideHost;
    private const string Remote = EngineHarness.OutsideHost;
    private const string External = EngineHarness.External;

    /// <summary>The allocation mode's settings: dynamic (the default), port blocks of 64 (one a subscriber), or deterministic over 10.0.0.0/26.</summary>
    private static NatSettings Mode(NatSettings s, string mode) => mode switch
    {
        "port-block" => s with { Cgnat = CgnatKit.Pba(size: 64, perSubscriber: 1) },
        "deterministic" => s with
        {
            Cgnat = new CgnatSettings
            {
                Allocation = PortAllocation.Deterministic,
                Deterministic = new DeterministicSettings([Ipv4Prefix.Parse("10.0.0.0/26")], 0),
            },
        },
        _ => s,
    };

    private static int MapPort(EngineHarness h, int protocol, int internalPort)
    {
        byte[] r = Ask(h, Hex(Map(3600, Host, protocol, internalPort)))!;
        Assert.Equal(PcpResultCode.Success, Result(r));
        return ExternalPort(r);
    }

    private static List<PcpMappingInfo> Mappings(NatEngine engine, long nowMs)
    {
        var list = new List<PcpMappingInfo>();
        engine.CollectPcpMappings(list, nowMs);
        return list;
    }

    private static List<(uint External, int Low, int High, uint Subscriber)> Blocks(NatEngine engine, long nowMs)
    {
        var blocks = new List<BlockInfo>();
        engine.CollectBlocks(blocks, nowMs);
        return [.. blocks.Select(b => (b.External, b.Low, b.High, b.Subscriber)).Order()];
    }

    [Theory]
    [InlineData("dynamic")]
    [InlineData("port-block")]
    [InlineData("deterministic")]
    public void A_mapping_whose_host_had_no_session_comes_back_with_its_external_port(string mode)
    {
        var before = Harness(more: s => Mode(s, mode));
        int udp = MapPort(before, IpProtocol.Udp, 5000);
        int tcp = MapPort(before, IpProtocol.Tcp, 8080);
        Assert.Equal(0, before.Engine.Table.Count); // no session: nothing but the mappings holds the ports
        var blocksBefore = Blocks(before.Engine, before.Now);
        Assert.Equal(mode == "port-block" ? 1 : 0, blocksBefore.Count);
        var saved = new List<PcpMappingRecord>();
        before.Engine.ExportPcpMappings(saved, before.Now);

        var after = Harness(more: s => Mode(s, mode)); // a new process: no session restored
        var events = new SpscRing<NatEvent>(256);
        after.Engine.Table.Events = events;
        Assert.Equal(2, after.Engine.ImportPcpMappings(saved, after.Now));
        Assert.Equal(
            [(IpProtocol.Tcp, (ushort)8080, Ipv4.Parse(External), (ushort)tcp), (IpProtocol.Udp, (ushort)5000, Ipv4.Parse(External), (ushort)udp)],
            Mappings(after.Engine, after.Now).Select(m => (m.Protocol, m.InternalPort, m.External, m.ExternalPort)).Order().ToArray());
        // The subscriber's block came back with the mappings' ports: the holding the first run logged, not a new one.
        Assert.Equal(blocksBefore, Blocks(after.Engine, after.Now));
        Assert.Empty(CgnatKit.Drain(events, NatEventType.PortBlockAllocated));

        Assert.Equal(Verdict.ToInside, after.Run(EngineHarness.FromOutside(Udp(Remote, 7777, External, udp)), Side.Outside, out byte[] o));
        Assert.Equal((Host, 5000), (Dst(o), DstPort(o)));
        Assert.Equal(Verdict.ToInside, after.Run(EngineHarness.FromOutside(Tcp(Remote, 7777, External, tcp, 0x02)), Side.Outside, out o));
        Assert.Equal((Host, 8080), (Dst(o), DstPort(o)));
        // The ports are the mappings': another internal port cannot be given them.
        byte[] taken = Ask(after, Hex(Map(600, Host, IpProtocol.Udp, 5001, udp, options: PreferFailure)))!;
        Assert.Equal(PcpResultCode.CannotProvideExternal, Result(taken));
        if (mode == "port-block")
        {
            // A new flow of the subscriber goes on in the block it holds again.
            byte[] f = after.Out(Udp(Host, 41000, Remote, 53));
            var (_, low, high, _) = Assert.Single(blocksBefore);
            Assert.InRange(SrcPort(f), low, high);
            Assert.Empty(CgnatKit.Drain(events, NatEventType.PortBlockAllocated));
        }
    }

    [Fact]
    public void A_block_already_held_by_another_subscriber_is_not_taken_by_a_restored_mapping()
    {
        var before = Harness(more: s => Mode(s, "port-block"));
        int port = MapPort(before, IpProtocol.Udp, 5000);
        var saved = new List<PcpMappingRecord>();
        before.Engine.ExportPcpMappings(saved, before.Now);

        // The record names another subscriber of the same block: its owner's block stays its owner's.
        var after = Harness(more: s => Mode(s, "port-block"));
        Assert.Equal(1, after.Engine.ImportPcpMappings(saved, after.Now));
        var (_, low, _, _) = Assert.Single(Blocks(after.Engine, after.Now));
        var other = saved[0] with { Internal = Ipv4.Parse("10.0.0.3"), ExternalPort = (ushort)(port == low ? low + 1 : low) };
        Assert.Equal(0, after.Engine.ImportPcpMappings([other], after.Now));
        Assert.Single(Mappings(after.Engine, after.Now));
    }

    [Theory]
    [InlineData("dynamic")]
    [InlineData("port-block")]
    [InlineData("deterministic")]
    public void With_two_shards_each_mapping_comes_back_on_the_shard_its_port_arrives_at(string mode)
    {
        const int shards = 2;
        const long now = 1000;
        NatSettings s = EngineHarness.LabSettings() with
        {
            Inside = EngineHarness.LabSettings().Inside with
            {
                Neighbours = [.. Enumerable.Range(2, 10).Select(i => new KeyValuePair<uint, MacAddress>(Ipv4.Parse($"10.0.0.{i}"), MacAddress.Read(InsideHostMac)))],
            },
            Outside = EngineHarness.LabSettings().Outside with { Neighbours = [new(Ipv4.Parse(Remote), MacAddress.Read(OutsideHostMac))] },
            Pcp = new PcpSettings { Enabled = true, RequestsPerSecond = 1000 },
        };
        s = Mode(s, mode);
        var map = new ShardMap(s, shards);
        NatEngine[] Engines() => [.. Enumerable.Range(0, shards).Select(k =>
            new NatEngine(s, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac), new EngineOptions { Seed = (ulong)k + 1, Shard = k, Shards = shards }))];

        var before = Engines();
        var ports = new Dictionary<string, int>();
        for (int i = 2; i < 12; i++)
        {
            string host = $"10.0.0.{i}";
            byte[] msg = new byte[1100];
            byte[] request = Hex(Map(3600, host, IpProtocol.Udp, 5000));
            request.CopyTo(msg, 0);
            NatEngine owner = before[map.OwnerOfInside(Ipv4.Parse(host))];
            int n = owner.AnswerPcpForTest(msg, request.Length, Ipv4.Parse(host), now, out PcpOutcome outcome);
            Assert.Equal(PcpOutcome.Success, outcome);
            ports[host] = ExternalPort(msg[..n]);
        }
        // The state file holds every shard's mappings; the daemon gives each to its host's shard.
        var saved = new List<PcpMappingRecord>();
        foreach (NatEngine e in before)
        {
            e.ExportPcpMappings(saved, now);
        }
        var after = Engines();
        var owners = new HashSet<int>();
        for (int k = 0; k < shards; k++)
        {
            var rings = new SpscRing<NatEvent>(256);
            after[k].Table.Events = rings;
            var mine = saved.Where(r => map.OwnerOfInside(r.Internal) == k).ToList();
            Assert.Equal(mine.Count, after[k].ImportPcpMappings(mine, now));
            Assert.Equal(Blocks(before[k], now), Blocks(after[k], now));
            Assert.Empty(CgnatKit.Drain(rings, NatEventType.PortBlockAllocated));
        }
        foreach (var (host, port) in ports)
        {
            byte[] frame = EngineHarness.FromOutside(Udp(Remote, 7777, External, port));
            int owner = map.Owner(frame, Side.Outside);
            Assert.Equal(map.OwnerOfInside(Ipv4.Parse(host)), owner);
            owners.Add(owner);
            PcpMappingInfo m = Mappings(after[owner], now).Single(x => x.Internal == Ipv4.Parse(host));
            Assert.Equal(port, m.ExternalPort);
            var slot = new byte[FrameBatch.SlotSize];
            frame.CopyTo(slot, 0);
            int len = frame.Length;
            var ctx = new PacketContext(after[owner].Counters, now);
            Assert.Equal(Verdict.ToInside, after[owner].Process(slot, ref len, Side.Outside, FrameFlags.None, ref ctx));
            Assert.Equal((host, 5000), (Dst(slot[..len]), DstPort(slot[..len])));
        }
        Assert.Equal(shards, owners.Count);
    }
}

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
/// All-ports MAP (<c>pcp.all-ports</c>; RFC 6887 sections 11.1 and 11.3): exact replies for TCP
/// port 0 and protocol 0, the codes of before when off, one host per subscriber, inbound to the
/// subscriber's ports (deterministic range, port blocks) opening sessions to the same port,
/// nothing else opened, FILTER, delete, quota, reload, snapshot, and two shards.
/// </summary>
public class PcpAllPortsTests
{
    private const string Host = EngineHarness.InsideHost;
    private const string Remote = EngineHarness.OutsideHost;
    private const string External = EngineHarness.External;
    private static readonly string Ext = Mapped(External);
    private static readonly string NoAddress = new('0', 32);

    // 64 subscribers on one address, 1008 ports each: 10.0.0.2 holds 3040-4047, 10.0.0.3 4048-5055.
    private static NatSettings Deterministic(NatSettings s, int subscriberPrefix = 32) => s with
    {
        Cgnat = new CgnatSettings
        {
            Allocation = PortAllocation.Deterministic,
            SubscriberPrefix = subscriberPrefix,
            Deterministic = new DeterministicSettings([Ipv4Prefix.Parse("10.0.0.0/26")], 0),
        },
    };

    private static EngineHarness AllPorts(Func<NatSettings, NatSettings>? more = null, bool on = true, Func<PcpSettings, PcpSettings>? pcp = null)
        => Harness(p => (pcp ?? (x => x))(p with { AllPorts = on }), more ?? (s => Deterministic(s)));

    private static Verdict Inbound(EngineHarness h, int port, out byte[] o, bool tcp = true, string remote = Remote, int remotePort = 7777)
        => h.Run(EngineHarness.FromOutside(tcp ? Tcp(remote, remotePort, External, port, 0x02) : Udp(remote, remotePort, External, port)), Side.Outside, out o);

    private static void MapAll(EngineHarness h, int protocol, string from = Host, string options = "", int lifetime = 3600)
        => Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(lifetime, from, protocol, 0, options: options)), from)!));

    [Fact]
    public void Tcp_port_0_gets_the_paired_address_and_port_0_with_the_lifetime_granted()
    {
        var h = AllPorts();
        Assert.Equal(Head(1, 0, 3600, 0) + Nonce + "06000000" + "0000" + "0000" + Ext, AskHex(h, Map(3600, Host, IpProtocol.Tcp, 0)));
        Assert.Equal(1, Count(h, PcpOutcome.Success));
    }

    [Fact]
    public void Protocol_0_gets_the_paired_address_and_port_0_and_a_refresh_keeps_one_mapping()
    {
        var h = AllPorts(pcp: p => p with { MaxLifetime = 1000 });
        Assert.Equal(Head(1, 0, 1000, 0) + Nonce + "00000000" + "0000" + "0000" + Ext, AskHex(h, Map(99999, Host, 0, 0)));
        h.Now += 5_000;
        Assert.Equal(Head(1, 0, 600, 5) + Nonce + "00000000" + "0000" + "0000" + Ext, AskHex(h, Map(600, Host, 0, 0)));
        Assert.Equal(1, h.Engine.PcpTable!.Count);
    }

    [Fact]
    public void Off_by_default_the_codes_stay_UNSUPP_PROTOCOL_and_NOT_AUTHORIZED()
    {
        Assert.False(new PcpSettings().AllPorts);
        var h = AllPorts(on: false);
        Assert.Equal(Head(1, 9, 1800, 0) + Nonce + "00000000" + "0000" + "0000" + NoAddress, AskHex(h, Map(3600, Host, 0, 0)));
        Assert.Equal(Head(1, 2, 1800, 0) + Nonce + "06000000" + "0000" + "0000" + NoAddress, AskHex(h, Map(3600, Host, IpProtocol.Tcp, 0)));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
        Assert.Equal(Verdict.Drop, Inbound(h, 3500, out _));
    }

    [Fact]
    public void Suggested_port_is_ignored_and_with_PREFER_FAILURE_is_CANNOT_PROVIDE_EXTERNAL()
    {
        var h = AllPorts();
        string refused = Map(3600, Host, IpProtocol.Udp, 0, 3500, options: PreferFailure);
        Assert.Equal(Head(1, 11, 30, 0) + ToHex(Hex(refused))[48..], AskHex(h, refused));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
        Assert.Equal(Head(1, 0, 3600, 0) + Nonce + "11000000" + "0000" + "0000" + Ext, AskHex(h, Map(3600, Host, IpProtocol.Udp, 0, 3500)));
    }

    [Fact]
    public void Inbound_to_a_port_of_the_subscriber_opens_a_session_to_the_same_internal_port()
    {
        var h = AllPorts();
        MapAll(h, IpProtocol.Tcp);
        Assert.Equal(Verdict.ToInside, Inbound(h, 3500, out byte[] o));
        Assert.Equal((Host, 3500), (Dst(o), DstPort(o)));
        Assert.True(ChecksumsValid(o));
        // The server's SYN-ACK leaves from the same port; a second remote reaches the same port too.
        byte[] back = h.Out(Tcp(Host, 3500, Remote, 7777, 0x12, ack: 1));
        Assert.Equal((External, 3500), (Src(back), SrcPort(back)));
        Assert.Equal(Verdict.ToInside, Inbound(h, 3500, out o, remote: "198.51.100.3", remotePort: 8888));
        Assert.Equal(3500, DstPort(o));
        Assert.Equal(Verdict.ToInside, Inbound(h, 4047, out o));
        Assert.Equal(4047, DstPort(o));
        // TCP only: UDP to the same ports is not opened, nor a TCP packet without SYN.
        Assert.Equal(Verdict.Drop, Inbound(h, 3600, out _, tcp: false));
        Assert.Equal(Verdict.Drop, h.Run(EngineHarness.FromOutside(Tcp(Remote, 7777, External, 3601, 0x10)), Side.Outside, out _));
    }

    [Fact]
    public void A_port_whose_last_session_ended_opens_again_at_once()
    {
        // A server behind all ports sees connections come and go: the port it listens on must not
        // rest in nat.port-reuse-delay between them, as it goes back to the same host and port.
        var h = AllPorts();
        MapAll(h, IpProtocol.Udp);
        Assert.Equal(Verdict.ToInside, Inbound(h, 3500, out _, tcp: false));
        h.Now += 400_000; // past the UDP idle timeout
        h.Engine.Sweep(h.Now, 1000);
        Assert.Equal(0, h.Engine.Table.Count);
        Assert.Equal(Verdict.ToInside, Inbound(h, 3500, out byte[] o, tcp: false, remote: "198.51.100.3"));
        Assert.Equal(3500, DstPort(o));
    }

    [Fact]
    public void Protocol_0_opens_tcp_and_udp()
    {
        var h = AllPorts();
        MapAll(h, 0);
        Assert.Equal(Verdict.ToInside, Inbound(h, 3500, out byte[] o));
        Assert.Equal(3500, DstPort(o));
        Assert.Equal(Verdict.ToInside, Inbound(h, 3501, out o, tcp: false));
        Assert.Equal(3501, DstPort(o));
    }

    [Fact]
    public void Ports_outside_the_subscribers_range_are_not_opened()
    {
        var h = AllPorts();
        MapAll(h, 0);
        Assert.Equal(Verdict.Drop, Inbound(h, 4048, out _)); // 10.0.0.3's first port
        Assert.Equal(Verdict.Drop, Inbound(h, 3039, out _)); // 10.0.0.1's last
        Assert.Equal(Verdict.Drop, Inbound(h, 1000, out _)); // in no range
        Assert.Equal(0, h.Engine.Table.Count);
    }

    [Fact]
    public void A_port_a_live_mapping_holds_keeps_to_that_mapping()
    {
        var h = AllPorts();
        int used = SrcPort(h.Out(Udp(Host, 5000, Remote, 53)));
        Assert.InRange(used, 3040, 4047);
        MapAll(h, IpProtocol.Udp);
        // Another remote to the outbound flow's port: that mapping's filtering (address and port dependent) refuses it.
        Assert.Equal(Verdict.Drop, Inbound(h, used, out _, tcp: false, remote: "198.51.100.3"));
        Assert.Equal(DropReason.Filtered, h.LastDrop);
        // Its own remote still reaches the flow's internal port, not the same-numbered one.
        Assert.Equal(Verdict.ToInside, Inbound(h, used, out byte[] o, tcp: false, remotePort: 53));
        Assert.Equal(5000, DstPort(o));
    }

    [Fact]
    public void Filter_applies_to_every_port()
    {
        var h = AllPorts();
        MapAll(h, IpProtocol.Tcp, options: Filter(32, 0, Remote));
        Assert.Equal(Verdict.Drop, Inbound(h, 3500, out _, remote: "198.51.100.3"));
        Assert.Equal(DropReason.PcpFiltered, h.LastDrop);
        Assert.Equal(Verdict.ToInside, Inbound(h, 3500, out _));
    }

    [Fact]
    public void Inbound_rules_and_the_subscribers_session_limit_apply()
    {
        var rules = new List<ForwardRule>
        {
            new() { Name = "no-telnet-in", Protocol = IpProtocol.Tcp, In = RuleInterface.Outside, DestinationPorts = [new PortRange(3523, 3523)], Action = RuleAction.Deny },
            new() { Name = "masq", In = RuleInterface.Inside, Out = RuleInterface.Outside, Action = RuleAction.Masquerade },
        };
        var h = AllPorts(s => Deterministic(s) with { Rules = rules, DefaultPolicy = RuleAction.Accept });
        MapAll(h, IpProtocol.Tcp);
        Assert.Equal(Verdict.Drop, Inbound(h, 3523, out _));
        Assert.Equal(DropReason.RuleDeny, h.LastDrop);

        var limited = AllPorts(s => Deterministic(s) with { Cgnat = Deterministic(s).Cgnat with { Limits = new SubscriberLimits(Sessions: 1) } });
        MapAll(limited, IpProtocol.Tcp);
        Assert.Equal(Verdict.ToInside, Inbound(limited, 3500, out _));
        Assert.Equal(Verdict.Drop, Inbound(limited, 3501, out _));
        Assert.Equal(DropReason.SubscriberSessionLimit, limited.LastDrop);
    }

    [Fact]
    public void A_second_host_of_the_subscriber_gets_CANNOT_PROVIDE_EXTERNAL()
    {
        var h = AllPorts(s => Deterministic(s, subscriberPrefix: 30)); // 10.0.0.0/30: 10.0.0.2 and 10.0.0.3, ports 1024-5055
        MapAll(h, IpProtocol.Tcp);
        string other = Map(3600, "10.0.0.3", IpProtocol.Tcp, 0);
        Assert.Equal(Head(1, 11, 30, 0) + ToHex(Hex(other))[48..], AskHex(h, other, from: "10.0.0.3"));
        // Protocol 0 overlaps TCP: refused too; UDP alone does not overlap.
        Assert.Equal(PcpResultCode.CannotProvideExternal, Result(Ask(h, Hex(Map(3600, "10.0.0.3", 0, 0)), "10.0.0.3")!));
        MapAll(h, IpProtocol.Udp, from: "10.0.0.3");
        // The TCP ports go to 10.0.0.2, the UDP ones to 10.0.0.3.
        Assert.Equal(Verdict.ToInside, Inbound(h, 1100, out byte[] o));
        Assert.Equal((Host, 1100), (Dst(o), DstPort(o)));
        Assert.Equal(Verdict.ToInside, Inbound(h, 1100, out o, tcp: false));
        Assert.Equal(("10.0.0.3", 1100), (Dst(o), DstPort(o)));
    }

    [Fact]
    public void Delete_with_lifetime_0_removes_it_and_new_flows_are_not_opened()
    {
        var h = AllPorts();
        MapAll(h, IpProtocol.Tcp);
        Assert.Equal(Verdict.ToInside, Inbound(h, 3500, out _));
        Assert.Equal(Head(1, 0, 0, 0) + Nonce + "06000000" + "0000" + "0000" + NoAddress, AskHex(h, Map(0, Host, IpProtocol.Tcp, 0)));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
        Assert.Equal(Verdict.Drop, Inbound(h, 3600, out _));
        // The session in progress runs on (the remote's SYN again: it matches the session).
        Assert.Equal(Verdict.ToInside, Inbound(h, 3500, out _));

        // Protocol 0 deletes every mapping of the host with the nonce, the all-ports one with them (RFC 6887 section 15).
        MapAll(h, 0);
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5000)))!));
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(0, Host, 0, 0)))!));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
    }

    [Fact]
    public void It_counts_as_one_mapping_against_the_quota()
    {
        var h = AllPorts(pcp: p => p with { MappingsPerSubscriber = 1 });
        MapAll(h, 0);
        Assert.Equal(PcpResultCode.UserExQuota, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5000)))!));
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(3600, Host, 0, 0)))!)); // its refresh is no new mapping
    }

    [Fact]
    public void Listing_and_operator_delete_name_it_by_port_0()
    {
        var h = AllPorts();
        MapAll(h, 0);
        var list = new List<PcpMappingInfo>();
        h.Engine.CollectPcpMappings(list, h.Now);
        PcpMappingInfo m = Assert.Single(list);
        Assert.True(m.AllPorts);
        Assert.Equal(((byte)0, (ushort)0, Ipv4.Parse(External), (ushort)0, 1), (m.Protocol, m.InternalPort, m.External, m.ExternalPort, m.PortStep));
        Assert.Equal((3040, 4047), Assert.Single(m.Ports));
        Assert.False(h.Engine.DeletePcpMapping(IpProtocol.Tcp, Ipv4.Parse(Host), 0, h.Now));
        Assert.True(h.Engine.DeletePcpMapping(0, Ipv4.Parse(Host), 0, h.Now));
        Assert.Equal(Verdict.Drop, Inbound(h, 3500, out _));
    }

    [Fact]
    public void Nat_events_carry_it_with_port_0()
    {
        var h = AllPorts();
        var events = new SpscRing<NatEvent>(1024);
        h.Engine.Table.Events = events;
        MapAll(h, 0, lifetime: 600);
        Assert.True(h.Engine.DeletePcpMapping(0, Ipv4.Parse(Host), 0, h.Now));
        var seen = new List<(NatEventType, byte, ushort, uint, ushort, uint, byte)>();
        while (events.TryDequeue(out NatEvent e))
        {
            if (e.Type is NatEventType.PcpMappingCreated or NatEventType.PcpMappingDeleted)
            {
                seen.Add((e.Type, e.Protocol, e.InsidePort, e.ExternalAddress, e.ExternalPort, e.Lifetime, e.Detail));
            }
        }
        uint ext = Ipv4.Parse(External);
        Assert.Equal(new[]
        {
            (NatEventType.PcpMappingCreated, (byte)0, (ushort)0, ext, (ushort)0, 600u, (byte)0),
            (NatEventType.PcpMappingDeleted, (byte)0, (ushort)0, ext, (ushort)0, 0u, (byte)PcpDeleteCause.Operator),
        }, seen);
    }

    [Fact]
    public void Port_blocks_give_a_block_to_a_subscriber_without_one_and_open_its_ports()
    {
        var h = AllPorts(s => s with { Cgnat = CgnatKit.Pba(size: 64, perSubscriber: 1, delay: 0) });
        Assert.Empty(Blocks(h));
        Assert.Equal(Head(1, 0, 3600, 0) + Nonce + "00000000" + "0000" + "0000" + Ext, AskHex(h, Map(3600, Host, 0, 0)));
        BlockInfo block = Assert.Single(Blocks(h));
        Assert.Equal((Ipv4.Parse(Host), 1), (block.Subscriber, block.PortsInUse)); // the anchor keeps the block
        int anchor = FlowKey.PortToHost(h.Engine.PcpTable![h.Engine.PcpTable.FindInternal(0, Ipv4.Parse(Host), 0)].ExternalPortRaw);
        Assert.InRange(anchor, block.Low, block.High);
        int port = anchor == block.Low ? block.Low + 1 : block.Low;
        Assert.Equal(Verdict.ToInside, Inbound(h, port, out byte[] o, tcp: false));
        Assert.Equal(port, DstPort(o));
        Assert.Equal(Verdict.ToInside, Inbound(h, anchor, out o));
        Assert.Equal(anchor, DstPort(o));
        Assert.Equal(Verdict.Drop, Inbound(h, block.High + 1, out _));
        var list = new List<PcpMappingInfo>();
        h.Engine.CollectPcpMappings(list, h.Now);
        Assert.Equal((block.Low, block.High), Assert.Single(Assert.Single(list).Ports));

        // Deleted, its ports go back with the sessions' and the block is released (port-reuse-delay 0).
        Assert.True(h.Engine.DeletePcpMapping(0, Ipv4.Parse(Host), 0, h.Now));
        h.Engine.Flush();
        h.Engine.Sweep(h.Now, 1000);
        Assert.Empty(Blocks(h));
    }

    [Fact]
    public void Port_blocks_with_none_free_is_NO_RESOURCES()
    {
        // One block of 64512 ports: the first subscriber takes it.
        var h = AllPorts(s => s with { Cgnat = CgnatKit.Pba(size: 64512, perSubscriber: 1) });
        h.Out(Udp("10.0.0.3", 5000, Remote, 53));
        Assert.Equal(Head(1, 8, 30, 0) + Nonce + "06000000" + "0000" + "0000" + NoAddress, AskHex(h, Map(3600, Host, IpProtocol.Tcp, 0)));
    }

    private static List<BlockInfo> Blocks(EngineHarness h)
    {
        var blocks = new List<BlockInfo>();
        h.Engine.CollectBlocks(blocks, h.Now);
        return blocks;
    }

    [Fact]
    public void Reload_turning_all_ports_off_removes_them_and_their_sessions_run_on()
    {
        var h = AllPorts();
        var events = new SpscRing<NatEvent>(1024);
        h.Engine.Table.Events = events;
        MapAll(h, IpProtocol.Tcp);
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5000)))!));
        Assert.Equal(Verdict.ToInside, Inbound(h, 3500, out _));
        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Pcp = h.Engine.Settings.Pcp with { AllPorts = false } }));
        Assert.Equal(1, h.Engine.PcpTable!.Count); // the explicit mapping stays
        Assert.Equal(Verdict.Drop, Inbound(h, 3600, out _));
        Assert.Equal(Verdict.ToInside, Inbound(h, 3500, out _)); // the session opened before runs on
        var deleted = new List<NatEvent>();
        while (events.TryDequeue(out NatEvent e))
        {
            if (e.Type == NatEventType.PcpMappingDeleted)
            {
                deleted.Add(e);
            }
        }
        NatEvent d = Assert.Single(deleted);
        Assert.Equal((IpProtocol.Tcp, (ushort)0, (byte)PcpDeleteCause.Reload), (d.Protocol, d.InsidePort, d.Detail));
        // Off, a new all-ports request is refused as before.
        Assert.Equal(PcpResultCode.NotAuthorized, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Tcp, 0)))!));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Snapshot_round_trip_keeps_it_reachable(bool portBlocks)
    {
        Func<NatSettings, NatSettings> cgn = portBlocks ? s => s with { Cgnat = CgnatKit.Pba(size: 64, perSubscriber: 1) } : s => Deterministic(s);
        var before = AllPorts(cgn);
        MapAll(before, 0, options: Filter(32, 0, Remote), lifetime: 600);
        before.Now += 100_000;
        var saved = new List<PcpMappingRecord>();
        before.Engine.ExportPcpMappings(saved, before.Now);
        PcpMappingRecord r = Assert.Single(saved);
        Assert.Equal(((byte)0, (ushort)0), (r.Protocol, r.InternalPort));
        Assert.Equal(portBlocks, r.ExternalPort != 0); // the anchor
        var blocksBefore = Blocks(before);

        var after = AllPorts(cgn);
        after.Now = 5_000_000;
        Assert.Equal(1, after.Engine.ImportPcpMappings(saved, after.Now));
        var list = new List<PcpMappingInfo>();
        after.Engine.CollectPcpMappings(list, after.Now);
        PcpMappingInfo m = Assert.Single(list);
        Assert.Equal(((byte)0, (ushort)0, 500L, Nonce), (m.Protocol, m.InternalPort, m.LifetimeLeftSeconds, m.Nonce));
        Assert.Equal(new PcpFilter(Ipv4.Parse(Remote), 32, 0), Assert.Single(m.Filters));
        int port = portBlocks ? Assert.Single(blocksBefore).Low + (r.ExternalPort == Assert.Single(blocksBefore).Low ? 1 : 0) : 3500;
        if (portBlocks)
        {
            Assert.Equal(blocksBefore.Select(b => (b.Low, b.High)), Blocks(after).Select(b => (b.Low, b.High))); // the anchor brought its block back
        }
        Assert.Equal(Verdict.ToInside, Inbound(after, port, out byte[] o, tcp: false));
        Assert.Equal(port, DstPort(o));
        // With all-ports off the saved mapping is not restored.
        Assert.Equal(0, AllPorts(cgn, on: false).Engine.ImportPcpMappings(saved, after.Now));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void With_two_shards_the_subscribers_ports_arrive_at_the_shard_holding_the_mapping(bool portBlocks)
    {
        const int shards = 2;
        NatSettings s = EngineHarness.LabSettings() with
        {
            Inside = EngineHarness.LabSettings().Inside with
            {
                Neighbours = [.. Enumerable.Range(2, 38).Select(i => new KeyValuePair<uint, MacAddress>(Ipv4.Parse($"10.0.0.{i}"), MacAddress.Read(InsideHostMac)))],
            },
            Outside = EngineHarness.LabSettings().Outside with { Neighbours = [new(Ipv4.Parse(Remote), MacAddress.Read(OutsideHostMac))] },
            Pcp = new PcpSettings { Enabled = true, AllPorts = true, RequestsPerSecond = 1000 },
        };
        s = portBlocks ? s with { Cgnat = CgnatKit.Pba(size: 64, perSubscriber: 1) } : Deterministic(s);
        var map = new ShardMap(s, shards);
        var engines = new NatEngine[shards];
        for (int k = 0; k < shards; k++)
        {
            engines[k] = new NatEngine(s, MacAddress.Read(GatewayInsideMac), MacAddress.Read(GatewayOutsideMac), new EngineOptions { Seed = (ulong)k + 1, Shard = k, Shards = shards });
        }
        var owners = new HashSet<int>();
        for (int i = 2; i < 40; i++)
        {
            string host = $"10.0.0.{i}";
            int owner = map.OwnerOfInside(Ipv4.Parse(host));
            owners.Add(owner);
            byte[] msg = new byte[1100];
            byte[] request = Hex(Map(3600, host, 0, 0));
            request.CopyTo(msg, 0);
            Assert.True(engines[owner].AnswerPcpForTest(msg, request.Length, Ipv4.Parse(host), 1000, out PcpOutcome outcome) > 0);
            Assert.Equal(PcpOutcome.Success, outcome);
            var list = new List<PcpMappingInfo>();
            engines[owner].CollectPcpMappings(list, 1000);
            PcpMappingInfo m = list.Single(x => x.Internal == Ipv4.Parse(host));
            var (low, high) = m.Ports[0];
            Assert.Equal(portBlocks ? shards : 1, m.PortStep);
            foreach (int port in new[] { low + (portBlocks ? 2 * shards : 1), high })
            {
                byte[] frame = EngineHarness.FromOutside(Udp(Remote, 7777, External, port));
                Assert.Equal(owner, map.Owner(frame, Side.Outside));
                var slot = new byte[FrameBatch.SlotSize];
                frame.CopyTo(slot, 0);
                int len = frame.Length;
                var ctx = new PacketContext(engines[owner].Counters, 1000);
                Assert.Equal(Verdict.ToInside, engines[owner].Process(slot, ref len, Side.Outside, FrameFlags.None, ref ctx));
                Assert.Equal((host, port), (Dst(slot[..len]), DstPort(slot[..len])));
            }
        }
        Assert.Equal(shards, owners.Count);
    }
}

using System.Buffers.Binary;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Pcp.PcpKit;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Pcp;

/// <summary>
/// PCP mappings in the engine (RFC 6887 sections 11-15): inbound traffic reaches the mapped host,
/// refresh, delete, expiry, FILTER, PREFER_FAILURE, quota, rate limit, the port from the
/// subscriber's block, the mapped port used outbound, PEER, and the ANNOUNCE after a start.
/// </summary>
public class PcpEngineTests
{
    private const string Host = EngineHarness.InsideHost;
    private const string Remote = EngineHarness.OutsideHost;
    private const string External = EngineHarness.External;

    private static int MapPort(EngineHarness h, int protocol, int internalPort, int suggested = 0, int lifetime = 3600, string options = "", string from = Host, string nonce = Nonce)
    {
        byte[] r = Ask(h, Hex(Map(lifetime, from, protocol, internalPort, suggested, options: options, nonce: nonce)), from)!;
        Assert.Equal(PcpResultCode.Success, Result(r));
        return ExternalPort(r);
    }

    private static Verdict Inbound(EngineHarness h, int externalPort, out byte[] o, string remote = Remote, int remotePort = 7777, bool tcp = false)
        => h.Run(EngineHarness.FromOutside(tcp ? Tcp(remote, remotePort, External, externalPort, 0x02) : Udp(remote, remotePort, External, externalPort)), Side.Outside, out o);

    [Fact]
    public void Map_then_inbound_udp_and_tcp_reach_the_host()
    {
        var h = Harness();
        int udp = MapPort(h, IpProtocol.Udp, 5000);
        Assert.Equal(Verdict.ToInside, Inbound(h, udp, out byte[] o));
        Assert.Equal(Host, Dst(o));
        Assert.Equal(5000, DstPort(o));
        Assert.True(ChecksumsValid(o));
        // The host's reply goes out from the mapped port.
        byte[] back = h.Out(Udp(Host, 5000, Remote, 7777));
        Assert.Equal(udp, SrcPort(back));

        int tcp = MapPort(h, IpProtocol.Tcp, 8080, 8080);
        Assert.Equal(8080, tcp);
        Assert.Equal(Verdict.ToInside, Inbound(h, tcp, out o, tcp: true));
        Assert.Equal(8080, DstPort(o));
    }

    [Fact]
    public void Without_a_mapping_the_same_inbound_is_dropped()
    {
        var h = Harness();
        Assert.Equal(Verdict.Drop, Inbound(h, 8080, out _, tcp: true));
    }

    [Fact]
    public void A_new_outbound_flow_from_the_mapped_endpoint_uses_the_mapped_port()
    {
        var h = Harness();
        int p = MapPort(h, IpProtocol.Udp, 6000, 23456);
        Assert.Equal(23456, p);
        Assert.Equal(p, SrcPort(h.Out(Udp(Host, 6000, "198.51.100.3", 53))));
        Assert.Equal(p, SrcPort(h.Out(Udp(Host, 6000, Remote, 53))));
    }

    [Fact]
    public void Map_of_an_endpoint_with_an_implicit_mapping_keeps_its_port()
    {
        var h = Harness();
        int implicitPort = SrcPort(h.Out(Udp(Host, 6001, Remote, 53)));
        Assert.Equal(implicitPort, MapPort(h, IpProtocol.Udp, 6001, 40000));
        // The PCP mapping now admits anyone; the implicit session survives its deletion.
        Assert.Equal(Verdict.ToInside, Inbound(h, implicitPort, out _, remote: "198.51.100.3"));
    }

    [Fact]
    public void Refresh_extends_the_lifetime_and_delete_closes_the_mapping_to_new_flows()
    {
        var h = Harness(p => p with { MinLifetime = 60 });
        int port = MapPort(h, IpProtocol.Udp, 5000, lifetime: 60);
        h.Now += 50_000;
        Assert.Equal(port, MapPort(h, IpProtocol.Udp, 5000, lifetime: 600)); // refresh
        h.Now += 50_000; // past the first lifetime, inside the second
        Assert.Equal(Verdict.ToInside, Inbound(h, port, out _, remotePort: 1111));

        byte[] del = Ask(h, Hex(Map(0, Host, IpProtocol.Udp, 5000)))!;
        Assert.Equal(PcpResultCode.Success, Result(del));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(del.AsSpan(4)));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
        Assert.Equal(Verdict.Drop, Inbound(h, port, out _, remote: "198.51.100.3", remotePort: 2222));
    }

    [Fact]
    public void A_third_party_refresh_or_delete_with_another_nonce_is_NOT_AUTHORIZED()
    {
        var h = Harness(p => p with { ThirdParty = true });
        MapPort(h, IpProtocol.Udp, 5000, from: "10.0.0.3");
        const string other = "ffffffffffffffffffffffff";
        string tp = ThirdParty("10.0.0.3");
        Assert.Equal(PcpResultCode.NotAuthorized, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5000, options: tp, nonce: other)))!));
        Assert.Equal(PcpResultCode.NotAuthorized, Result(Ask(h, Hex(Map(0, Host, IpProtocol.Udp, 5000, options: tp, nonce: other)))!));
        Assert.Equal(1, h.Engine.PcpTable!.Count);
        // With the mapping's nonce the third party may.
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(0, Host, IpProtocol.Udp, 5000, options: tp)))!));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
    }

    [Fact]
    public void The_hosts_own_refresh_and_delete_with_a_new_nonce_are_taken_and_the_nonce_replaced()
    {
        var h = Harness();
        int port = MapPort(h, IpProtocol.Udp, 5000);
        const string other = "ffffffffffffffffffffffff";
        Assert.Equal(port, MapPort(h, IpProtocol.Udp, 5000, nonce: other)); // a client restarted: same mapping
        var list = new List<PcpMappingInfo>();
        h.Engine.CollectPcpMappings(list, h.Now);
        Assert.Equal(other, Assert.Single(list).Nonce);
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(0, Host, IpProtocol.Udp, 5000, nonce: Nonce)))!));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
    }

    [Fact]
    public void Lifetime_expiry_removes_the_mapping_and_gives_its_port_back()
    {
        var h = Harness(p => p with { MinLifetime = 30 });
        int port = MapPort(h, IpProtocol.Tcp, 8080, 8080, lifetime: 30);
        h.Now += 31_000;
        Assert.Equal(Verdict.Drop, Inbound(h, port, out _, tcp: true)); // exact: before any sweep
        h.Engine.Sweep(h.Now, 1000);
        Assert.Equal(0, h.Engine.PcpTable!.Count);
        Assert.False(h.Engine.Table.Ports.IsUsed(0, 0, 8080) && !h.Engine.Table.Ports.IsQuarantined(0, 0, 8080));
    }

    [Fact]
    public void Filter_admits_only_the_listed_remote()
    {
        var h = Harness();
        // libpcp's form: prefix length counted over the IPv4 address.
        int port = MapPort(h, IpProtocol.Udp, 5000, options: Filter(32, 0, Remote));
        Assert.Equal(Verdict.Drop, Inbound(h, port, out _, remote: "198.51.100.3"));
        Assert.Equal(DropReason.PcpFiltered, h.LastDrop);
        Assert.Equal(Verdict.ToInside, Inbound(h, port, out _, remote: Remote));

        // RFC 6887 form: 96-128 over the IPv4-mapped address, here a /24 with a port.
        int port2 = MapPort(h, IpProtocol.Udp, 5001, options: Filter(120, 9999, "198.51.100.0"));
        Assert.Equal(Verdict.Drop, Inbound(h, port2, out _, remote: "198.51.100.3", remotePort: 9998));
        Assert.Equal(Verdict.ToInside, Inbound(h, port2, out _, remote: "198.51.100.3", remotePort: 9999));
    }

    [Fact]
    public void Inbound_rules_still_apply_to_a_pcp_mapping()
    {
        var rules = new List<ForwardRule>
        {
            new() { Name = "no-telnet-in", Protocol = IpProtocol.Tcp, In = RuleInterface.Outside, DestinationPorts = [new PortRange(2323, 2323)], Action = RuleAction.Deny },
            new() { Name = "masq", In = RuleInterface.Inside, Out = RuleInterface.Outside, Action = RuleAction.Masquerade },
        };
        var h = Harness(more: s => s with { Rules = rules, DefaultPolicy = RuleAction.Accept });
        int port = MapPort(h, IpProtocol.Tcp, 2323, 2323);
        Assert.Equal(Verdict.Drop, Inbound(h, port, out _, tcp: true));
        Assert.Equal(DropReason.RuleDeny, h.LastDrop);
    }

    [Fact]
    public void Prefer_failure_with_a_port_a_session_holds_is_refused()
    {
        var h = Harness();
        int taken = SrcPort(h.Out(Udp("10.0.0.3", 7000, Remote, 53)));
        byte[] r = Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5000, taken, options: PreferFailure)))!;
        Assert.Equal(PcpResultCode.CannotProvideExternal, Result(r));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
    }

    [Fact]
    public void Suggested_port_outside_allowed_ports_is_not_given()
    {
        var h = Harness(p => p with { AllowedPorts = new PortRange(20000, 29999) });
        int port = MapPort(h, IpProtocol.Udp, 5000, 8080);
        Assert.InRange(port, 20000, 29999);
        Assert.Equal(PcpResultCode.CannotProvideExternal, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5001, 8080, options: PreferFailure)))!));
    }

    [Fact]
    public void Quota_counts_per_subscriber_and_frees_on_delete()
    {
        var h = Harness(p => p with { MappingsPerSubscriber = 2 });
        MapPort(h, IpProtocol.Udp, 5000);
        MapPort(h, IpProtocol.Udp, 5001);
        Assert.Equal(PcpResultCode.UserExQuota, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5002)))!));
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(0, Host, IpProtocol.Udp, 5000)))!));
        MapPort(h, IpProtocol.Udp, 5002);
    }

    [Fact]
    public void Mappings_count_against_the_subscribers_port_and_session_limits()
    {
        var h = Harness(more: s => s with { Cgnat = new CgnatSettings { Limits = new SubscriberLimits(Sessions: 1, Ports: 2) } });
        int port = MapPort(h, IpProtocol.Udp, 5000, 30000);            // port 1 of 2 (suggested)
        h.Out(Udp(Host, 7000, Remote, 53));                            // port 2 of 2, session 1 of 1
        Assert.Equal(PcpResultCode.UserExQuota, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5001)))!));
        Assert.Equal(PcpResultCode.CannotProvideExternal, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5002, 30002, options: PreferFailure)))!));
        // An inbound session on the mapping would be the subscriber's second.
        Assert.Equal(Verdict.Drop, Inbound(h, port, out _));
        Assert.Equal(DropReason.SubscriberSessionLimit, h.LastDrop);
    }

    [Fact]
    public void Requests_over_the_subscribers_rate_are_dropped_and_counted()
    {
        var h = Harness(p => p with { RequestsPerSecond = 3 });
        for (int i = 0; i < 3; i++)
        {
            Assert.NotNull(Ask(h, Hex("00 00")));
        }
        Assert.Null(Ask(h, Hex("00 00")));
        Assert.Equal(DropReason.PcpRateLimited, h.LastDrop);
        Assert.Equal(1, Count(h, PcpOutcome.RateLimited));
        Assert.NotNull(Ask(h, Hex("00 00"), from: "10.0.0.3")); // another subscriber's bucket
        h.Now += 1000;
        Assert.NotNull(Ask(h, Hex("00 00")));
    }

    [Fact]
    public void Port_block_mode_gives_a_port_of_the_subscribers_block()
    {
        var h = Harness(more: s => s with { Cgnat = CgnatKit.Pba(size: 64, perSubscriber: 1) });
        int outbound = SrcPort(h.Out(Udp(Host, 7000, Remote, 53)));
        var blocks = new List<BlockInfo>();
        h.Engine.CollectBlocks(blocks, h.Now);
        BlockInfo block = Assert.Single(blocks);
        Assert.InRange(outbound, block.Low, block.High);
        int mapped = MapPort(h, IpProtocol.Udp, 5000);
        Assert.InRange(mapped, block.Low, block.High);
        // A suggestion outside its block is not honoured: the port stays in the block.
        int other = block.Low > 30000 ? 2000 : 60000;
        Assert.InRange(MapPort(h, IpProtocol.Udp, 5001, other), block.Low, block.High);
        // Nor with PREFER_FAILURE.
        Assert.Equal(PcpResultCode.CannotProvideExternal, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5002, other, options: PreferFailure)))!));
        h.Engine.CollectBlocks(blocks = [], h.Now);
        Assert.Equal(3, Assert.Single(blocks).PortsInUse);
    }

    [Fact]
    public void Peer_creates_the_outbound_mapping_and_reports_it()
    {
        var h = Harness();
        byte[] r = Ask(h, Hex(Peer(600, Host, IpProtocol.Tcp, 40001, Remote, 443)))!;
        Assert.Equal(PcpResultCode.Success, Result(r));
        int external = ExternalPort(r);
        Assert.Equal(Mapped(External), ToHex(r.AsSpan(44, 16)));
        Assert.InRange(BinaryPrimitives.ReadUInt32BigEndian(r.AsSpan(4)), 1u, 600u);
        Assert.Equal(1, h.Engine.Table.Count);
        // The flow itself then leaves on that port, and the remote's SYN-ACK reaches the host.
        Assert.Equal(external, SrcPort(h.Out(Tcp(Host, 40001, Remote, 443, 0x02))));
        // A second PEER extends the same mapping.
        Assert.Equal(external, ExternalPort(Ask(h, Hex(Peer(600, Host, IpProtocol.Tcp, 40001, Remote, 443)))!));
    }

    [Fact]
    public void Announce_is_multicast_after_start()
    {
        var h = Harness();
        h.Engine.Sweep(h.Now, 100);
        var announces = h.Sunk.Where(f => f.Side == Side.Inside && Dst(f.Frame) == "224.0.0.1").Select(f => f.Frame).ToList();
        Assert.Equal(2, announces.Count); // PCP ANNOUNCE and NAT-PMP's address announcement
        byte[] pcp = announces[0];
        Assert.Equal("01005e000001", ToHex(pcp.AsSpan(0, 6)));
        Assert.Equal(PcpWire.ServerPort, SrcPort(pcp));
        Assert.Equal(PcpWire.ClientPort, DstPort(pcp));
        Assert.True(ChecksumsValid(pcp));
        Assert.Equal(Head(0, 0, 0, 0), ToHex(pcp.AsSpan(L4Offset(pcp) + 8)));
        Assert.Equal("0080000000000000c6336401", ToHex(announces[1].AsSpan(L4Offset(announces[1]) + 8)));
        // Then again after the gap doubles, ten in all.
        for (int i = 0; i < 20; i++)
        {
            h.Now += 60_000;
            h.Engine.Sweep(h.Now, 100);
        }
        Assert.Equal(20, h.Sunk.Count(f => Dst(f.Frame) == "224.0.0.1"));
    }

    [Fact]
    public void Listing_and_operator_delete()
    {
        var h = Harness();
        int port = MapPort(h, IpProtocol.Udp, 5000, options: Filter(32, 0, Remote));
        var list = new List<PcpMappingInfo>();
        h.Engine.CollectPcpMappings(list, h.Now + 10_000);
        PcpMappingInfo m = Assert.Single(list);
        Assert.Equal((IpProtocol.Udp, Ipv4.Parse(Host), (ushort)5000, Ipv4.Parse(External), (ushort)port, 3590L, Nonce, false),
            (m.Protocol, m.Internal, m.InternalPort, m.External, m.ExternalPort, m.LifetimeLeftSeconds, m.Nonce, m.NatPmp));
        Assert.Equal(new PcpFilter(Ipv4.Parse(Remote), 32, 0), Assert.Single(m.Filters));
        Assert.True(h.Engine.DeletePcpMapping(IpProtocol.Udp, Ipv4.Parse(Host), 5000, h.Now));
        Assert.False(h.Engine.DeletePcpMapping(IpProtocol.Udp, Ipv4.Parse(Host), 5000, h.Now));
        Assert.Equal(Verdict.Drop, Inbound(h, port, out _));
    }

    [Fact]
    public void Reload_that_changes_the_pool_forgets_mappings_and_starts_a_new_epoch()
    {
        var h = Harness();
        MapPort(h, IpProtocol.Udp, 5000);
        h.Now += 10_000;
        Assert.Equal(Head(0, 0, 0, 10), AskHex(h, "02 00 0000 00000000" + Mapped(Host)));
        var next = h.Engine.Settings with { Pool = [Ipv4.Parse("198.51.100.9")] };
        Assert.Null(h.Engine.UpdateSettings(next));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
        h.Now += 3_000;
        Assert.Equal(Head(0, 0, 0, 0), AskHex(h, "02 00 0000 00000000" + Mapped(Host)));
    }
}

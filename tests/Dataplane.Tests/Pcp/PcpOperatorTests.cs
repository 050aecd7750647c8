using System.Buffers.Binary;
using Natd.Control.Daemon;
using Natd.Dataplane.Rings;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;
using Natd.Tests.Support;
using static Natd.Tests.Pcp.PcpKit;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Pcp;

/// <summary>
/// The operator's side of PCP: every mapping's create, refresh and delete are NAT events (with the
/// lifetime granted or the cause), the operator deletes a mapping by its internal or external
/// endpoint, and the restart snapshot keeps mappings with the lifetime they had left, reachable
/// after the restart, in a new epoch (RFC 6887 section 8.5).
/// </summary>
public sealed class PcpOperatorTests : IDisposable
{
    private const string Host = EngineHarness.InsideHost;
    private const string Remote = EngineHarness.OutsideHost;
    private const string External = EngineHarness.External;

    private readonly string _dir = Directory.CreateTempSubdirectory("natd-pcp-state-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static EngineHarness WithEvents(out SpscRing<NatEvent> events, Func<PcpSettings, PcpSettings>? pcp = null)
    {
        var h = Harness(pcp);
        events = new SpscRing<NatEvent>(1024);
        h.Engine.Table.Events = events;
        return h;
    }

    private static List<NatEvent> PcpEvents(SpscRing<NatEvent> ring)
    {
        var list = new List<NatEvent>();
        while (ring.TryDequeue(out var e))
        {
            if (e.Type is NatEventType.PcpMappingCreated or NatEventType.PcpMappingRefreshed or NatEventType.PcpMappingDeleted)
            {
                list.Add(e);
            }
        }
        return list;
    }

    private static int MapPort(EngineHarness h, int protocol, int internalPort, int suggested = 0, int lifetime = 3600, string options = "")
    {
        byte[] r = Ask(h, Hex(Map(lifetime, Host, protocol, internalPort, suggested, options: options)))!;
        Assert.Equal(PcpResultCode.Success, Result(r));
        return ExternalPort(r);
    }

    private static Verdict Inbound(EngineHarness h, int externalPort, out byte[] o, string remote = Remote, int remotePort = 7777)
        => h.Run(EngineHarness.FromOutside(Udp(remote, remotePort, External, externalPort)), Side.Outside, out o);

    private static (NatEventType, byte, string, ushort, string, ushort, uint, byte) Shape(NatEvent e)
        => (e.Type, e.Protocol, Ipv4.Format(e.InsideAddress), e.InsidePort, Ipv4.Format(e.ExternalAddress), e.ExternalPort, e.Lifetime, e.Detail);

    [Fact]
    public void Create_refresh_and_every_kind_of_delete_are_nat_events()
    {
        var h = WithEvents(out var events, p => p with { MinLifetime = 30 });
        int a = MapPort(h, IpProtocol.Udp, 5000, lifetime: 600);
        Assert.Equal(a, MapPort(h, IpProtocol.Udp, 5000, lifetime: 900));               // refresh
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(0, Host, IpProtocol.Udp, 5000)))!)); // the client's delete
        int b = MapPort(h, IpProtocol.Tcp, 8080, 8080, lifetime: 30);
        h.Now += 31_000;
        h.Engine.Sweep(h.Now, 1000);                                                      // expired
        int c = MapPort(h, IpProtocol.Udp, 6000, lifetime: 120);
        Assert.True(h.Engine.DeletePcpMapping(IpProtocol.Udp, Ipv4.Parse(External), (ushort)c, external: true, h.Now)); // the operator's

        var expected = new[]
        {
            (NatEventType.PcpMappingCreated, IpProtocol.Udp, Host, (ushort)5000, External, (ushort)a, 600u, (byte)0),
            (NatEventType.PcpMappingRefreshed, IpProtocol.Udp, Host, (ushort)5000, External, (ushort)a, 900u, (byte)0),
            (NatEventType.PcpMappingDeleted, IpProtocol.Udp, Host, (ushort)5000, External, (ushort)a, 0u, (byte)PcpDeleteCause.Client),
            (NatEventType.PcpMappingCreated, IpProtocol.Tcp, Host, (ushort)8080, External, (ushort)b, 30u, (byte)0),
            (NatEventType.PcpMappingDeleted, IpProtocol.Tcp, Host, (ushort)8080, External, (ushort)b, 0u, (byte)PcpDeleteCause.Expired),
            (NatEventType.PcpMappingCreated, IpProtocol.Udp, Host, (ushort)6000, External, (ushort)c, 120u, (byte)0),
            (NatEventType.PcpMappingDeleted, IpProtocol.Udp, Host, (ushort)6000, External, (ushort)c, 0u, (byte)PcpDeleteCause.Operator),
        };
        Assert.Equal(expected, PcpEvents(events).Select(Shape).ToArray());
    }

    [Fact]
    public void Nat_pmp_mappings_and_reload_losses_are_logged_too()
    {
        var h = WithEvents(out var events);
        // NAT-PMP UDP mapping (RFC 6886 section 3.3): version 0, opcode 1, internal 5353, suggested 5353, 600 s.
        byte[] r = Ask(h, Hex("00 01 0000 14e9 14e9 00000258"))!;
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(r.AsSpan(2)));
        int port = BinaryPrimitives.ReadUInt16BigEndian(r.AsSpan(10));
        Assert.Null(h.Engine.UpdateSettings(h.Engine.Settings with { Pcp = h.Engine.Settings.Pcp with { Enabled = false } }));
        Assert.Equal(
            [
                (NatEventType.PcpMappingCreated, IpProtocol.Udp, Host, (ushort)5353, External, (ushort)port, 600u, (byte)0),
                (NatEventType.PcpMappingDeleted, IpProtocol.Udp, Host, (ushort)5353, External, (ushort)port, 0u, (byte)PcpDeleteCause.Reload),
            ],
            PcpEvents(events).Select(Shape).ToArray());
    }

    [Fact]
    public void Operator_delete_by_internal_or_external_endpoint_ends_inbound_reachability()
    {
        var h = Harness();
        int udp = MapPort(h, IpProtocol.Udp, 5000);
        int tcp = MapPort(h, IpProtocol.Tcp, 5000);
        Assert.Equal(Verdict.ToInside, Inbound(h, udp, out _));
        // A session in progress goes on (RFC 6887 section 15); a new remote does not get in.
        Assert.True(h.Engine.DeletePcpMapping(IpProtocol.Udp, Ipv4.Parse(External), (ushort)udp, external: true, h.Now));
        Assert.Equal(Verdict.ToInside, Inbound(h, udp, out _));
        Assert.Equal(Verdict.Drop, Inbound(h, udp, out _, remote: "198.51.100.3"));
        // The protocol is part of the key: the TCP mapping of the same port is untouched until named.
        Assert.False(h.Engine.DeletePcpMapping(IpProtocol.Udp, Ipv4.Parse(Host), 5000, external: false, h.Now));
        Assert.Equal(1, h.Engine.PcpTable!.Count);
        Assert.False(h.Engine.DeletePcpMapping(IpProtocol.Tcp, Ipv4.Parse(External), (ushort)(tcp + 1), external: true, h.Now));
        Assert.True(h.Engine.DeletePcpMapping(IpProtocol.Tcp, Ipv4.Parse(Host), 5000, external: false, h.Now));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
    }

    private static List<PcpMappingRecord> Export(EngineHarness h)
    {
        var list = new List<PcpMappingRecord>();
        h.Engine.ExportPcpMappings(list, h.Now);
        return list;
    }

    [Fact]
    public void A_restored_mapping_keeps_its_port_filters_nonce_and_lifetime_left_and_is_reachable()
    {
        var before = Harness();
        int port = MapPort(before, IpProtocol.Udp, 5000, 23456, lifetime: 600, options: Filter(32, 0, Remote));
        before.Now += 100_000;
        var saved = Export(before);

        var after = Harness(); // a new process: a new engine, a new epoch
        after.Now = 5_000_000;
        Assert.Equal(1, after.Engine.ImportPcpMappings(saved.Select(m => m with { LifetimeLeftMs = m.LifetimeLeftMs - 20_000 }), after.Now));
        var list = new List<PcpMappingInfo>();
        after.Engine.CollectPcpMappings(list, after.Now);
        PcpMappingInfo m = Assert.Single(list);
        Assert.Equal((IpProtocol.Udp, (ushort)5000, (ushort)23456, 480L, Nonce), (m.Protocol, m.InternalPort, m.ExternalPort, m.LifetimeLeftSeconds, m.Nonce));
        Assert.Equal(new PcpFilter(Ipv4.Parse(Remote), 32, 0), Assert.Single(m.Filters));

        Assert.Equal(Verdict.ToInside, Inbound(after, port, out byte[] o));
        Assert.Equal((Host, 5000), (Dst(o), DstPort(o)));
        Assert.Equal(Verdict.Drop, Inbound(after, port, out _, remote: "198.51.100.3")); // its FILTER came back with it
        // The port is the mapping's: nobody else is given it.
        byte[] taken = Ask(after, Hex(Map(600, Host, IpProtocol.Udp, 5001, 23456, options: PreferFailure)))!;
        Assert.Equal(PcpResultCode.CannotProvideExternal, Result(taken));
        // The client, told of the new epoch, refreshes and keeps its port; the epoch counts from this start.
        byte[] refresh = Ask(after, Hex(Map(600, Host, IpProtocol.Udp, 5000)))!;
        Assert.Equal((PcpResultCode.Success, 23456), (Result(refresh), ExternalPort(refresh)));
        Assert.True(BinaryPrimitives.ReadUInt32BigEndian(refresh.AsSpan(8)) < 100, "the epoch restarted");
        // Lifetime ends as it would have: 480 s after the restore (refreshed: 600 s after the refresh).
        after.Now += 601_000;
        Assert.Equal(Verdict.Drop, Inbound(after, port, out _));
    }

    [Fact]
    public void Expired_taken_or_foreign_mappings_are_not_restored()
    {
        var before = Harness();
        MapPort(before, IpProtocol.Udp, 5000, 23456);
        MapPort(before, IpProtocol.Udp, 5001, 23457);
        MapPort(before, IpProtocol.Udp, 5002, 23458);
        var saved = Export(before);

        var after = Harness();
        MapPort(after, IpProtocol.Udp, 6000, 23457); // the port was given to another mapping meanwhile
        var records = new List<PcpMappingRecord>
        {
            saved.Single(r => r.InternalPort == 5000) with { LifetimeLeftMs = 0 },           // ran out while natd was down
            saved.Single(r => r.InternalPort == 5001),                                       // port taken
            saved.Single(r => r.InternalPort == 5002) with { External = Ipv4.Parse("192.0.2.9") }, // address left the pool
        };
        Assert.Equal(0, after.Engine.ImportPcpMappings(records, after.Now));
        Assert.Equal(1, after.Engine.PcpTable!.Count);
        // With PCP off nothing is restored.
        var off = new EngineHarness();
        Assert.Equal(0, off.Engine.ImportPcpMappings(saved, off.Now));
    }

    [Fact]
    public void A_mapping_whose_host_had_a_session_restores_onto_the_restored_session_mapping()
    {
        var before = Harness();
        int implicitPort = SrcPort(before.Out(Udp(Host, 6001, Remote, 53)));
        Assert.Equal(implicitPort, MapPort(before, IpProtocol.Udp, 6001));
        var sessions = new List<SessionRecord>();
        before.Engine.ExportSessions(sessions, before.Now);
        var saved = Export(before);

        var after = Harness();
        Assert.Equal(1, after.Engine.ImportSessions(sessions, after.Now));
        Assert.Equal(1, after.Engine.ImportPcpMappings(saved, after.Now));
        // Any remote reaches the host through the mapping; the restored session's flow still translates.
        Assert.Equal(Verdict.ToInside, Inbound(after, implicitPort, out _, remote: "198.51.100.3"));
        Assert.Equal(implicitPort, SrcPort(after.Out(Udp(Host, 6001, Remote, 53))));
    }

    [Fact]
    public void The_state_file_carries_pcp_mappings_across_a_restart()
    {
        var before = Harness();
        int port = MapPort(before, IpProtocol.Tcp, 8080, 8080, lifetime: 900, options: Filter(24, 0, Remote));
        var shard = new List<PcpMappingRecord>();
        before.Engine.ExportPcpMappings(shard, before.Now);
        string path = Path.Combine(_dir, "state.json");
        var exported = DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000);
        StateSnapshot.Write(path, [new ShardState([], [], [], shard)], exported);
        Assert.Contains("\"pcpMappings\"", File.ReadAllText(path), StringComparison.Ordinal);

        var model = StateSnapshot.Read(path)!;
        var after = Harness();
        StateSnapshot.Restore(model, after.Engine, exported.AddSeconds(300), after.Now, out int restored);
        Assert.Equal(1, restored);
        var list = new List<PcpMappingInfo>();
        after.Engine.CollectPcpMappings(list, after.Now);
        PcpMappingInfo m = Assert.Single(list);
        Assert.Equal((IpProtocol.Tcp, (ushort)port, 600L, Nonce), (m.Protocol, m.ExternalPort, m.LifetimeLeftSeconds, m.Nonce)); // 900 s less the 300 s down
        Assert.Equal(new PcpFilter(Ipv4.Parse(Remote), 24, 0), Assert.Single(m.Filters)); // kept as sent
        byte[] syn = EngineHarness.FromOutside(Tcp(Remote, 40000, External, port, 0x02));
        Assert.Equal(Verdict.ToInside, after.Run(syn, Side.Outside, out byte[] o));
        Assert.Equal(8080, DstPort(o));

        // A snapshot written before PCP existed (no pcpMappings) restores sessions and no mapping.
        File.WriteAllText(path, """{"version":1,"exportedAtUnixMs":0,"sessions":[],"neighbours":[]}""");
        StateSnapshot.Restore(StateSnapshot.Read(path)!, Harness().Engine, exported, 0, out restored);
        Assert.Equal(0, restored);
    }
}

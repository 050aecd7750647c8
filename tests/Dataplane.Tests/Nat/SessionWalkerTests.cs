using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Nat;

/// <summary>
/// The session walker: listing and export are two visitors of the same walk and see the same
/// sessions, a record's keys are the session's own, and delete removes exactly the selected ones.
/// </summary>
public class SessionWalkerTests
{
    private const string In = EngineHarness.InsideHost, Out = EngineHarness.OutsideHost;

    /// <summary>UDP, TCP and ICMP sessions of two inside hosts.</summary>
    private static EngineHarness WithSessions()
    {
        var h = new EngineHarness();
        h.Out(Udp(In, 40000, Out, 53));
        h.Out(Udp(In, 40000, "198.51.100.3", 53));
        h.Out(Tcp(In, 41000, Out, 80, 0x02));
        h.Out(Icmp(In, Out, 8, 0, 0x1234, 1));
        h.Out(Udp("10.0.0.3", 40000, Out, 123));
        return h;
    }

    private static (byte, uint, ushort, uint, ushort, uint, ushort) Endpoints(SessionInfo s)
        => ((byte)(s.Protocol switch { "tcp" => 6, "udp" => 17, "icmp" => 1, _ => 0 }), s.InsideAddress, s.InsidePort, s.ExternalAddress, s.ExternalPort, s.RemoteAddress, s.RemotePort);

    private static (byte, uint, ushort, uint, ushort, uint, ushort) Endpoints(SessionRecord r)
        => (r.Protocol, r.InsideAddress, r.InsidePort, r.ExternalAddress, r.ExternalPort, r.RemoteAddress, r.RemotePort);

    [Fact]
    public void Listing_and_export_see_the_same_sessions()
    {
        var h = WithSessions();
        var rows = new List<SessionInfo>();
        var records = new List<SessionRecord>();
        h.Engine.Walker.Collect(rows, h.Now);
        h.Engine.Walker.Export(records, h.Now);

        Assert.Equal(5, rows.Count);
        Assert.Equal(h.Engine.Table.Count, rows.Count);
        Assert.Equal(rows.Select(Endpoints).Order(), records.Select(Endpoints).Order());
        Assert.Equal(rows.Sum(r => r.PacketsIn2Out), records.Sum(r => r.PacketsIn2Out));
        Assert.Equal(rows.Sum(r => r.BytesIn2Out), records.Sum(r => r.BytesIn2Out));
    }

    [Fact]
    public void An_exported_record_names_its_own_sessions_keys()
    {
        var h = WithSessions();
        var records = new List<SessionRecord>();
        h.Engine.Walker.Export(records, h.Now);
        foreach (SessionRecord r in records)
        {
            SessionWalker.KeysOf(r, out FlowKey in2out, out FlowKey out2in);
            int s = h.Engine.Table.FindIn2Out(in2out);
            Assert.True(s >= 0, $"{r} has no session by its in2out key");
            Assert.Equal(s, h.Engine.Table.FindOut2In(out2in));
        }
    }

    [Fact]
    public void Delete_removes_exactly_the_selected_sessions_and_both_views_agree_afterwards()
    {
        var h = WithSessions();
        // The inside endpoint's UDP sessions to one remote, then to any remote.
        Assert.Equal(1, h.Engine.Walker.Delete(IpProtocol.Udp, Ipv4.Parse(In), 40000, Ipv4.Parse(Out), 53));
        Assert.Equal(1, h.Engine.Walker.Delete(IpProtocol.Udp, Ipv4.Parse(In), 40000, 0, 0));
        Assert.Equal(0, h.Engine.Walker.Delete(IpProtocol.Udp, Ipv4.Parse(In), 40000, 0, 0));

        var rows = new List<SessionInfo>();
        var records = new List<SessionRecord>();
        h.Engine.Walker.Collect(rows, h.Now);
        h.Engine.Walker.Export(records, h.Now);
        Assert.Equal(3, rows.Count);
        Assert.Equal(rows.Select(Endpoints).Order(), records.Select(Endpoints).Order());
        Assert.DoesNotContain(rows, r => r.Protocol == "udp" && r.InsideAddress == Ipv4.Parse(In));
    }

    [Fact]
    public void Flush_empties_the_table_and_frees_every_port_its_sessions_took()
    {
        var fresh = new EngineHarness();
        var h = WithSessions();
        Assert.NotEqual(fresh.Engine.Table.Ports.InUse(0, SessionTable.ProtocolClass(IpProtocol.Udp)), h.Engine.Table.Ports.InUse(0, SessionTable.ProtocolClass(IpProtocol.Udp)));
        Assert.Equal(5, h.Engine.Walker.Flush());
        Assert.Equal(0, h.Engine.Table.Count);
        var rows = new List<SessionInfo>();
        h.Engine.Walker.Collect(rows, h.Now);
        Assert.Empty(rows);
        for (int c = 0; c < PortAllocator.Classes; c++)
        {
            Assert.Equal(fresh.Engine.Table.Ports.InUse(0, c), h.Engine.Table.Ports.InUse(0, c)); // what the engine itself holds stays
        }
    }
}

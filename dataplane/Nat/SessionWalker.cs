using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// The one walk over a shard's session table for the control path: listing (natctl sessions),
/// delete (natctl delete), export (the restart snapshot), each a single pass of
/// <see cref="Walk{TVisitor}"/> with its own visitor, and flush. It owns how a <see cref="Session"/>
/// becomes a <see cref="SessionInfo"/> row or a <see cref="SessionRecord"/> (and a record its flow
/// keys again, <see cref="KeysOf"/>), so each shape is written in one place. Control path only
/// (allocates); runs on the shard's thread. Addresses network order, ports host order, times
/// milliseconds of the engine's clock.
/// </summary>
public sealed class SessionWalker
{
    private readonly SessionTable _table;
    private readonly AlgBridge _alg;
    private NatSettings _settings;

    /// <summary>Creates the walker of a shard.</summary>
    /// <param name="table">The shard's session table.</param>
    /// <param name="alg">The shard's ALG bridge (relations of related sessions; flush clears its expectations).</param>
    /// <param name="settings">Configuration (timeouts, ALG ports).</param>
    public SessionWalker(SessionTable table, AlgBridge alg, NatSettings settings)
    {
        _table = table;
        _alg = alg;
        _settings = settings;
    }

    /// <summary>Takes a reloaded configuration.</summary>
    public void Update(NatSettings next) => _settings = next;

    /// <summary>What a walk does with each live session.</summary>
    internal interface IVisitor
    {
        /// <summary>Visits live session <paramref name="index"/>.</summary>
        void Visit(SessionWalker walker, int index, ref Session session);
    }

    /// <summary>Visits every live session once, in slot order. A visitor may delete the session it visits.</summary>
    /// <returns>Sessions visited.</returns>
    internal int Walk<TVisitor>(ref TVisitor visitor)
        where TVisitor : struct, IVisitor
    {
        var sessions = _table.Sessions;
        int n = 0;
        for (int i = 0; i < sessions.Length; i++)
        {
            ref Session s = ref sessions[i];
            if (s.InUse)
            {
                visitor.Visit(this, i, ref s);
                n++;
            }
        }
        return n;
    }

    /// <summary>Appends a row per session to <paramref name="into"/> (natctl sessions).</summary>
    /// <param name="into">List to fill.</param>
    /// <param name="nowMs">Current time.</param>
    public void Collect(List<SessionInfo> into, long nowMs)
    {
        var v = new Listing(into, nowMs);
        Walk(ref v);
    }

    /// <summary>Appends a record per session to <paramref name="into"/> (restart snapshot; idle time as of <paramref name="nowMs"/>).</summary>
    public void Export(List<SessionRecord> into, long nowMs)
    {
        var v = new Exporting(into, nowMs);
        Walk(ref v);
    }

    /// <summary>
    /// Deletes the sessions of an inside endpoint (natctl delete), optionally only those with a given
    /// remote address and port (0 = any).
    /// </summary>
    /// <param name="protocol">IP protocol number.</param>
    /// <param name="insideAddress">Inside address.</param>
    /// <param name="insidePort">Inside port or ICMP identifier, host order.</param>
    /// <param name="remoteAddress">Remote address; 0 for any.</param>
    /// <param name="remotePort">Remote port, host order; 0 for any.</param>
    /// <returns>Sessions deleted.</returns>
    public int Delete(byte protocol, uint insideAddress, ushort insidePort, uint remoteAddress, ushort remotePort)
    {
        var v = new Deleting(protocol, insideAddress, FlowKey.PortToRaw(insidePort), remoteAddress, FlowKey.PortToRaw(remotePort));
        Walk(ref v);
        return v.Deleted;
    }

    /// <summary>Deletes the sessions translated to external address <paramref name="external"/> (network order), freeing their ports.</summary>
    /// <returns>Sessions deleted.</returns>
    public int DeleteOnExternal(uint external)
    {
        var v = new DeletingOnExternal(external);
        Walk(ref v);
        return v.Deleted;
    }

    /// <summary>Deletes every session and every expectation, freeing their ports (natctl flush).</summary>
    /// <returns>Sessions deleted.</returns>
    public int Flush()
    {
        _alg.Flush();
        return _table.Clear();
    }

    /// <summary>The row natctl shows for a session.</summary>
    internal SessionInfo Row(int index, ref Session s, long nowMs)
    {
        double expires = SessionTable.TimeoutSeconds(s.Class, _settings.Timeouts) - (nowMs - s.LastSeenMs) / 1000.0;
        byte proto = s.In2Out.Protocol;
        return new SessionInfo(
            ProtocolName(proto),
            s.In2Out.Source, FlowKey.PortToHost(s.In2Out.SourcePort),
            s.Out2In.Destination, FlowKey.PortToHost(s.Out2In.DestinationPort),
            s.Out2In.Source, FlowKey.PortToHost(s.Out2In.SourcePort),
            Math.Max(0, expires),
            proto == IpProtocol.Tcp ? TcpStateName(s.Tcp) : "active",
            s.PacketsIn2Out, s.PacketsOut2In, s.BytesIn2Out, s.BytesOut2In)
        {
            Alg = s.Alg == AlgKind.None ? null : AlgName(s.Alg),
            RelatedTo = _alg.TryGetControl(index, out FlowKey control) ? DescribeControl(control) : null,
        };
    }

    /// <summary>The record a session is saved as.</summary>
    internal static SessionRecord Record(ref Session s, long nowMs)
    {
        bool icmp = s.In2Out.Protocol == IpProtocol.Icmp;
        return new SessionRecord(
            s.In2Out.Protocol,
            s.In2Out.Source, FlowKey.PortToHost(s.In2Out.SourcePort),
            s.Out2In.Destination, FlowKey.PortToHost(s.Out2In.DestinationPort),
            s.Out2In.Source, icmp ? (ushort)0 : FlowKey.PortToHost(s.Out2In.SourcePort),
            s.Origin, s.Tcp, s.Class, Math.Max(0, nowMs - s.LastSeenMs),
            s.PacketsIn2Out, s.PacketsOut2In, s.BytesIn2Out, s.BytesOut2In);
    }

    /// <summary>The flow keys of a saved session, the inverse of what <see cref="Export"/> wrote (ICMP: the remote "port" is 0 both ways).</summary>
    public static void KeysOf(SessionRecord r, out FlowKey in2out, out FlowKey out2in)
    {
        ArgumentNullException.ThrowIfNull(r);
        bool icmp = r.Protocol == IpProtocol.Icmp;
        ushort iport = FlowKey.PortToRaw(r.InsidePort), eport = FlowKey.PortToRaw(r.ExternalPort), rport = icmp ? (ushort)0 : FlowKey.PortToRaw(r.RemotePort);
        in2out = new FlowKey(r.InsideAddress, r.RemoteAddress, iport, rport, r.Protocol);
        out2in = new FlowKey(r.RemoteAddress, r.ExternalAddress, rport, eport, r.Protocol);
    }

    private string DescribeControl(in FlowKey c)
    {
        // The control session knows its ALG (a forward's is classified by the inside server's port).
        int cs = _table.FindIn2Out(c);
        AlgKind kind = cs >= 0 && _table.Sessions[cs].Alg != AlgKind.None
            ? _table.Sessions[cs].Alg
            : _settings.Algs.Classify(c.Protocol, FlowKey.PortToHost(c.DestinationPort));
        string proto = ProtocolName(c.Protocol);
        string who = kind == AlgKind.None ? "trigger" : AlgName(kind);
        return $"{who} {proto} {Ipv4.Format(c.Source)}:{FlowKey.PortToHost(c.SourcePort)} -> {Ipv4.Format(c.Destination)}:{FlowKey.PortToHost(c.DestinationPort)}";
    }

    /// <summary>
    /// Lower-case protocol name of a session row: tcp, udp, icmp, and for port-less masquerading
    /// (rules that masquerade any IP protocol) gre, esp, ah or the decimal protocol number.
    /// </summary>
    public static string ProtocolName(byte protocol) => protocol switch
    {
        IpProtocol.Tcp => "tcp",
        IpProtocol.Udp => "udp",
        IpProtocol.Icmp => "icmp",
        IpProtocol.Gre => "gre",
        IpProtocol.Esp => "esp",
        IpProtocol.Ah => "ah",
        _ => protocol.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>Lower-case ALG name as configuration and natctl spell it.</summary>
    public static string AlgName(AlgKind kind) => kind switch
    {
        AlgKind.Ftp => "ftp",
        AlgKind.Irc => "irc",
        AlgKind.Tftp => "tftp",
        AlgKind.Pptp => "pptp",
        _ => "none",
    };

    /// <summary>Human name of a TCP session's state, as listed by natctl.</summary>
    public static string TcpStateName(TcpSeen seen)
    {
        if ((seen & TcpSeen.Rst) != 0)
        {
            return "rst";
        }
        bool finIn = (seen & TcpSeen.FinIn2Out) != 0, finOut = (seen & TcpSeen.FinOut2In) != 0;
        if (finIn && finOut)
        {
            return "closing";
        }
        if (finIn || finOut)
        {
            return "fin-wait";
        }
        if ((seen & TcpSeen.Established) != 0)
        {
            return "established";
        }
        return (seen & TcpSeen.SynIn2Out) != 0 ? "syn-sent" : "syn-received";
    }

    private readonly struct Listing(List<SessionInfo> into, long nowMs) : IVisitor
    {
        public void Visit(SessionWalker walker, int index, ref Session session) => into.Add(walker.Row(index, ref session, nowMs));
    }

    private readonly struct Exporting(List<SessionRecord> into, long nowMs) : IVisitor
    {
        public void Visit(SessionWalker walker, int index, ref Session session) => into.Add(Record(ref session, nowMs));
    }

    private struct DeletingOnExternal(uint external) : IVisitor
    {
        public int Deleted;

        public void Visit(SessionWalker walker, int index, ref Session s)
        {
            if (s.Out2In.Destination == external)
            {
                walker._table.Delete(index);
                Deleted++;
            }
        }
    }

    private struct Deleting(byte protocol, uint inside, ushort insidePortRaw, uint remote, ushort remotePortRaw) : IVisitor
    {
        public int Deleted;

        public void Visit(SessionWalker walker, int index, ref Session s)
        {
            if (s.In2Out.Protocol == protocol && s.In2Out.Source == inside && s.In2Out.SourcePort == insidePortRaw
                && (remote == 0 || s.Out2In.Source == remote)
                && (remotePortRaw == 0 || s.Out2In.SourcePort == remotePortRaw))
            {
                walker._table.Delete(index);
                Deleted++;
            }
        }
    }
}

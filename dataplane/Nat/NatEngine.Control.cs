using Natd.Dataplane.Alg.Pptp;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    /// <summary>
    /// Appends every session to <paramref name="into"/> (control path: allocates). Must run on the
    /// engine's thread.
    /// </summary>
    /// <param name="into">List to fill.</param>
    /// <param name="nowMs">Current time in the engine's clock (milliseconds).</param>
    public void CollectSessions(List<SessionInfo> into, long nowMs)
    {
        var sessions = Table.Sessions;
        for (int i = 0; i < sessions.Length; i++)
        {
            ref Session s = ref sessions[i];
            if (!s.InUse)
            {
                continue;
            }
            double expires = SessionTable.TimeoutSeconds(s.Class, _settings.Timeouts) - (nowMs - s.LastSeenMs) / 1000.0;
            byte proto = s.In2Out.Protocol;
            into.Add(new SessionInfo(
                ProtocolName(proto),
                s.In2Out.Source, FlowKey.PortToHost(s.In2Out.SourcePort),
                s.Out2In.Destination, FlowKey.PortToHost(s.Out2In.DestinationPort),
                s.Out2In.Source, FlowKey.PortToHost(s.Out2In.SourcePort),
                Math.Max(0, expires),
                proto == IpProtocol.Tcp ? TcpStateName(s.Tcp) : "active",
                s.PacketsIn2Out, s.PacketsOut2In, s.BytesIn2Out, s.BytesOut2In)
            {
                Alg = s.Alg == Sessions.AlgKind.None ? null : AlgName(s.Alg),
                RelatedTo = TryGetControl(i, out FlowKey control) ? DescribeControl(control) : null,
            });
        }
        CollectIpsecSessions(into, nowMs);
        CollectGreCalls(into, nowMs);
    }

    /// <summary>PPTP calls as "gre" rows: the Call IDs stand where ports would (inside, external, the server's), state "pptp-call".</summary>
    private void CollectGreCalls(List<SessionInfo> into, long nowMs)
    {
        var calls = GreCalls.Entries;
        double timeout = _settings.Timeouts.Udp;
        for (int i = 0; i < calls.Length; i++)
        {
            ref GreCallTable.Entry c = ref calls[i];
            if (c.InUse)
            {
                into.Add(new SessionInfo("gre", c.InsideAddress, c.InsideCallId, c.ExternalAddress, c.ExternalCallId, c.RemoteAddress, c.RemoteCallId,
                    Math.Max(0, timeout - (nowMs - c.LastSeenMs) / 1000.0), "pptp-call", 0, 0, 0, 0) { Alg = "pptp" });
            }
        }
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
    public static string AlgName(Sessions.AlgKind kind) => kind switch
    {
        Sessions.AlgKind.Ftp => "ftp",
        Sessions.AlgKind.Irc => "irc",
        Sessions.AlgKind.Tftp => "tftp",
        Sessions.AlgKind.Pptp => "pptp",
        _ => "none",
    };

    private string DescribeControl(in FlowKey c)
    {
        // The control session knows its ALG (a forward's is classified by the inside server's port).
        int cs = Table.FindIn2Out(c);
        Sessions.AlgKind kind = cs >= 0 && Table.Sessions[cs].Alg != Sessions.AlgKind.None
            ? Table.Sessions[cs].Alg
            : _settings.Algs.Classify(c.Protocol, FlowKey.PortToHost(c.DestinationPort));
        string proto = ProtocolName(c.Protocol);
        string who = kind == Sessions.AlgKind.None ? "trigger" : AlgName(kind);
        return $"{who} {proto} {Ipv4.Format(c.Source)}:{FlowKey.PortToHost(c.SourcePort)} -> {Ipv4.Format(c.Destination)}:{FlowKey.PortToHost(c.DestinationPort)}";
    }

    /// <summary>
    /// Deletes the sessions of an inside endpoint (natctl delete), optionally only the one with a
    /// given remote endpoint (0 = any). Must run on the engine's thread.
    /// </summary>
    /// <returns>Sessions deleted.</returns>
    public int DeleteSessions(byte protocol, uint insideAddress, ushort insidePort, uint remoteAddress, ushort remotePort)
    {
        var sessions = Table.Sessions;
        ushort iport = FlowKey.PortToRaw(insidePort), rport = FlowKey.PortToRaw(remotePort);
        int n = 0;
        for (int i = 0; i < sessions.Length; i++)
        {
            ref Session s = ref sessions[i];
            if (s.InUse && s.In2Out.Protocol == protocol && s.In2Out.Source == insideAddress && s.In2Out.SourcePort == iport
                && (remoteAddress == 0 || s.Out2In.Source == remoteAddress)
                && (remotePort == 0 || s.Out2In.SourcePort == rport))
            {
                Table.Delete(i);
                n++;
            }
        }
        return n;
    }

    /// <summary>Sessions above which <see cref="Prefetch(in ParsedFrame, bool)"/> works (below, the table stays in the caches).</summary>
    public const int PrefetchThreshold = 65_536;

    /// <summary>
    /// Prefetch hint for a frame that will be processed a few frames from now: stage one
    /// (<paramref name="session"/> false) for about four frames ahead, stage two for about two.
    /// Parses the frame (<see cref="FrameParser"/>); changes nothing, never fails. A poller that
    /// parsed the frame already uses <see cref="Prefetch(in ParsedFrame, bool)"/>.
    /// </summary>
    public void Prefetch(ReadOnlySpan<byte> frame, Side ingress, bool session)
    {
        if (Table.Count < PrefetchThreshold)
        {
            return;
        }
        FrameParser.Parse(frame, ingress, Table.HashSeed, out ParsedFrame p);
        Prefetch(p, session);
    }

    /// <summary>
    /// Prefetch hint for a parsed frame (its key's hash computed once by the parser): stage one
    /// (<paramref name="session"/> false) for about four frames ahead, stage two for about two.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public void Prefetch(in ParsedFrame frame, bool session)
    {
        // A table that fits the caches gains nothing from the hint.
        if (Table.Count < PrefetchThreshold || !frame.HasKey || frame.Drop != ParsedFrame.None)
        {
            return;
        }
        Table.Prefetch(frame.Hash, frame.Ingress == Side.Inside, session);
    }

    /// <summary>Deletes every session (natctl flush). Must run on the engine's thread.</summary>
    /// <returns>Sessions deleted.</returns>
    public int Flush()
    {
        FlushExpectations();
        return Table.Clear() + _ipsec.Clear();
    }

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

    /// <summary>
    /// For replay of a capture taken on the inside network: turns a frame that a remote sent to an
    /// inside host (as the inside host saw it, already un-translated) back into what the remote
    /// really sent, addressed to the session's external address and port, so it can be fed to the
    /// outside port. TCP, UDP, ICMP echo replies, and ICMP errors about the host's own packets
    /// (their quoted header carries the external endpoint again, RFC 5508). Rewrites in place with
    /// the same incremental checksum updates; an expired session counts as none.
    /// </summary>
    /// <param name="frame">An Ethernet/IPv4 frame addressed to an inside host.</param>
    /// <param name="nowMs">The frame's time (engine clock, ms).</param>
    /// <returns>False when the frame is not such a packet or matches no live session (it is then unsolicited).</returns>
    public bool TryRebuildOutsideFrame(Span<byte> frame, long nowMs)
    {
        _now = nowMs;
        Table.NowMs = nowMs;
        if (frame.Length < EthernetHeader.Length + Ipv4Header.MinLength || new EthernetHeader(frame).EtherType != EtherType.Ipv4)
        {
            return false;
        }
        Span<byte> ipSpan = frame[EthernetHeader.Length..];
        var ip = new Ipv4Header(ipSpan);
        int ihl = ip.HeaderLength;
        if (ip.Version != 4 || ihl < Ipv4Header.MinLength || ip.TotalLength > ipSpan.Length || ip.TotalLength < ihl + 8 || ip.IsFragment)
        {
            return false;
        }
        ipSpan = ipSpan[..ip.TotalLength];
        Span<byte> l4 = ipSpan[ihl..];
        byte proto = ip.Protocol;
        FlowKey in2out;
        int portOffset;
        if (proto is IpProtocol.Tcp or IpProtocol.Udp)
        {
            if (proto == IpProtocol.Tcp && l4.Length < Tcp.MinLength)
            {
                return false;
            }
            in2out = new FlowKey(ip.Destination, ip.Source, Checksum.ReadRaw16(l4, 2), Checksum.ReadRaw16(l4, 0), proto);
            portOffset = 2;
        }
        else if (proto == IpProtocol.Icmp && l4[0] == Icmp.EchoReply)
        {
            in2out = new FlowKey(ip.Destination, ip.Source, Checksum.ReadRaw16(l4, Icmp.IdentifierOffset), 0, proto);
            portOffset = Icmp.IdentifierOffset;
        }
        else if (proto == IpProtocol.Icmp && Icmp.IsError(l4[0]))
        {
            return RebuildIcmpError(ip, l4);
        }
        else
        {
            return false;
        }
        int s = LookupIn2Out(in2out);
        if (s < 0)
        {
            return false;
        }
        ref Session ses = ref Table.Sessions[s];
        ip.Destination = ses.Out2In.Destination;
        ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, ses.IpDeltaIn2Out);
        RewriteL4(l4, proto, portOffset, ses.Out2In.DestinationPort, ses.L4DeltaIn2Out);
        return true;
    }

    /// <summary>An ICMP error about an inside host's own packet, rebuilt as it arrived at the external address.</summary>
    private bool RebuildIcmpError(Ipv4Header ip, Span<byte> icmp)
    {
        Span<byte> emb = icmp[Icmp.HeaderLength..];
        if (emb.Length < Ipv4Header.MinLength)
        {
            return false;
        }
        var eip = new Ipv4Header(emb);
        int eihl = eip.HeaderLength;
        if (eip.Version != 4 || eihl < Ipv4Header.MinLength || emb.Length < eihl + IcmpQuoteBytes || eip.Source != ip.Destination)
        {
            return false;
        }
        Span<byte> el4 = emb[eihl..];
        byte proto = eip.Protocol;
        FlowKey in2out;
        if (proto is IpProtocol.Tcp or IpProtocol.Udp)
        {
            in2out = new FlowKey(eip.Source, eip.Destination, Checksum.ReadRaw16(el4, 0), Checksum.ReadRaw16(el4, 2), proto);
        }
        else if (proto == IpProtocol.Icmp && el4[0] == Icmp.EchoRequest)
        {
            in2out = new FlowKey(eip.Source, eip.Destination, Checksum.ReadRaw16(el4, Icmp.IdentifierOffset), 0, proto);
        }
        else
        {
            return false;
        }
        int s = LookupIn2Out(in2out);
        if (s < 0)
        {
            return false;
        }
        ref Session ses = ref Table.Sessions[s];
        uint external = ses.Out2In.Destination;
        ip.Destination = external;
        ip.ChecksumRaw = Checksum.ApplyDelta(ip.ChecksumRaw, ses.IpDeltaIn2Out);
        eip.Source = external;
        eip.ChecksumRaw = Checksum.ApplyDelta(eip.ChecksumRaw, ses.IpDeltaIn2Out);
        RewriteEmbeddedL4(el4, proto, sourceSide: true, ses.Out2In.DestinationPort, ses.L4DeltaIn2Out);
        FinishIcmp(icmp);
        return true;
    }
}

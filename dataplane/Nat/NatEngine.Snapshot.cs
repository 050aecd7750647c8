using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// One session as saved across a restart. Addresses network order, ports host order (ICMP: the
/// identifiers), idle time in milliseconds at the moment of export.
/// </summary>
public sealed record SessionRecord(
    byte Protocol,
    uint InsideAddress,
    ushort InsidePort,
    uint ExternalAddress,
    ushort ExternalPort,
    uint RemoteAddress,
    ushort RemotePort,
    SessionOrigin Origin,
    TcpSeen Tcp,
    LruClass Class,
    long IdleMs,
    long PacketsIn2Out,
    long PacketsOut2In,
    long BytesIn2Out,
    long BytesOut2In);

public sealed partial class NatEngine
{
    /// <summary>Appends every live session to <paramref name="into"/> (control path, engine thread).</summary>
    public void ExportSessions(List<SessionRecord> into, long nowMs) => Walker.Export(into, nowMs);

    /// <summary>
    /// Restores saved sessions oldest first (so each expiry list stays ordered by last activity),
    /// and returns how many were restored. See <see cref="ImportSession"/>.
    /// </summary>
    public int ImportSessions(IEnumerable<SessionRecord> records, long nowMs)
    {
        var list = new List<SessionRecord>(records);
        list.Sort((a, b) => b.IdleMs.CompareTo(a.IdleMs));
        int n = 0;
        foreach (var r in list)
        {
            if (ImportSession(r, nowMs))
            {
                n++;
            }
        }
        return n;
    }

    /// <summary>
    /// Restores a saved session (before the poller starts, or on its thread). Refused when it has
    /// expired meanwhile, when its external address left the pool, when its port is taken, or when
    /// its forward is gone: a restored session never takes an endpoint from a live one.
    /// </summary>
    /// <returns>True when restored.</returns>
    public bool ImportSession(SessionRecord r, long nowMs)
    {
        _now = nowMs;
        Table.NowMs = nowMs;
        SessionWalker.KeysOf(r, out FlowKey in2out, out FlowKey out2in);
        LruClass cls = RestoredClass(r.Class, in2out, out2in);
        if (r.IdleMs >= _timeoutMs[(int)cls] || Table.Count >= Table.Capacity)
        {
            return false;
        }
        ushort iport = in2out.SourcePort, eport = out2in.DestinationPort;
        if (Table.FindIn2Out(in2out) >= 0 || Table.FindOut2In(out2in) >= 0)
        {
            return false;
        }
        int m;
        int tag = 0;
        switch (r.Origin)
        {
            case SessionOrigin.Masquerade or SessionOrigin.Inbound or SessionOrigin.Related:
                m = FindOrRestoreMapping(r, iport, eport);
                break;
            case SessionOrigin.Forward:
                int f = FindForward(r.Protocol, r.ExternalAddress, eport);
                if (f < 0 || !ForwardStillHas(in2out, out2in))
                {
                    return false;
                }
                int b = 0;
                for (; b < _forwards[f].Backends.Count && _forwards[f].Backends[b].Key != r.InsideAddress; b++)
                {
                }
                tag = (f << 8) | b;
                m = Table.AddMapping(r.InsideAddress, iport, r.ExternalAddress, eport, r.Protocol, -1, endpointIndependent: false);
                break;
            default: // Accept and PortLess own no allocator port
                m = Table.AddMapping(r.InsideAddress, iport, r.ExternalAddress, eport, r.Protocol, -1, endpointIndependent: false);
                break;
        }
        if (m < 0)
        {
            return false;
        }
        int s = Table.AddSession(m, in2out, out2in, cls, nowMs - r.IdleMs);
        if (s < 0)
        {
            if (Table.Mappings[m].SessionCount == 0)
            {
                Table.RemoveMapping(m);
            }
            return false;
        }
        ref Session ses = ref Table.Sessions[s];
        ses.Origin = r.Origin;
        if (r.Origin == SessionOrigin.Masquerade)
        {
            // The helper's stream state is not saved: a control connection whose payload length was
            // changed resumes without its sequence offsets (new commands are still handled).
            ses.Alg = _settings.Algs.Classify(r.Protocol, r.RemotePort);
        }
        ses.Tcp = r.Tcp;
        Table.Mappings[m].Tag = tag;
        ses.PacketsIn2Out = (uint)r.PacketsIn2Out;
        ses.PacketsOut2In = (uint)r.PacketsOut2In;
        ses.BytesIn2Out = r.BytesIn2Out;
        ses.BytesOut2In = r.BytesOut2In;
        return true;
    }

    private int FindOrRestoreMapping(SessionRecord r, ushort iport, ushort eport)
    {
        bool eim = _settings.Mapping == MappingBehaviour.EndpointIndependent;
        if (eim)
        {
            int existing = Table.FindMappingByInside(r.InsideAddress, iport, r.Protocol);
            if (existing >= 0)
            {
                ref Mapping map = ref Table.Mappings[existing];
                return map.ExternalKey.Destination == r.ExternalAddress && map.ExternalKey.DestinationPort == eport ? existing : -1;
            }
        }
        int pool = _addresses.PoolIndexOf(r.ExternalAddress);
        if (pool < 0 || !Table.Ports.TryReserve(pool, SessionTable.ProtocolClass(r.Protocol), r.ExternalPort))
        {
            return -1;
        }
        int m = Table.AddMapping(r.InsideAddress, iport, r.ExternalAddress, eport, r.Protocol, pool, eim);
        if (m < 0)
        {
            Table.Ports.Free(pool, SessionTable.ProtocolClass(r.Protocol), r.ExternalPort);
        }
        else
        {
            Subscribers?.Adopt(r.InsideAddress, pool, SessionTable.ProtocolClass(r.Protocol), r.ExternalPort, nowMs: _now, restored: true); // its pairing and block come back with it
        }
        return m;
    }

    /// <summary>
    /// The expiry class a restored session lives in under this configuration: a TCP session keeps
    /// its state's class, a UDP session takes its well-known port's timer as configured now
    /// (<see cref="UdpPortTimeouts"/>), and a class the snapshot cannot have held is not trusted.
    /// </summary>
    private LruClass RestoredClass(LruClass saved, in FlowKey in2out, in FlowKey out2in) => in2out.Protocol switch
    {
        IpProtocol.Tcp => saved is LruClass.TcpEstablished ? saved : LruClass.TcpTransitory,
        IpProtocol.Udp => Table.UdpPorts.ClassOf(in2out.DestinationPort, out2in.DestinationPort),
        IpProtocol.Icmp => LruClass.Icmp,
        _ => LruClass.Udp, // port-less protocols live as UDP does
    };
}

using System.Runtime.CompilerServices;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Alg.Ipsec;

/// <summary>What <see cref="IpsecMasq"/> decided for one ESP or ISAKMP packet.</summary>
public enum IpsecVerdict : byte
{
    /// <summary>Translate and forward.</summary>
    Forward,
    /// <summary>ESP with SPI 0, which RFC 4303 section 2.1 reserves (never on the wire).</summary>
    ZeroSpi,
    /// <summary>A new outbound SPI to a remote host while another inside host waits for its inbound SPI there (serialised init); the sender retries.</summary>
    Serialised,
    /// <summary>The outbound SPI ran out of retries while serialised; refused for the init timeout.</summary>
    Refused,
    /// <summary>Parallel sessions are off and another inside host holds ESP with this remote host.</summary>
    RemoteInUse,
    /// <summary>Inbound ESP with an unknown SPI, no host waiting for association and no host that rekeyed with the remote host.</summary>
    NoAssociation,
    /// <summary>The ESP or ISAKMP table is full.</summary>
    TableFull,
    /// <summary>Inbound ISAKMP whose cookies match no inside host.</summary>
    IsakmpNoEntry,
    /// <summary>
    /// An inside host opens ISAKMP with the same initiator cookie to the same remote host as another
    /// inside host whose responder cookie is still unknown: held back until it is (the sender retransmits).
    /// </summary>
    IsakmpCookieCollision,
}

/// <summary>State of an outbound ESP SPI, as listed by natctl.</summary>
public enum EspState : byte
{
    /// <summary>Sent first; waiting for the remote host's inbound SPI (holds the remote host's init slot).</summary>
    Pending,
    /// <summary>Its inbound SPI was seen and associated.</summary>
    Associated,
    /// <summary>The init timeout passed without an inbound SPI; outbound still flows.</summary>
    Unanswered,
    /// <summary>Dropped while another host holds the remote host's init slot (counting retries).</summary>
    Blocked,
    /// <summary>Ran out of retries; dropped until the init timeout passes.</summary>
    Refused,
}

/// <summary>One outbound ESP SPI (for listings).</summary>
/// <param name="Inside">Inside host, network order.</param>
/// <param name="Remote">Remote IPsec host, network order.</param>
/// <param name="External">External address the host appears as, network order.</param>
/// <param name="OutSpi">SPI of the host's outbound SA (as on the wire, host order number).</param>
/// <param name="InSpi">SPI associated inbound with this one, 0 when none.</param>
/// <param name="State">State.</param>
/// <param name="ExpiresInSeconds">Seconds until it idles out.</param>
/// <param name="PacketsOut">Outbound packets forwarded.</param>
/// <param name="PacketsIn">Inbound packets delivered on <paramref name="InSpi"/>.</param>
public readonly record struct EspEntryInfo(uint Inside, uint Remote, uint External, uint OutSpi, uint InSpi, EspState State,
    double ExpiresInSeconds, long PacketsOut, long PacketsIn);

/// <summary>One ISAKMP entry (for listings).</summary>
/// <param name="Inside">Inside host, network order.</param>
/// <param name="InsidePort">Inside port, host order (500).</param>
/// <param name="Remote">Remote IPsec host, network order.</param>
/// <param name="RemotePort">Remote port, host order.</param>
/// <param name="External">External address, network order.</param>
/// <param name="ExternalPort">External port, host order (kept: 500).</param>
/// <param name="InitiatorCookie">Initiator cookie (RFC 2408 section 3.1), big-endian value.</param>
/// <param name="ResponderCookie">Responder cookie, 0 while unknown.</param>
/// <param name="ExpiresInSeconds">Seconds until it idles out.</param>
/// <param name="PacketsOut">Outbound packets.</param>
/// <param name="PacketsIn">Inbound packets.</param>
public readonly record struct IsakmpEntryInfo(uint Inside, ushort InsidePort, uint Remote, ushort RemotePort, uint External, ushort ExternalPort,
    ulong InitiatorCookie, ulong ResponderCookie, double ExpiresInSeconds, long PacketsOut, long PacketsIn);

/// <summary>
/// IPsec masquerading as the VPN Masquerade HOWTO section 6 describes (the ip_masq_ipsec patch):
/// <list type="bullet">
/// <item>ESP (RFC 4303) carries no ports and the outbound SPI says nothing about the inbound one, so
/// inbound SPIs are learned by serialising initial traffic per remote host: an inside host's new
/// outbound SPI takes the remote host's init slot for <see cref="IpsecSettings.InitTimeout"/>
/// seconds, and the first inbound packet with an unknown SPI from that remote host is associated
/// with it. Meanwhile another inside host's new SPI to that remote host is dropped (the host
/// retransmits); after <see cref="IpsecSettings.InitRetries"/> such drops it is refused for an init
/// timeout.</item>
/// <item>Inbound ESP with an unknown SPI while no host waits goes to the host that most recently
/// rekeyed with that remote host (its last ISAKMP exchange or new outbound SPI), and sticks to it.</item>
/// <item>SPI 0 is dropped. With <see cref="IpsecSettings.Parallel"/> off (the default) one inside
/// host at a time has ESP with a given remote host.</item>
/// <item>ISAKMP (UDP 500, RFC 2408) keeps source port 500; replies are routed by initiator cookie
/// and, when two inside hosts use the same initiator cookie with one remote host, by the responder
/// cookie learned from the first reply (the HOWTO's cookie-collision fix). While one host's
/// responder cookie is unknown, a second host's new exchange with the same initiator cookie is
/// held back, so the first reply can never be misrouted.</item>
/// </list>
/// Entries are keyed per external address, so a pool of addresses serialises per (remote, external).
/// Pure state machine: no frames, no clock of its own (callers pass milliseconds), preallocated
/// tables (no allocation per packet), single threaded (the engine of shard 0 owns it).
/// Timeouts are read from <see cref="Settings"/> at check time, so a reload applies at once.
/// </summary>
public sealed class IpsecMasq
{
    private readonly record struct OutKey(uint Inside, uint Remote, uint External, uint Spi);

    private readonly record struct InKey(uint Remote, uint External, uint Spi);

    private readonly record struct PeerKey(uint Remote, uint External);

    private readonly record struct CookieKey(uint Remote, uint External, ulong Cookie);

    private struct OutEntry
    {
        public OutKey Key;
        public EspState State;
        public int Retries;
        public long CreatedMs, LastMs;
        public uint InSpi;
        public long PacketsOut, PacketsIn;
        public bool InUse;
    }

    private struct InEntry
    {
        public InKey Key;
        public uint Inside;
        public int Out; // the outbound entry it was associated with, -1 when by the rekey guess
        public long LastMs;
        public bool InUse;
    }

    private struct Peer
    {
        public PeerKey Key;
        public uint PendingHost;
        public int PendingOut;
        public long PendingSinceMs;
        public bool Pending;
        public uint Holder;
        public long HolderSeenMs;
        public uint RekeyHost;
        public long RekeyMs;
        public bool InUse;
    }

    private struct IsakmpEntry
    {
        public CookieKey Key;
        public uint Inside;
        public ushort InsidePort, RemotePort, ExternalPort;
        public ulong ResponderCookie;
        public long CreatedMs, LastMs, LastOutMs;
        public long PacketsOut, PacketsIn;
        public int Next; // next entry with the same (remote, external, initiator cookie), -1 at the end
        public bool InUse;
    }

    private readonly OutEntry[] _out;
    private readonly InEntry[] _in;
    private readonly Peer[] _peers;
    private readonly IsakmpEntry[] _isakmp;
    private readonly Dictionary<OutKey, int> _outIndex;
    private readonly Dictionary<InKey, int> _inIndex;
    private readonly Dictionary<PeerKey, int> _peerIndex;
    private readonly Dictionary<CookieKey, int> _cookieIndex;
    private readonly FreeList _outFree, _inFree, _peerFree, _isakmpFree;

    // Expiry order of each table: a sweep visits what is due, not the table (every live entry is
    // queued, at a deadline no later than the one its timestamps give now).
    private readonly DeadlineQueue _outDue, _inDue, _peerDue, _isakmpDue;
    private IpsecSettings _settings;

    /// <summary>Creates empty tables.</summary>
    /// <param name="settings">Timeouts, retries and the parallel switch.</param>
    /// <param name="capacity">Entries per table (outbound SPIs, inbound SPIs, remote hosts, ISAKMP entries); at least 1.</param>
    /// <param name="counters">The shard's counter table (SPIs associated, cookies learned); null: a table of its own.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> below 1.</exception>
    public IpsecMasq(IpsecSettings settings, int capacity = 4096, Counters.CounterTable? counters = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _counters = counters ?? new Counters.CounterTable(new Counters.CounterSchema(Counters.ShardCounters.Declarations));
        _settings = settings;
        Capacity = capacity;
        _out = new OutEntry[capacity];
        _in = new InEntry[capacity];
        _peers = new Peer[capacity];
        _isakmp = new IsakmpEntry[capacity];
        _outIndex = new Dictionary<OutKey, int>(capacity);
        _inIndex = new Dictionary<InKey, int>(capacity);
        _peerIndex = new Dictionary<PeerKey, int>(capacity);
        _cookieIndex = new Dictionary<CookieKey, int>(capacity);
        _outFree = new FreeList(capacity);
        _inFree = new FreeList(capacity);
        _peerFree = new FreeList(capacity);
        _isakmpFree = new FreeList(capacity);
        _outDue = new DeadlineQueue(capacity);
        _inDue = new DeadlineQueue(capacity);
        _peerDue = new DeadlineQueue(capacity);
        _isakmpDue = new DeadlineQueue(capacity);
    }

    /// <summary>
    /// Settings in force (swapped on reload; read at check time). A change of timeouts re-queues
    /// every entry at its new deadline (slow path: one pass over the tables).
    /// </summary>
    public IpsecSettings Settings
    {
        get => _settings;
        set
        {
            bool requeue = _settings != value;
            _settings = value;
            if (requeue)
            {
                Requeue();
            }
        }
    }

    /// <summary>Entries the sweep (<see cref="Expire"/>) examined so far: what it costs, which depends on what is due, not on the table size.</summary>
    public long SweepVisits { get; private set; }

    /// <summary>Entries per table.</summary>
    public int Capacity { get; }

    /// <summary>Outbound ESP SPIs tracked.</summary>
    public int EspCount => _outIndex.Count;

    /// <summary>Inbound ESP SPIs associated.</summary>
    public int EspInboundCount => _inIndex.Count;

    /// <summary>ISAKMP entries.</summary>
    public int IsakmpCount => _isakmp.Length - _isakmpFree.Count;

    /// <summary>Inbound SPIs associated with the host waiting in the init slot (serialised association).</summary>
    public long Associated => _counters[(int)Counters.ShardCounter.EspSpisAssociated];

    private readonly Counters.CounterTable _counters;

    /// <summary>Inbound SPIs given to the most recently rekeyed host (no host was waiting).</summary>
    public long AssociatedToRekeyed => _counters[(int)Counters.ShardCounter.EspSpisToRekeyed];

    /// <summary>Responder cookies learned.</summary>
    public long CookiesLearned => _counters[(int)Counters.ShardCounter.IsakmpCookiesLearned];

    private long InitMs => Settings.InitTimeout * 1000L;

    private long EspMs => Settings.EspTimeout * 1000L;

    private long IsakmpMs => Settings.IsakmpTimeout * 1000L;

    /// <summary>
    /// An outbound ESP packet from <paramref name="inside"/> to <paramref name="remote"/> with SPI
    /// <paramref name="spi"/>. On <see cref="IpsecVerdict.Forward"/> the caller rewrites the source to
    /// <paramref name="external"/>; anything else is a drop reason.
    /// </summary>
    /// <param name="inside">Inside host, network order.</param>
    /// <param name="remote">Remote IPsec host, network order.</param>
    /// <param name="spi">SPI from the ESP header (any byte order, used as an opaque value; 0 is reserved).</param>
    /// <param name="external">External address this host appears as, network order.</param>
    /// <param name="nowMs">Current time, milliseconds.</param>
    public IpsecVerdict EspOut(uint inside, uint remote, uint spi, uint external, long nowMs)
    {
        if (spi == 0)
        {
            return IpsecVerdict.ZeroSpi;
        }
        var key = new OutKey(inside, remote, external, spi);
        int e = FindOut(key, nowMs);
        if (e >= 0)
        {
            ref OutEntry o = ref _out[e];
            switch (o.State)
            {
                case EspState.Refused:
                    return IpsecVerdict.Refused; // a hold-down: not touched, so it ends an init timeout after the refusal
                case EspState.Pending or EspState.Associated or EspState.Unanswered:
                    o.LastMs = nowMs;
                    o.PacketsOut++;
                    int known = FindPeer(new PeerKey(remote, external));
                    if (known >= 0)
                    {
                        Hold(ref _peers[known], inside, nowMs);
                    }
                    return IpsecVerdict.Forward;
            }
        }
        int p = FindOrAddPeer(new PeerKey(remote, external), nowMs);
        if (p < 0)
        {
            return IpsecVerdict.TableFull;
        }
        ref Peer peer = ref _peers[p];
        if (PendingLive(ref peer, nowMs) && peer.PendingHost != inside)
        {
            if (e < 0)
            {
                e = AddOut(key, EspState.Blocked, nowMs);
                if (e < 0)
                {
                    return IpsecVerdict.TableFull;
                }
            }
            ref OutEntry b = ref _out[e];
            b.LastMs = nowMs;
            if (++b.Retries > Settings.InitRetries)
            {
                b.State = EspState.Refused;
                return IpsecVerdict.Refused;
            }
            return IpsecVerdict.Serialised;
        }
        if (!Settings.Parallel && HolderLive(ref peer, nowMs) && peer.Holder != inside)
        {
            return IpsecVerdict.RemoteInUse;
        }
        if (e < 0)
        {
            e = AddOut(key, EspState.Pending, nowMs);
            if (e < 0)
            {
                return IpsecVerdict.TableFull;
            }
        }
        ref OutEntry n = ref _out[e];
        n.State = EspState.Pending;
        n.CreatedMs = nowMs;
        n.LastMs = nowMs;
        n.PacketsOut++;
        peer.Pending = true;
        peer.PendingHost = inside;
        peer.PendingOut = e;
        peer.PendingSinceMs = nowMs;
        Rekeyed(ref peer, inside, nowMs);
        Hold(ref peer, inside, nowMs);
        return IpsecVerdict.Forward;
    }

    /// <summary>
    /// An inbound ESP packet from <paramref name="remote"/> to <paramref name="external"/> with SPI
    /// <paramref name="spi"/>: on <see cref="IpsecVerdict.Forward"/>, <paramref name="inside"/> is
    /// the host to deliver it to. A known SPI always goes to the host it was associated with.
    /// </summary>
    /// <param name="remote">Remote IPsec host (the packet's source), network order.</param>
    /// <param name="external">Our external address (the packet's destination), network order.</param>
    /// <param name="spi">SPI from the ESP header (opaque; 0 is reserved).</param>
    /// <param name="nowMs">Current time, milliseconds.</param>
    /// <param name="inside">The inside host, network order; 0 unless forwarded.</param>
    public IpsecVerdict EspIn(uint remote, uint external, uint spi, long nowMs, out uint inside)
    {
        inside = 0;
        if (spi == 0)
        {
            return IpsecVerdict.ZeroSpi;
        }
        var key = new InKey(remote, external, spi);
        int i = FindIn(key, nowMs);
        int p = FindPeer(new PeerKey(remote, external));
        if (i >= 0)
        {
            ref InEntry known = ref _in[i];
            known.LastMs = nowMs;
            inside = known.Inside;
            if (known.Out >= 0 && _out[known.Out].InUse && _out[known.Out].Key.Inside == known.Inside)
            {
                _out[known.Out].PacketsIn++;
            }
            if (p >= 0)
            {
                Hold(ref _peers[p], inside, nowMs);
            }
            return IpsecVerdict.Forward;
        }
        if (p < 0)
        {
            return IpsecVerdict.NoAssociation;
        }
        ref Peer peer = ref _peers[p];
        uint host;
        int outEntry = -1;
        bool serialised = PendingLive(ref peer, nowMs);
        if (serialised)
        {
            host = peer.PendingHost;
            outEntry = peer.PendingOut;
        }
        else if (peer.RekeyHost != 0 && nowMs - peer.RekeyMs < EspMs)
        {
            host = peer.RekeyHost;
        }
        else
        {
            return IpsecVerdict.NoAssociation;
        }
        int n = _inFree.Pop();
        if (n < 0)
        {
            return IpsecVerdict.TableFull;
        }
        if (outEntry >= 0 && !(_out[outEntry].InUse && _out[outEntry].Key.Inside == host))
        {
            outEntry = -1;
        }
        _in[n] = new InEntry { Key = key, Inside = host, Out = outEntry, LastMs = nowMs, InUse = true };
        _inIndex.Add(key, n);
        _inDue.Ensure(n, nowMs + EspMs);
        if (serialised)
        {
            peer.Pending = false; // the init slot is free for the next host
            _counters[(int)Counters.ShardCounter.EspSpisAssociated]++;
        }
        else
        {
            _counters[(int)Counters.ShardCounter.EspSpisToRekeyed]++;
        }
        if (outEntry >= 0)
        {
            ref OutEntry o = ref _out[outEntry];
            o.State = EspState.Associated;
            o.InSpi = spi;
            o.PacketsIn++;
        }
        Hold(ref peer, host, nowMs);
        inside = host;
        return IpsecVerdict.Forward;
    }

    /// <summary>
    /// An outbound ISAKMP packet (RFC 2408 header: initiator cookie, responder cookie). On
    /// <see cref="IpsecVerdict.Forward"/>, <paramref name="externalPort"/> is the source port to use:
    /// the inside port itself (500), as the HOWTO's patch keeps it.
    /// </summary>
    /// <param name="inside">Inside host, network order.</param>
    /// <param name="insidePort">Inside source port, host order (500).</param>
    /// <param name="remote">Remote host, network order.</param>
    /// <param name="remotePort">Remote port, host order (500).</param>
    /// <param name="external">External address this host appears as, network order.</param>
    /// <param name="initiatorCookie">Initiator cookie, read big-endian.</param>
    /// <param name="responderCookie">Responder cookie, read big-endian (0 in the first message).</param>
    /// <param name="nowMs">Current time, milliseconds.</param>
    /// <param name="externalPort">Source port to write, host order.</param>
    public IpsecVerdict IsakmpOut(uint inside, ushort insidePort, uint remote, ushort remotePort, uint external,
        ulong initiatorCookie, ulong responderCookie, long nowMs, out ushort externalPort)
    {
        externalPort = 0;
        var key = new CookieKey(remote, external, initiatorCookie);
        int head = FindChain(key, nowMs);
        int mine = -1;
        bool otherUnknown = false, otherSameResponder = false;
        for (int e = head; e >= 0; e = _isakmp[e].Next)
        {
            ref IsakmpEntry x = ref _isakmp[e];
            if (x.Inside == inside && x.InsidePort == insidePort && x.RemotePort == remotePort)
            {
                mine = e;
                continue;
            }
            if (x.ResponderCookie == 0 && nowMs - x.CreatedMs < InitMs)
            {
                otherUnknown = true;
            }
            if (responderCookie != 0 && x.ResponderCookie == responderCookie)
            {
                otherSameResponder = true;
            }
        }
        if (otherSameResponder)
        {
            return IpsecVerdict.IsakmpCookieCollision; // both cookies equal another host's: replies could not be told apart
        }
        if (mine < 0)
        {
            if (responderCookie == 0 && otherUnknown)
            {
                return IpsecVerdict.IsakmpCookieCollision;
            }
            mine = _isakmpFree.Pop();
            if (mine < 0)
            {
                return IpsecVerdict.TableFull;
            }
            _isakmp[mine] = new IsakmpEntry
            {
                Key = key, Inside = inside, InsidePort = insidePort, RemotePort = remotePort, ExternalPort = insidePort,
                CreatedMs = nowMs, Next = head, InUse = true,
            };
            _cookieIndex[key] = mine;
            _isakmpDue.Ensure(mine, nowMs + IsakmpMs);
        }
        ref IsakmpEntry m = ref _isakmp[mine];
        if (m.ResponderCookie == 0 && responderCookie != 0)
        {
            m.ResponderCookie = responderCookie;
            _counters[(int)Counters.ShardCounter.IsakmpCookiesLearned]++;
        }
        m.LastMs = nowMs;
        m.LastOutMs = nowMs;
        m.PacketsOut++;
        externalPort = m.ExternalPort;
        int p = FindOrAddPeer(new PeerKey(remote, external), nowMs);
        if (p >= 0)
        {
            Rekeyed(ref _peers[p], inside, nowMs);
        }
        return IpsecVerdict.Forward;
    }

    /// <summary>
    /// An inbound ISAKMP packet to <paramref name="external"/>:<paramref name="externalPort"/>. Routed
    /// by the initiator cookie; among several inside hosts with that cookie, by the responder cookie
    /// (learned here from the first reply when the host's is unknown).
    /// </summary>
    /// <param name="remote">Remote host (source), network order.</param>
    /// <param name="remotePort">Remote port, host order.</param>
    /// <param name="external">External address (destination), network order.</param>
    /// <param name="externalPort">External port (destination), host order.</param>
    /// <param name="initiatorCookie">Initiator cookie, read big-endian.</param>
    /// <param name="responderCookie">Responder cookie, read big-endian.</param>
    /// <param name="nowMs">Current time, milliseconds.</param>
    /// <param name="inside">Inside host to deliver to, network order.</param>
    /// <param name="insidePort">Inside port to deliver to, host order.</param>
    public IpsecVerdict IsakmpIn(uint remote, ushort remotePort, uint external, ushort externalPort,
        ulong initiatorCookie, ulong responderCookie, long nowMs, out uint inside, out ushort insidePort)
    {
        inside = 0;
        insidePort = 0;
        int head = FindChain(new CookieKey(remote, external, initiatorCookie), nowMs);
        int exact = -1, unknown = -1, any = -1, candidates = 0;
        for (int e = head; e >= 0; e = _isakmp[e].Next)
        {
            ref IsakmpEntry x = ref _isakmp[e];
            if (x.RemotePort != remotePort || x.ExternalPort != externalPort)
            {
                continue;
            }
            candidates++;
            any = e;
            if (responderCookie != 0 && x.ResponderCookie == responderCookie)
            {
                exact = e;
            }
            else if (x.ResponderCookie == 0 && (unknown < 0 || x.LastOutMs > _isakmp[unknown].LastOutMs))
            {
                unknown = e; // the reply answers the most recent request
            }
        }
        int pick = exact >= 0 ? exact
            : unknown >= 0 ? unknown
            : responderCookie == 0 && candidates == 1 ? any // e.g. a notification before the responder cookie was set
            : -1;
        if (pick < 0)
        {
            return IpsecVerdict.IsakmpNoEntry;
        }
        ref IsakmpEntry m = ref _isakmp[pick];
        if (m.ResponderCookie == 0 && responderCookie != 0)
        {
            m.ResponderCookie = responderCookie;
            _counters[(int)Counters.ShardCounter.IsakmpCookiesLearned]++;
        }
        m.LastMs = nowMs;
        m.PacketsIn++;
        inside = m.Inside;
        insidePort = m.InsidePort;
        int p = FindPeer(new PeerKey(remote, external));
        if (p >= 0)
        {
            Rekeyed(ref _peers[p], inside, nowMs);
        }
        return IpsecVerdict.Forward;
    }

    /// <summary>
    /// Deletes up to <paramref name="budget"/> idle entries (a bounded slice for the sweeper),
    /// visiting only entries whose deadline has come: those it deletes, and those refreshed since
    /// they were queued, which go back at their new deadline (at most <paramref name="budget"/>
    /// of those per call). Lookups already treat idle entries as gone.
    /// </summary>
    /// <param name="nowMs">Current time, milliseconds.</param>
    /// <param name="budget">Most entries to delete.</param>
    /// <returns>Entries deleted.</returns>
    public int Expire(long nowMs, int budget)
    {
        int deleted = 0, requeued = 0;
        while (deleted < budget && requeued < budget && _outDue.TryPopDue(nowMs, out int i))
        {
            SweepVisits++;
            if (!_out[i].InUse)
            {
                continue; // freed by a lookup since: nothing to do
            }
            if (OutStale(ref _out[i], nowMs))
            {
                RemoveOut(i);
                deleted++;
            }
            else
            {
                _outDue.Push(i, After(OutDeadline(ref _out[i]), nowMs));
                requeued++;
            }
        }
        while (deleted < budget && requeued < budget && _inDue.TryPopDue(nowMs, out int i))
        {
            SweepVisits++;
            if (!_in[i].InUse)
            {
                continue;
            }
            if (nowMs - _in[i].LastMs >= EspMs)
            {
                RemoveIn(i);
                deleted++;
            }
            else
            {
                _inDue.Push(i, After(_in[i].LastMs + EspMs, nowMs));
                requeued++;
            }
        }
        while (deleted < budget && requeued < budget && _isakmpDue.TryPopDue(nowMs, out int i))
        {
            SweepVisits++;
            if (!_isakmp[i].InUse)
            {
                continue;
            }
            if (nowMs - _isakmp[i].LastMs >= IsakmpMs)
            {
                RemoveIsakmp(i);
                deleted++;
            }
            else
            {
                _isakmpDue.Push(i, After(_isakmp[i].LastMs + IsakmpMs, nowMs));
                requeued++;
            }
        }
        while (deleted < budget && requeued < budget && _peerDue.TryPopDue(nowMs, out int i))
        {
            SweepVisits++;
            if (!_peers[i].InUse)
            {
                continue;
            }
            if (PeerStale(ref _peers[i], nowMs))
            {
                RemovePeer(i);
                deleted++;
            }
            else
            {
                _peerDue.Push(i, After(PeerDeadline(ref _peers[i], nowMs), nowMs));
                requeued++;
            }
        }
        return deleted;
    }

    /// <summary>A live entry's next check: its deadline, and never now (it was just found live).</summary>
    private static long After(long deadlineMs, long nowMs) => Math.Max(deadlineMs, nowMs + 1);

    /// <summary>
    /// When an outbound SPI idles out, given its state now. Its deadline only moves later (a packet,
    /// or Blocked turning Pending with the usual init timeout shorter than the ESP timeout); were
    /// it earlier, lookups would still refuse the entry and the sweep delete it at its old deadline.
    /// </summary>
    private long OutDeadline(ref OutEntry o) => o.LastMs + (o.State is EspState.Blocked or EspState.Refused ? InitMs : EspMs);

    /// <summary>
    /// The earliest time a remote host's record can go stale (<see cref="PeerStale"/>): once its
    /// holder, its rekey and (while live) its pending init have all timed out.
    /// </summary>
    private long PeerDeadline(ref Peer p, long nowMs)
    {
        long d = p.RekeyMs + Math.Max(EspMs, IsakmpMs);
        if (p.Holder != 0)
        {
            d = Math.Max(d, p.HolderSeenMs + EspMs);
        }
        if (PendingLive(ref p, nowMs))
        {
            d = Math.Max(d, p.PendingSinceMs + InitMs);
        }
        return d;
    }

    /// <summary>Queues every live entry again at its deadline under the settings now in force (a reload changed timeouts).</summary>
    private void Requeue()
    {
        _outDue.Clear();
        _inDue.Clear();
        _peerDue.Clear();
        _isakmpDue.Clear();
        for (int i = 0; i < Capacity; i++)
        {
            if (_out[i].InUse)
            {
                _outDue.Push(i, OutDeadline(ref _out[i]));
            }
            if (_in[i].InUse)
            {
                _inDue.Push(i, _in[i].LastMs + EspMs);
            }
            if (_isakmp[i].InUse)
            {
                _isakmpDue.Push(i, _isakmp[i].LastMs + IsakmpMs);
            }
            if (_peers[i].InUse)
            {
                // Deadlines are lower bounds: the entry is checked then and re-queued if still live.
                _peerDue.Push(i, _peers[i].RekeyMs + Math.Max(EspMs, IsakmpMs));
            }
        }
    }

    /// <summary>Forgets everything (natctl flush).</summary>
    /// <returns>Entries deleted (outbound SPIs and ISAKMP entries).</returns>
    public int Clear()
    {
        int n = EspCount + IsakmpCount;
        for (int i = 0; i < Capacity; i++)
        {
            if (_out[i].InUse)
            {
                RemoveOut(i);
            }
            if (_in[i].InUse)
            {
                RemoveIn(i);
            }
            if (_isakmp[i].InUse)
            {
                RemoveIsakmp(i);
            }
            if (_peers[i].InUse)
            {
                RemovePeer(i);
            }
        }
        _outDue.Clear();
        _inDue.Clear();
        _peerDue.Clear();
        _isakmpDue.Clear();
        return n;
    }

    /// <summary>Appends the live outbound SPIs (control path: allocates).</summary>
    public void CollectEsp(List<EspEntryInfo> into, long nowMs)
    {
        for (int i = 0; i < Capacity; i++)
        {
            ref OutEntry o = ref _out[i];
            if (!o.InUse || OutStale(ref o, nowMs))
            {
                continue;
            }
            EspState state = o.State;
            if (state == EspState.Pending && nowMs - o.CreatedMs >= InitMs)
            {
                state = EspState.Unanswered;
            }
            long life = state is EspState.Blocked or EspState.Refused ? InitMs : EspMs;
            into.Add(new EspEntryInfo(o.Key.Inside, o.Key.Remote, o.Key.External, o.Key.Spi, o.InSpi, state,
                Math.Max(0, (life - (nowMs - o.LastMs)) / 1000.0), o.PacketsOut, o.PacketsIn));
        }
    }

    /// <summary>Appends the live ISAKMP entries (control path: allocates).</summary>
    public void CollectIsakmp(List<IsakmpEntryInfo> into, long nowMs)
    {
        for (int i = 0; i < Capacity; i++)
        {
            ref IsakmpEntry x = ref _isakmp[i];
            if (!x.InUse || nowMs - x.LastMs >= IsakmpMs)
            {
                continue;
            }
            into.Add(new IsakmpEntryInfo(x.Inside, x.InsidePort, x.Key.Remote, x.RemotePort, x.Key.External, x.ExternalPort,
                x.Key.Cookie, x.ResponderCookie, (IsakmpMs - (nowMs - x.LastMs)) / 1000.0, x.PacketsOut, x.PacketsIn));
        }
    }

    // --- internals ---

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool PendingLive(ref Peer p, long nowMs)
        => p.Pending && nowMs - p.PendingSinceMs < InitMs && p.PendingOut >= 0 && _out[p.PendingOut].InUse
           && _out[p.PendingOut].Key.Inside == p.PendingHost;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool HolderLive(ref Peer p, long nowMs) => p.Holder != 0 && nowMs - p.HolderSeenMs < EspMs;

    private static void Hold(ref Peer p, uint inside, long nowMs)
    {
        p.Holder = inside;
        p.HolderSeenMs = nowMs;
    }

    private static void Rekeyed(ref Peer p, uint inside, long nowMs)
    {
        p.RekeyHost = inside;
        p.RekeyMs = nowMs;
    }

    private bool OutStale(ref OutEntry o, long nowMs)
        => nowMs - o.LastMs >= (o.State is EspState.Blocked or EspState.Refused ? InitMs : EspMs);

    private bool PeerStale(ref Peer p, long nowMs)
        => !PendingLive(ref p, nowMs) && !HolderLive(ref p, nowMs)
           && nowMs - p.RekeyMs >= Math.Max(EspMs, IsakmpMs);

    private int FindOut(in OutKey key, long nowMs)
    {
        if (!_outIndex.TryGetValue(key, out int e))
        {
            return -1;
        }
        if (OutStale(ref _out[e], nowMs))
        {
            RemoveOut(e);
            return -1;
        }
        if (_out[e].State == EspState.Pending && nowMs - _out[e].CreatedMs >= InitMs)
        {
            _out[e].State = EspState.Unanswered;
        }
        return e;
    }

    private int FindIn(in InKey key, long nowMs)
    {
        if (!_inIndex.TryGetValue(key, out int e))
        {
            return -1;
        }
        if (nowMs - _in[e].LastMs >= EspMs)
        {
            RemoveIn(e);
            return -1;
        }
        return e;
    }

    private int FindPeer(in PeerKey key) => _peerIndex.TryGetValue(key, out int p) ? p : -1;

    private int FindOrAddPeer(in PeerKey key, long nowMs)
    {
        if (_peerIndex.TryGetValue(key, out int p))
        {
            return p;
        }
        p = _peerFree.Pop();
        if (p < 0)
        {
            return -1;
        }
        _peers[p] = new Peer { Key = key, PendingOut = -1, RekeyMs = nowMs, InUse = true };
        _peerIndex.Add(key, p);
        _peerDue.Ensure(p, nowMs + Math.Max(EspMs, IsakmpMs));
        return p;
    }

    private int AddOut(in OutKey key, EspState state, long nowMs)
    {
        int e = _outFree.Pop();
        if (e < 0)
        {
            return -1;
        }
        _out[e] = new OutEntry { Key = key, State = state, CreatedMs = nowMs, LastMs = nowMs, InUse = true };
        _outIndex.Add(key, e);
        _outDue.Ensure(e, OutDeadline(ref _out[e]));
        return e;
    }

    /// <summary>Head of the live chain for a cookie key, dropping idle entries on the way.</summary>
    private int FindChain(in CookieKey key, long nowMs)
    {
        if (!_cookieIndex.TryGetValue(key, out int head))
        {
            return -1;
        }
        for (int e = head; e >= 0;)
        {
            int next = _isakmp[e].Next;
            if (nowMs - _isakmp[e].LastMs >= IsakmpMs)
            {
                RemoveIsakmp(e);
            }
            e = next;
        }
        return _cookieIndex.TryGetValue(key, out head) ? head : -1;
    }

    private void RemoveOut(int e)
    {
        _outIndex.Remove(_out[e].Key);
        _out[e].InUse = false;
        _outFree.Push(e);
    }

    private void RemoveIn(int e)
    {
        _inIndex.Remove(_in[e].Key);
        _in[e].InUse = false;
        _inFree.Push(e);
    }

    private void RemovePeer(int p)
    {
        _peerIndex.Remove(_peers[p].Key);
        _peers[p].InUse = false;
        _peerFree.Push(p);
    }

    private void RemoveIsakmp(int e)
    {
        CookieKey key = _isakmp[e].Key;
        int head = _cookieIndex[key];
        if (head == e)
        {
            int next = _isakmp[e].Next;
            if (next >= 0)
            {
                _cookieIndex[key] = next;
            }
            else
            {
                _cookieIndex.Remove(key);
            }
        }
        else
        {
            int prev = head;
            while (_isakmp[prev].Next != e)
            {
                prev = _isakmp[prev].Next;
            }
            _isakmp[prev].Next = _isakmp[e].Next;
        }
        _isakmp[e].InUse = false;
        _isakmp[e].Next = -1;
        _isakmpFree.Push(e);
    }

    /// <summary>A stack of free slot indices, preallocated.</summary>
    private sealed class FreeList
    {
        private readonly int[] _stack;
        private int _top;

        public FreeList(int capacity)
        {
            _stack = new int[capacity];
            for (int i = 0; i < capacity; i++)
            {
                _stack[i] = capacity - 1 - i;
            }
            _top = capacity;
        }

        public int Count => _top;

        public int Pop() => _top == 0 ? -1 : _stack[--_top];

        public void Push(int i) => _stack[_top++] = i;
    }
}

using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Natd.Dataplane.Counters;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

/// <summary>
/// The largest IPv4 datagram natd sends out of each side (the egress MTU, bytes) and the splitting
/// of a larger one into fragments (RFC 791 section 3.2; RFC 1812 section 5.2.6). A side's MTU is
/// <see cref="InterfaceSettings.Mtu"/> when configured, else its link's
/// (<see cref="EngineOptions.InsideLinkMtu"/>), else unlimited (replay, tests: no frame larger than
/// a slot exists). A datagram that forbids fragmenting (DF) is not this class's: the engine answers
/// it with fragmentation-needed before translating it (RFC 1191), when it can still quote what the
/// sender sent. Single writer (the engine's thread); the per-packet cost is one compare in
/// <see cref="Neighbours.SendTo"/> (and one in the engine's hit paths, for DF).
/// </summary>
internal sealed class EgressMtu
{
    /// <summary>The smallest MTU an IPv4 link may have (RFC 791: every module forwards 68 octets without fragmenting).</summary>
    public const int MinMtu = 68;

    /// <summary>An MTU no datagram natd can receive exceeds: a slot less its Ethernet header.</summary>
    public const int Unlimited = FrameBatch.SlotSize - EthernetHeader.Length;

    private readonly NatCounters _counters;
    private int _insideLink;
    private int _outsideLink;
    private NatSettings _settings;
    private int _insideFrame;
    private int _outsideFrame;

    /// <summary>Creates the egress MTUs of <paramref name="settings"/> over the links' MTUs (0: not known).</summary>
    /// <param name="settings">Configuration (<see cref="InterfaceSettings.Mtu"/>).</param>
    /// <param name="insideLink">The inside link's MTU in bytes, 0 when not known.</param>
    /// <param name="outsideLink">The outside link's MTU in bytes, 0 when not known.</param>
    /// <param name="counters">The shard's counters (datagrams fragmented, fragments made, transmit drops).</param>
    public EgressMtu(NatSettings settings, int insideLink, int outsideLink, NatCounters counters)
    {
        _counters = counters;
        _insideLink = insideLink;
        _outsideLink = outsideLink;
        Update(settings);
    }

    /// <summary>Inside egress MTU, bytes.</summary>
    public int InsideMtu => _insideFrame - EthernetHeader.Length;

    /// <summary>Outside egress MTU, bytes.</summary>
    public int OutsideMtu => _outsideFrame - EthernetHeader.Length;

    /// <summary>True when at least one side's MTU is known (configured or its link's).</summary>
    public bool AnyKnown => InsideMtu != Unlimited || OutsideMtu != Unlimited;

    /// <summary>Egress MTU of <paramref name="side"/>, bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Mtu(Side side) => (side == Side.Inside ? _insideFrame : _outsideFrame) - EthernetHeader.Length;

    /// <summary>Whether a frame of <paramref name="frameLength"/> bytes (Ethernet header included) may leave on <paramref name="side"/> whole.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Fits(Side side, int frameLength) => frameLength <= (side == Side.Inside ? _insideFrame : _outsideFrame);

    /// <summary>The links' MTUs changed while natd runs (0: not known); a configured MTU still wins.</summary>
    public void SetLinks(int insideLink, int outsideLink)
    {
        _insideLink = insideLink;
        _outsideLink = outsideLink;
        Update(_settings);
    }

    /// <summary>Applies a reload's configured MTUs over the links' last known ones.</summary>
    [System.Diagnostics.CodeAnalysis.MemberNotNull(nameof(_settings))]
    public void Update(NatSettings next)
    {
        _settings = next;
        _insideFrame = Effective(next.Inside.Mtu, _insideLink) + EthernetHeader.Length;
        _outsideFrame = Effective(next.Outside.Mtu, _outsideLink) + EthernetHeader.Length;
    }

    private static int Effective(int configured, int link)
    {
        int mtu = configured > 0 ? configured : link > 0 ? link : Unlimited;
        return Math.Clamp(mtu, MinMtu, Unlimited);
    }

    /// <summary>
    /// Sends <paramref name="frame"/> (Ethernet addresses set, an IPv4 datagram with DF clear, larger
    /// than <paramref name="side"/>'s MTU) through <paramref name="sink"/> as fragments of at most that
    /// MTU, in order (RFC 791 section 3.2): each carries the datagram's header, the first all its
    /// options, the others only those with the copied flag; every fragment but the last has at most
    /// the MTU rounded down to 8 bytes of data. A fragment of a datagram is split the same way: the
    /// pieces keep its offset, and the last its more-fragments flag. Slow path; no allocation.
    /// </summary>
    /// <returns>False when nothing could be sent (no sink, a header too long for the MTU); a fragment
    /// the sink refuses is counted as <see cref="DropReason.TxFull"/>.</returns>
    public bool SendFragments(IFrameSink? sink, Side side, ReadOnlySpan<byte> frame)
    {
        int mtu = Mtu(side);
        ReadOnlySpan<byte> ip = frame[EthernetHeader.Length..];
        int ihl = (ip[0] & 0x0F) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (sink is null || ihl < Ipv4Header.MinLength || total > ip.Length || total <= ihl)
        {
            return false;
        }
        Span<byte> later = stackalloc byte[Ipv4Header.MinLength + 40];
        int laterIhl = CopiedOptions(ip[..ihl], later);
        int firstData = (mtu - ihl) & ~7;
        int laterData = (mtu - laterIhl) & ~7;
        if (firstData < 8 || laterData < 8)
        {
            return false;
        }
        ushort flagsOffset = BinaryPrimitives.ReadUInt16BigEndian(ip[6..]);
        int baseOffset = (flagsOffset & 0x1FFF) * 8;
        bool lastKeepsMore = (flagsOffset & 0x2000) != 0;
        ReadOnlySpan<byte> data = ip[ihl..total];
        Span<byte> buffer = stackalloc byte[FrameBatch.SlotSize];
        frame[..EthernetHeader.Length].CopyTo(buffer);
        int at = 0;
        int made = 0;
        while (at < data.Length)
        {
            bool first = at == 0;
            int hl = first ? ihl : laterIhl;
            int chunk = Math.Min(data.Length - at, first ? firstData : laterData);
            bool last = at + chunk == data.Length;
            Span<byte> header = buffer.Slice(EthernetHeader.Length, hl);
            if (first)
            {
                ip[..ihl].CopyTo(header);
            }
            else
            {
                later[..laterIhl].CopyTo(header);
            }
            data.Slice(at, chunk).CopyTo(buffer[(EthernetHeader.Length + hl)..]);
            var h = new Ipv4Header(header);
            h.TotalLength = hl + chunk;
            int offset = (baseOffset + at) / 8;
            bool more = !last || lastKeepsMore;
            BinaryPrimitives.WriteUInt16BigEndian(header[6..], (ushort)((more ? 0x2000 : 0) | offset));
            h.UpdateChecksum();
            if (!sink.Send(side, buffer[..(EthernetHeader.Length + hl + chunk)]))
            {
                _counters.Drops[(int)DropReason.TxFull]++;
            }
            made++;
            at += chunk;
        }
        _counters[ShardCounter.DatagramsFragmented]++;
        _counters[ShardCounter.FragmentsMade] += made;
        return true;
    }

    /// <summary>
    /// Writes into <paramref name="later"/> the header of every fragment but the first: the fixed 20
    /// bytes of <paramref name="header"/> and the options whose copied flag is set (RFC 791 section
    /// 3.1), padded with end-of-options to a 4-byte boundary. Returns its length in bytes. A
    /// malformed option list ends the copy where it breaks.
    /// </summary>
    internal static int CopiedOptions(ReadOnlySpan<byte> header, Span<byte> later)
    {
        header[..Ipv4Header.MinLength].CopyTo(later);
        int w = Ipv4Header.MinLength;
        int i = Ipv4Header.MinLength;
        while (i < header.Length)
        {
            byte type = header[i];
            if (type == 0)
            {
                break; // end of option list
            }
            if (type == 1)
            {
                i++; // no-operation: not copied
                continue;
            }
            if (i + 1 >= header.Length || header[i + 1] < 2 || i + header[i + 1] > header.Length)
            {
                break;
            }
            int len = header[i + 1];
            if ((type & 0x80) != 0)
            {
                header.Slice(i, len).CopyTo(later[w..]);
                w += len;
            }
            i += len;
        }
        int padded = (w + 3) & ~3;
        later[w..padded].Clear();
        later[0] = (byte)(0x40 | (padded / 4));
        return padded;
    }
}

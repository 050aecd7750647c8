using System.Buffers.Binary;

namespace Natd.Fuzzing.Targets;

/// <summary>Builds Ethernet + IPv4 frames for the targets and the seed corpora, checksummed with <see cref="Rfc1071"/>. Addresses network order, ports host order.</summary>
public static class FrameBuilder
{
    /// <summary>Source MAC of frames from the inside host; destination of frames to it.</summary>
    public static readonly byte[] InsideHostMac = [0x02, 0, 0, 0, 0, 0x0a];

    /// <summary>Source MAC of frames from outside.</summary>
    public static readonly byte[] OutsideHostMac = [0x02, 0, 0, 0, 0, 0x0b];

    /// <summary>A TCP segment (20-byte header, no options).</summary>
    public static byte[] Tcp(uint src, ushort sport, uint dst, ushort dport, byte flags, uint seq, uint ack, ReadOnlySpan<byte> payload)
    {
        var l4 = new byte[20 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(8), ack);
        l4[12] = 5 << 4;
        l4[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(14), 65535);
        payload.CopyTo(l4.AsSpan(20));
        return Ip(src, dst, 6, l4);
    }

    /// <summary>A UDP datagram.</summary>
    public static byte[] Udp(uint src, ushort sport, uint dst, ushort dport, ReadOnlySpan<byte> payload)
    {
        var l4 = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(l4, sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(4), (ushort)l4.Length);
        payload.CopyTo(l4.AsSpan(8));
        return Ip(src, dst, 17, l4);
    }

    /// <summary>An ICMP message (type, code, 4 bytes of rest-of-header from <paramref name="idSeq"/>).</summary>
    public static byte[] Icmp(uint src, uint dst, byte type, byte code, uint idSeq, ReadOnlySpan<byte> payload)
    {
        var l4 = new byte[8 + payload.Length];
        l4[0] = type;
        l4[1] = code;
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), idSeq);
        payload.CopyTo(l4.AsSpan(8));
        return Ip(src, dst, 1, l4);
    }

    /// <summary>An IPv4 packet of any protocol in an Ethernet frame, checksums set.</summary>
    public static byte[] Ip(uint src, uint dst, byte protocol, ReadOnlySpan<byte> l4, byte ttl = 64)
    {
        var f = new byte[14 + 20 + l4.Length];
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x0800);
        OutsideHostMac.CopyTo(f, 6);
        f[14] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), (ushort)(20 + l4.Length));
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(18), 0x1234);
        f[22] = ttl;
        f[23] = protocol;
        BitConverter.TryWriteBytes(f.AsSpan(26), src);
        BitConverter.TryWriteBytes(f.AsSpan(30), dst);
        l4.CopyTo(f.AsSpan(34));
        Rfc1071.Finish(f);
        return f;
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Natd.Dataplane.Sessions;

/// <summary>
/// The 5-tuple of a packet as seen on the wire, 16 bytes, blittable, compared as two
/// <see cref="ulong"/>s. Addresses are network-order <see cref="uint"/>s and ports raw 16-bit loads
/// (network order in memory), exactly as read from the frame, so building a key costs no swaps.
/// For ICMP queries the identifier stands in for a port: an echo request's key has the identifier
/// as <see cref="SourcePort"/> and 0 as <see cref="DestinationPort"/>; its reply's key the reverse.
/// </summary>
[StructLayout(LayoutKind.Sequential, Pack = 1, Size = 16)]
public struct FlowKey : IEquatable<FlowKey>
{
    /// <summary>Source address, network order.</summary>
    public uint Source;
    /// <summary>Destination address, network order.</summary>
    public uint Destination;
    /// <summary>Source port (raw, network order in memory).</summary>
    public ushort SourcePort;
    /// <summary>Destination port (raw, network order in memory).</summary>
    public ushort DestinationPort;
    /// <summary>IP protocol number.</summary>
    public byte Protocol;
    private byte _pad0;
    private ushort _pad1;

    /// <summary>Creates a key; ports are raw (network order in memory).</summary>
    public FlowKey(uint source, uint destination, ushort sourcePort, ushort destinationPort, byte protocol)
    {
        if (BitConverter.IsLittleEndian)
        {
            // Two 8-byte stores, the width Hash and Equals load: a load that spans several narrower
            // stores cannot be forwarded from the store buffer and stalls until they retire
            // (~15 cycles each, twice per key built and hashed at once, as the parser does per frame).
            Unsafe.SkipInit(out this);
            ref ulong words = ref Unsafe.As<FlowKey, ulong>(ref this);
            words = source | ((ulong)destination << 32);
            Unsafe.Add(ref words, 1) = sourcePort | ((ulong)destinationPort << 16) | ((ulong)protocol << 32);
        }
        else
        {
            Source = source;
            Destination = destination;
            SourcePort = sourcePort;
            DestinationPort = destinationPort;
            Protocol = protocol;
            _pad0 = 0;
            _pad1 = 0;
        }
    }

    /// <summary>The key of a packet travelling the other way.</summary>
    public readonly FlowKey Reverse() => new(Destination, Source, DestinationPort, SourcePort, Protocol);

    /// <summary>
    /// A 32-bit hash keyed by <paramref name="seed"/> (random per process so remote parties cannot
    /// aim collisions at one bucket chain).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly uint Hash(ulong seed)
    {
        ulong a = Unsafe.As<FlowKey, ulong>(ref Unsafe.AsRef(in this));
        ulong b = Unsafe.Add(ref Unsafe.As<FlowKey, ulong>(ref Unsafe.AsRef(in this)), 1);
        ulong h = (a ^ seed) * 0x9E3779B97F4A7C15UL;
        h ^= (b + seed) * 0xC2B2AE3D27D4EB4FUL;
        h ^= h >> 29;
        h *= 0xBF58476D1CE4E5B9UL;
        h ^= h >> 32;
        return (uint)h;
    }

    /// <inheritdoc />
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly bool Equals(FlowKey other)
    {
        ref ulong x = ref Unsafe.As<FlowKey, ulong>(ref Unsafe.AsRef(in this));
        ref ulong y = ref Unsafe.As<FlowKey, ulong>(ref other);
        return x == y && Unsafe.Add(ref x, 1) == Unsafe.Add(ref y, 1);
    }

    /// <inheritdoc />
    public override readonly bool Equals(object? obj) => obj is FlowKey k && Equals(k);

    /// <inheritdoc />
    public override readonly int GetHashCode() => (int)Hash(0);

    /// <summary>Equality.</summary>
    public static bool operator ==(FlowKey left, FlowKey right) => left.Equals(right);

    /// <summary>Inequality.</summary>
    public static bool operator !=(FlowKey left, FlowKey right) => !left.Equals(right);

    /// <inheritdoc />
    public override readonly string ToString()
        => $"{Protocol} {Packets.Ipv4.Format(Source)}:{PortToHost(SourcePort)} -> {Packets.Ipv4.Format(Destination)}:{PortToHost(DestinationPort)}";

    /// <summary>Host-order value of a raw port.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort PortToHost(ushort raw) => BitConverter.IsLittleEndian ? (ushort)((raw >> 8) | (raw << 8)) : raw;

    /// <summary>Raw (network order in memory) value of a host-order port.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort PortToRaw(ushort host) => PortToHost(host);
}

using System.Buffers.Binary;
using System.Globalization;
using System.Net;

namespace Natd.Dataplane.Packets;

/// <summary>
/// IPv4 address helpers. The packet path keeps addresses as a <see cref="uint"/> holding the four
/// octets exactly as they sit on the wire (network byte order in memory), so reading one from a
/// frame is a plain 4-byte load and comparing two needs no byte swap.
/// </summary>
public static class Ipv4
{
    /// <summary>Converts a dotted-quad string to a network-order <see cref="uint"/>.</summary>
    /// <exception cref="FormatException">Not a dotted-quad IPv4 address.</exception>
    public static uint Parse(string text)
    {
        if (!TryParse(text, out var a))
        {
            throw new FormatException($"'{text}' is not an IPv4 address");
        }
        return a;
    }

    /// <summary>Converts a dotted-quad string to a network-order <see cref="uint"/>.</summary>
    public static bool TryParse(string? text, out uint address)
    {
        address = 0;
        if (text is null || text.Count(c => c == '.') != 3
            || !IPAddress.TryParse(text, out var ip) || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork)
        {
            return false;
        }
        Span<byte> b = stackalloc byte[4];
        ip.TryWriteBytes(b, out _);
        address = BitConverter.ToUInt32(b);
        return true;
    }

    /// <summary>Host-order value (a.b.c.d = a&lt;&lt;24 | ...) of a network-order address.</summary>
    public static uint ToHostOrder(uint networkOrder)
        => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(networkOrder) : networkOrder;

    /// <summary>Network-order value of a host-order address.</summary>
    public static uint FromHostOrder(uint hostOrder) => ToHostOrder(hostOrder);

    /// <summary>Dotted-quad text of a network-order address.</summary>
    public static string Format(uint networkOrder)
    {
        uint h = ToHostOrder(networkOrder);
        return string.Create(CultureInfo.InvariantCulture, $"{h >> 24}.{(h >> 16) & 0xFF}.{(h >> 8) & 0xFF}.{h & 0xFF}");
    }
}

/// <summary>An IPv4 prefix (address/length), address in network byte order as in <see cref="Ipv4"/>.</summary>
public readonly record struct Ipv4Prefix(uint Address, int Length)
{
    /// <summary>Mask in network byte order.</summary>
    public uint Mask => Ipv4.FromHostOrder(Length == 0 ? 0u : uint.MaxValue << (32 - Length));

    /// <summary>True when <paramref name="address"/> (network order) lies in this prefix.</summary>
    public bool Contains(uint address) => (address & Mask) == (Address & Mask);

    /// <summary>Parses "a.b.c.d/len" (a bare address means /32).</summary>
    /// <exception cref="FormatException">Malformed address or length outside 0..32.</exception>
    public static Ipv4Prefix Parse(string text)
    {
        if (!TryParse(text, out var p))
        {
            throw new FormatException($"'{text}' is not an IPv4 prefix (expected a.b.c.d/len)");
        }
        return p;
    }

    /// <summary>Parses "a.b.c.d/len" (a bare address means /32).</summary>
    public static bool TryParse(string? text, out Ipv4Prefix prefix)
    {
        prefix = default;
        if (text is null)
        {
            return false;
        }
        int slash = text.IndexOf('/');
        string addr = slash < 0 ? text : text[..slash];
        int len = 32;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out len) || len > 32))
        {
            return false;
        }
        if (!Ipv4.TryParse(addr, out var a))
        {
            return false;
        }
        prefix = new Ipv4Prefix(a, len);
        return true;
    }

    /// <inheritdoc />
    public override string ToString() => $"{Ipv4.Format(Address)}/{Length}";
}

using System.Runtime.CompilerServices;
using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

public sealed partial class NatEngine
{
    /// <summary>A prefix as a precomputed (network, mask) pair, both network order: one AND and one compare per test.</summary>
    private readonly record struct MaskedNet(uint Net, uint Mask)
    {
        public static MaskedNet Of(Ipv4Prefix p) => new(p.Address & p.Mask, p.Mask);
    }

    /// <summary><see cref="PrivateSources.Ranges"/> as masked pairs.</summary>
    private static readonly MaskedNet[] PrivateRanges = MaskAll(PrivateSources.Ranges);

    private static MaskedNet[] MaskAll(IReadOnlyList<Ipv4Prefix> prefixes)
    {
        var nets = new MaskedNet[prefixes.Count];
        for (int i = 0; i < nets.Length; i++)
        {
            nets[i] = MaskedNet.Of(prefixes[i]);
        }
        return nets;
    }

    private MaskedNet[] _ownSources = [];
    private MaskedNet _outsideLink;
    private MaskedNet[] _insideSources = [];
    private MaskedNet[] _privateSources = [];
    private MaskedNet[] _allowedSources = [];

    /// <summary>Precomputes the outside source filter from <paramref name="s"/> (construction and reload).</summary>
    private void BuildSourceFilter(NatSettings s)
    {
        var own = new List<MaskedNet>
        {
            MaskedNet.Of(new Ipv4Prefix(s.Inside.Address.Address, 32)),
            MaskedNet.Of(new Ipv4Prefix(s.Outside.Address.Address, 32)),
        };
        foreach (Ipv4Prefix p in PoolPrefixes(s.Pool))
        {
            own.Add(MaskedNet.Of(p));
        }
        _ownSources = [.. own];
        _outsideLink = MaskedNet.Of(s.Outside.Address);
        var inside = new List<MaskedNet> { MaskedNet.Of(s.Inside.Address) };
        foreach (Ipv4Prefix p in s.Inside.Networks)
        {
            inside.Add(MaskedNet.Of(p));
        }
        _insideSources = [.. inside];
        _privateSources = s.MartianFilter == MartianFilter.Strict ? PrivateRanges : [];
        _allowedSources = MaskAll(s.AllowedOutsideSources);
    }

    /// <summary>
    /// Ingress filtering of a source arriving on the outside (RFC 1812 section 5.3.7, RFC 2827 / BCP 38),
    /// after the always-martian test every frame gets: natd's own addresses, the inside on-link
    /// prefix and the inside networks are spoofed (<see cref="DropReason.Martian"/>); with the strict
    /// filter, private and special-use sources are <see cref="DropReason.PrivateSource"/> unless on the
    /// outside link or in the allowed sources. A few masked compares, no allocation.
    /// </summary>
    /// <returns><c>Ok</c> when the source may come from outside, else the drop reason.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private DropReason CheckOutsideSource(uint src)
    {
        if (AnyContains(_ownSources, src))
        {
            return DropReason.Martian;
        }
        if ((src & _outsideLink.Mask) == _outsideLink.Net)
        {
            return Ok; // the upstream link itself (a home router behind 192.168.1.0/24) is always a valid source
        }
        if (AnyContains(_insideSources, src))
        {
            return DropReason.Martian;
        }
        if (AnyContains(_privateSources, src) && !AnyContains(_allowedSources, src))
        {
            return DropReason.PrivateSource;
        }
        return Ok;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool AnyContains(MaskedNet[] nets, uint address)
    {
        for (int i = 0; i < nets.Length; i++)
        {
            if ((address & nets[i].Mask) == nets[i].Net)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The pool as the fewest CIDR prefixes that cover exactly its addresses (a CGN pool of a /24 is
    /// one prefix), so testing a source against it is a couple of masked compares, not a hash probe.
    /// </summary>
    internal static List<Ipv4Prefix> PoolPrefixes(IReadOnlyList<uint> pool)
    {
        var host = new uint[pool.Count];
        for (int i = 0; i < host.Length; i++)
        {
            host[i] = Ipv4.ToHostOrder(pool[i]);
        }
        Array.Sort(host);
        var result = new List<Ipv4Prefix>();
        int k = 0;
        while (k < host.Length)
        {
            ulong lo = host[k];
            ulong hi = lo;
            k++;
            while (k < host.Length && host[k] <= hi + 1)
            {
                hi = Math.Max(hi, host[k]);
                k++;
            }
            while (lo <= hi)
            {
                // The largest aligned block starting at lo that stays within hi.
                int len = 32;
                while (len > 0)
                {
                    ulong size = 1UL << (32 - len + 1);
                    if ((lo & (size - 1)) != 0 || lo + size - 1 > hi)
                    {
                        break;
                    }
                    len--;
                }
                result.Add(new Ipv4Prefix(Ipv4.FromHostOrder((uint)lo), len));
                lo += 1UL << (32 - len);
            }
        }
        return result;
    }
}

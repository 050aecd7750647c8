using System.Globalization;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Control.Config;

// The carrier-grade NAT keys (RFC 6888): nat.subscriber-prefix, nat.allocation, nat.port-block,
// nat.deterministic, nat.pairing, nat.port-reuse-delay, nat.pool-threshold, nat.drain, limits.per-subscriber, and the fragments
// section (RFC 4787 REQ-14).
public static partial class ConfigLoader
{
    private static readonly string[] AllocationWords = ["dynamic", "port-block", "deterministic"];
    private static readonly string[] PairingWords = ["strict", "spill"];
    private static readonly string[] PortBlockKeys = ["size", "per-subscriber", "interim-log"];
    private static readonly string[] DeterministicKeys = ["inside", "ports"];
    private static readonly string[] PerSubscriberKeys = ["sessions", "ports", "new-sessions-per-second"];
    private static readonly string[] FragmentKeys = ["max-datagrams", "max-per-datagram", "timeout"];

    /// <summary>Largest pool natd takes: each external address costs each shard 24 KiB of port bitmaps.</summary>
    public const int MaxPoolAddresses = 4096;

    private sealed partial class Validator
    {
        /// <summary>Reads the carrier-grade NAT keys of <paramref name="nat"/> and <paramref name="limits"/> into <paramref name="settings"/>.</summary>
        private NatSettings Cgnat(YMapping? nat, YMapping? limits, NatSettings settings)
        {
            var defaults = new CgnatSettings();
            int prefix = (int)Integer(nat?.Get("subscriber-prefix"), "nat.subscriber-prefix", defaults.SubscriberPrefix, 1, 32, "bits");
            var allocation = (PortAllocation)Word(nat?.Get("allocation"), "nat.allocation", AllocationWords, 0);
            var pairing = (Pairing)Word(nat?.Get("pairing"), "nat.pairing", PairingWords, 0);
            int reuse = (int)Integer(nat?.Get("port-reuse-delay"), "nat.port-reuse-delay", defaults.PortReuseDelaySeconds, 0, 3600, "seconds");
            int threshold = (int)Integer(nat?.Get("pool-threshold"), "nat.pool-threshold", defaults.PoolThresholdPercent, 0, 100, "percent");

            int usable = settings.PortMax - Math.Max((int)settings.PortMin, 1024) + 1;
            if (usable < 1)
            {
                usable = settings.PortMax - settings.PortMin + 1;
            }
            YNode? blockNode = nat?.Get("port-block");
            YMapping? block = Mapping(blockNode, "nat.port-block");
            Keys(block, "nat.port-block", PortBlockKeys);
            var blockDefaults = defaults.PortBlock;
            YNode? sizeNode = block?.Get("size");
            var portBlock = new PortBlockSettings(
                (int)Integer(sizeNode, "nat.port-block.size", blockDefaults.Size, 16, 32_768, "ports"),
                (int)Integer(block?.Get("per-subscriber"), "nat.port-block.per-subscriber", blockDefaults.PerSubscriber, 1, 1024, "blocks"),
                (int)Integer(block?.Get("interim-log"), "nat.port-block.interim-log", blockDefaults.InterimLogSeconds, 0, 86_400, "seconds"));
            if (allocation == PortAllocation.PortBlock && portBlock.Size > usable)
            {
                Error(sizeNode ?? blockNode ?? nat!.Get("allocation")!, "nat.port-block.size", string.Create(CultureInfo.InvariantCulture,
                    $"a block of {portBlock.Size} ports does not fit the {usable} ports of nat.ports {settings.PortMin}-{settings.PortMax}"));
            }

            YNode? detNode = nat?.Get("deterministic");
            YMapping? det = Mapping(detNode, "nat.deterministic");
            Keys(det, "nat.deterministic", DeterministicKeys);
            DeterministicSettings? deterministic = null;
            bool insideOk = true;
            if (det is not null)
            {
                var inside = NetworkList(det.Get("inside"), "nat.deterministic.inside") ?? [];
                int ports = (int)Integer(det.Get("ports"), "nat.deterministic.ports", 0, 0, 64_512, "ports");
                deterministic = new DeterministicSettings(inside, ports);
                foreach (Ipv4Prefix p in inside)
                {
                    if (p.Length > prefix)
                    {
                        insideOk = false;
                        Error(det.Get("inside")!, "nat.deterministic.inside", string.Create(CultureInfo.InvariantCulture,
                            $"{p} is smaller than one subscriber (nat.subscriber-prefix {prefix})"));
                    }
                }
            }
            if (allocation == PortAllocation.Deterministic && (deterministic is null || deterministic.Inside.Count == 0))
            {
                Error(nat!.Get("allocation")!, "nat.allocation",
                    "deterministic allocation needs nat.deterministic.inside: the inside prefixes whose subscribers get fixed ranges (RFC 7422)");
            }
            else if (allocation != PortAllocation.Deterministic && detNode is not null)
            {
                Warn(detNode, "nat.deterministic", "ignored: nat.allocation is not deterministic");
            }

            YMapping? per = Mapping(limits?.Get("per-subscriber"), "limits.per-subscriber");
            Keys(per, "limits.per-subscriber", PerSubscriberKeys);
            var perSubscriber = new SubscriberLimits(
                (int)Integer(per?.Get("sessions"), "limits.per-subscriber.sessions", 0, 0, MaxSessions, "sessions"),
                (int)Integer(per?.Get("ports"), "limits.per-subscriber.ports", 0, 0, 65_535 * 3, "ports"),
                (int)Integer(per?.Get("new-sessions-per-second"), "limits.per-subscriber.new-sessions-per-second", 0, 0, 1_000_000, "sessions per second"));

            if (allocation == PortAllocation.Deterministic && perSubscriber.Ports > 0)
            {
                Warn(per!.Get("ports"), "limits.per-subscriber.ports", "ignored with deterministic allocation: a subscriber's range is its port limit");
            }
            if (allocation == PortAllocation.Deterministic && pairing == Pairing.Spill)
            {
                Warn(nat!.Get("pairing"), "nat.pairing", "ignored with deterministic allocation: each subscriber has exactly one address");
            }

            DrainingAddresses drain = Drain(nat?.Get("drain"), settings.Pool, allocation);

            var result = settings with
            {
                Cgnat = new CgnatSettings
                {
                    Drain = drain,
                    SubscriberPrefix = prefix,
                    Allocation = allocation,
                    PortBlock = portBlock,
                    Deterministic = deterministic,
                    Pairing = pairing,
                    PortReuseDelaySeconds = reuse,
                    Limits = perSubscriber,
                    PoolThresholdPercent = threshold,
                },
            };
            // The map's own arithmetic (RFC 7422): overlapping prefixes, too few ports or addresses.
            if (allocation == PortAllocation.Deterministic && insideOk && deterministic is { Inside.Count: > 0 }
                && DeterministicMap.Validate(result) is { } why)
            {
                Error(detNode!, "nat.deterministic", why);
            }
            return result;
        }

        /// <summary>
        /// Reads <c>nat.drain</c>: pool addresses (as <c>nat.pool</c> writes them: addresses, prefixes,
        /// ranges) that take no new subscriber. Each must be in the pool, once; at least one pool
        /// address must stay serving; refused with deterministic allocation, whose configuration
        /// fixes every subscriber's address (RFC 7422).
        /// </summary>
        private DrainingAddresses Drain(YNode? node, IReadOnlyList<uint> pool, PortAllocation allocation)
        {
            const string path = "nat.drain";
            YSequence? seq = Sequence(node, path);
            if (seq is null || seq.Items.Count == 0)
            {
                return DrainingAddresses.None;
            }
            if (allocation == PortAllocation.Deterministic)
            {
                Error(node!, path, "deterministic allocation fixes each subscriber's external address from the configuration (RFC 7422), "
                    + "so no address can drain; change nat.deterministic or nat.pool instead");
                return DrainingAddresses.None;
            }
            var inPool = new HashSet<uint>(pool);
            var drain = new HashSet<uint>();
            for (int i = 0; i < seq.Items.Count; i++)
            {
                string itemPath = string.Create(CultureInfo.InvariantCulture, $"{path}[{i}]");
                YNode item = seq.Items[i];
                if (Text(item, itemPath) is not { } t || PoolItem(item, itemPath, t) is not { } addresses)
                {
                    continue;
                }
                foreach (uint a in addresses)
                {
                    if (!inPool.Contains(a))
                    {
                        Error(item, itemPath, $"{Ipv4.Format(a)} is not in nat.pool; only a pool address can drain");
                        break;
                    }
                    if (!drain.Add(a))
                    {
                        Error(item, itemPath, $"{Ipv4.Format(a)} is listed twice in nat.drain");
                        break;
                    }
                }
            }
            if (drain.Count > 0 && drain.Count >= inPool.Count)
            {
                Error(node!, path, string.Create(CultureInfo.InvariantCulture,
                    $"every address of nat.pool ({inPool.Count}) would drain; at least one must take new subscribers"));
                return DrainingAddresses.None;
            }
            return new DrainingAddresses(drain);
        }

        /// <summary>Reads the <c>fragments</c> section.</summary>
        private FragmentSettings Fragments(YNode? node)
        {
            var d = new FragmentSettings();
            YMapping? m = Mapping(node, "fragments");
            Keys(m, "fragments", FragmentKeys);
            return new FragmentSettings(
                (int)Integer(m?.Get("max-datagrams"), "fragments.max-datagrams", d.MaxDatagrams, 1, 1 << 20, "datagrams"),
                (int)Integer(m?.Get("max-per-datagram"), "fragments.max-per-datagram", d.MaxPerDatagram, 2, 1024, "fragments"),
                (int)Integer(m?.Get("timeout"), "fragments.timeout", d.TimeoutSeconds, 1, 60, "seconds"));
        }

        /// <summary>
        /// One <c>nat.pool</c> item: an address (a.b.c.d), a prefix (a.b.c.d/len: every address of it)
        /// or a range (a.b.c.d-e.f.g.h, inclusive). Addresses network order, in ascending order; null
        /// (with an error) when malformed.
        /// </summary>
        private List<uint>? PoolItem(YNode item, string path, string t)
        {
            int dash = t.IndexOf('-', StringComparison.Ordinal);
            uint first, last;
            if (t.Contains('/'))
            {
                if (!Ipv4Prefix.TryParse(t, out var p))
                {
                    Error(item, path, $"'{t}' is not a network (expected a.b.c.d/len with len 0..32)");
                    return null;
                }
                if ((p.Address & ~p.Mask) != 0)
                {
                    Error(item, path, $"'{t}' has host bits set (did you mean {new Ipv4Prefix(p.Address & p.Mask, p.Length)}?)");
                    return null;
                }
                first = Ipv4.ToHostOrder(p.Address);
                last = first | (uint)((1UL << (32 - p.Length)) - 1);
            }
            else if (dash > 0)
            {
                if (!Ipv4.TryParse(t[..dash].Trim(), out uint a) || !Ipv4.TryParse(t[(dash + 1)..].Trim(), out uint b))
                {
                    Error(item, path, $"'{t}' is not an address range (expected a.b.c.d-e.f.g.h)");
                    return null;
                }
                first = Ipv4.ToHostOrder(a);
                last = Ipv4.ToHostOrder(b);
                if (first > last)
                {
                    Error(item, path, $"'{t}' runs backwards (the first address must not be above the last)");
                    return null;
                }
            }
            else if (Ipv4.TryParse(t, out uint a))
            {
                return [a];
            }
            else
            {
                Error(item, path, $"'{t}' is not an IPv4 address, prefix or range (expected a.b.c.d, a.b.c.d/len or a.b.c.d-e.f.g.h)");
                return null;
            }
            if (last - first + 1 > MaxPoolAddresses)
            {
                Error(item, path, string.Create(CultureInfo.InvariantCulture,
                    $"'{t}' holds {(ulong)last - first + 1} addresses; a pool takes at most {MaxPoolAddresses}"));
                return null;
            }
            var list = new List<uint>((int)(last - first + 1));
            for (ulong h = first; h <= last; h++)
            {
                list.Add(Ipv4.FromHostOrder((uint)h));
            }
            return list;
        }
    }
}

using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

// What a reload may change under live carrier-grade state (docs/architecture.md "Reloading port
// blocks"): limits, pairing, quarantine and interim logging apply at once; a new block size or
// port range start applies to new blocks, live ones keep theirs until released; changes that
// would leave a live block or a mapping without its ports are refused, naming key and state.
public sealed partial class NatEngine
{
    /// <summary>
    /// Whether <paramref name="next"/> can replace the running settings without stranding this
    /// shard's live port blocks or mappings (RFC 6888 section 5: a block stays its holder's until
    /// released, and was logged with its ports). Refused:
    /// <list type="bullet">
    /// <item><c>nat.allocation</c> away from port-block while blocks are held (quarantined ones included);</item>
    /// <item><c>nat.allocation</c> to port-block while mappings hold ports allocated per session (their ports lie in no subscriber's block);</item>
    /// <item>a <c>nat.pool</c> without an address that holds blocks;</item>
    /// <item>a <c>nat.ports</c> range that leaves a held block (partly) outside;</item>
    /// <item>a new cut (<c>nat.port-block.size</c>, or where <c>nat.ports</c> starts) while blocks of two earlier cuts are still held.</item>
    /// </list>
    /// Pure: changes nothing. Control path (walks the blocks and, switching to port-block, the mappings).
    /// </summary>
    /// <param name="next">The validated new settings.</param>
    /// <param name="legacy">The cut the carried blocks keep when it differs from the new one (<see cref="PortBlocks.Legacy"/>), else null.</param>
    /// <returns>Null when possible, else the refusal: key, what is live, and that the running configuration stays.</returns>
    public string? CheckCarrierGradeReload(NatSettings next, out BlockGeometry? legacy)
    {
        legacy = null;
        CgnatSettings cur = _settings.Cgnat;
        PortBlocks? blocks = Subscribers?.Blocks;
        string where = _options.Shards > 1 ? $"shard {_options.Shard} holds" : "natd holds";
        var (lo, hi) = PortAllocator.OrdinaryRange(next.PortMin, next.PortMax);
        if (next.Cgnat.Allocation == PortAllocation.PortBlock && cur.Allocation != PortAllocation.PortBlock)
        {
            int live = 0, example = -1;
            Mapping[] mappings = Table.Mappings;
            for (int m = 0; m < mappings.Length; m++)
            {
                ref Mapping map = ref mappings[m];
                int port = FlowKey.PortToHost(map.ExternalPort);
                if (map.InUse && !map.StaticPort && port >= lo && port <= hi)
                {
                    live++;
                    example = example < 0 ? m : example;
                }
            }
            if (live > 0)
            {
                ref Mapping e = ref mappings[example];
                return $"nat.allocation: cannot change {Name(cur.Allocation)} to port-block while {where} {live} mapping(s) with ports allocated per session "
                    + $"(e.g. {Ipv4.Format(e.InsideAddress)} on {Ipv4.Format(e.ExternalAddress)}:{FlowKey.PortToHost(e.ExternalPort)}), which lie in no subscriber's block; "
                    + "the running configuration stays (change it once they have ended, or restart)";
            }
            return null;
        }
        if (blocks is null || blocks.HeldCount() is var held && held == 0)
        {
            return null;
        }
        int first = FirstHeld(blocks);
        string sample = $"{Ipv4.Format(blocks.OwnerOf(first))} holds {Ipv4.Format(_addresses.Pool[blocks.AddressOf(first)])}:{blocks.Low(first)}-{blocks.High(first)}";
        if (next.Cgnat.Allocation != PortAllocation.PortBlock)
        {
            return $"nat.allocation: cannot change port-block to {Name(next.Cgnat.Allocation)} while {where} {held} port block(s) (e.g. {sample}); "
                + "the running configuration stays (blocks are released once their last mapping has ended and nat.port-reuse-delay has passed)";
        }
        var removed = new Dictionary<uint, int>();
        int outside = -1, outsideCount = 0;
        bool current = false, old = false;
        for (int b = 0; b < blocks.Count; b++)
        {
            if (!blocks.IsHeld(b))
            {
                continue;
            }
            uint address = _addresses.Pool[blocks.AddressOf(b)];
            if (!next.Pool.Contains(address))
            {
                removed[address] = removed.GetValueOrDefault(address) + 1;
            }
            if (blocks.Low(b) < lo || blocks.High(b) > hi)
            {
                outsideCount++;
                outside = outside < 0 ? b : outside;
            }
            current |= !blocks.IsLegacy(b);
            old |= blocks.IsLegacy(b);
        }
        if (removed.Count > 0)
        {
            var (address, count) = removed.First();
            return $"nat.pool: {Ipv4.Format(address)} is no longer in the pool but {where} {count} port block(s) on it"
                + (removed.Count > 1 ? $" ({removed.Count} such addresses)" : "")
                + "; the running configuration stays (list it in nat.drain first, and remove it once its blocks are released)";
        }
        if (outside >= 0)
        {
            return $"nat.ports: {next.PortMin}-{next.PortMax} leaves {outsideCount} held port block(s) outside the range "
                + $"(e.g. {Ipv4.Format(blocks.OwnerOf(outside))} holds {Ipv4.Format(_addresses.Pool[blocks.AddressOf(outside)])}:{blocks.Low(outside)}-{blocks.High(outside)}); "
                + "the running configuration stays";
        }
        BlockGeometry cut = BlockGeometry.Of(lo, hi, _options.Shard, _options.Shards, next.Cgnat.PortBlock.Size);
        bool currentKept = !current || SameCut(blocks.Geometry, cut);
        bool legacyKept = !old || SameCut(blocks.Legacy!.Value, cut);
        if (!currentKept && !legacyKept)
        {
            return $"nat.port-block.size: {where} blocks of {blocks.Legacy!.Value.Size} ports from before an earlier change and of {blocks.Size} ports; "
                + $"a third cut of {next.Cgnat.PortBlock.Size} ports waits until the older ones are released (e.g. {sample}); the running configuration stays";
        }
        legacy = !currentKept ? blocks.Geometry : !legacyKept ? blocks.Legacy : null;
        return null;
    }

    /// <summary>Two cuts that put every block at the same ports (the number of blocks per address may differ).</summary>
    private static bool SameCut(BlockGeometry a, BlockGeometry b) => a.First == b.First && a.Size == b.Size;

    private static int FirstHeld(PortBlocks blocks)
    {
        for (int b = 0; b < blocks.Count; b++)
        {
            if (blocks.IsHeld(b))
            {
                return b;
            }
        }
        return -1;
    }

    private static string Name(PortAllocation a) => a switch
    {
        PortAllocation.PortBlock => "port-block",
        PortAllocation.Deterministic => "deterministic",
        _ => "dynamic",
    };
}

using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

// Operator views of the shard's carrier-grade NAT state (natctl subscribers, natctl blocks) and the
// pool utilisation threshold (nat.pool-threshold, RFC 8158 "threshold reached").
public sealed partial class NatEngine
{
    // Per pool address: true once its utilisation passed the threshold, until it falls below the
    // threshold minus the hysteresis. Written by this shard only; other threads read it (ReadView).
    private bool[] _poolAbove = [];
    private int _thresholdCursor;

    /// <summary>Appends this shard's subscribers (empty unless a CGN feature keeps subscriber state). Control path only.</summary>
    public void CollectSubscribers(List<SubscriberInfo> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        if (Subscribers is { } sp)
        {
            into.AddRange(sp.List());
        }
    }

    /// <summary>Appends this shard's held port blocks at <paramref name="nowMs"/> (empty unless <c>nat.allocation: port-block</c>). Control path only.</summary>
    public void CollectBlocks(List<BlockInfo> into, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(into);
        if (Subscribers is { } sp)
        {
            into.AddRange(sp.ListBlocks(nowMs));
        }
    }

    /// <summary>True while pool address <paramref name="poolIndex"/> is past the threshold in this shard (readable from any thread).</summary>
    internal bool PoolAboveThreshold(int poolIndex)
    {
        bool[] above = Volatile.Read(ref _poolAbove);
        return (uint)poolIndex < (uint)above.Length && Volatile.Read(ref above[poolIndex]);
    }

    /// <summary>
    /// This shard's utilisation (percent, 0..100) of pool address <paramref name="poolIndex"/>: its
    /// blocks held out of its blocks with port-block allocation, else the busiest protocol class's
    /// ports in use out of the shard's share of the range (a shard knows only its own share, and
    /// an address runs out in whichever shard fills first).
    /// </summary>
    internal int PoolUtilisation(int poolIndex)
    {
        if (Subscribers?.Blocks is { } blocks)
        {
            return blocks.PerAddress == 0 ? 0 : (int)(100L * (blocks.PerAddress - blocks.FreeOn(poolIndex)) / blocks.PerAddress);
        }
        PortAllocator ports = Table.Ports;
        if (poolIndex >= ports.Addresses || ports.RangeSize <= 0)
        {
            return 0;
        }
        int used = 0;
        for (int c = 0; c < PortAllocator.Classes; c++)
        {
            used = Math.Max(used, ports.InUse(poolIndex, c));
        }
        return (int)Math.Min(100, 100L * used / ports.RangeSize);
    }

    /// <summary>
    /// The sweeper's threshold check: up to <paramref name="budget"/> pool addresses, round robin.
    /// An address past <c>nat.pool-threshold</c> emits one PoolThreshold event (Detail = its
    /// utilisation) and is re-armed only once it falls <see cref="CgnatSettings.PoolThresholdHysteresis"/>
    /// points below, so an address hovering at the threshold does not log at every sweep.
    /// </summary>
    private void CheckPoolThreshold(long nowMs, int budget)
    {
        int threshold = _settings.Cgnat.PoolThresholdPercent;
        uint[] pool = _addresses.Pool;
        if (_poolAbove.Length != pool.Length)
        {
            Volatile.Write(ref _poolAbove, new bool[pool.Length]);
            _thresholdCursor = 0;
        }
        if (threshold <= 0 || pool.Length == 0)
        {
            return;
        }
        int n = Math.Min(pool.Length, Math.Max(1, budget));
        for (int k = 0; k < n; k++)
        {
            int a = _thresholdCursor;
            _thresholdCursor = (a + 1) % pool.Length;
            int percent = PoolUtilisation(a);
            if (!_poolAbove[a] && percent >= threshold)
            {
                Volatile.Write(ref _poolAbove[a], true);
                Table.EmitEvent(new NatEvent { TimeMs = nowMs, Type = NatEventType.PoolThreshold, ExternalAddress = pool[a], Detail = (byte)percent });
            }
            else if (_poolAbove[a] && percent < threshold - CgnatSettings.PoolThresholdHysteresis)
            {
                Volatile.Write(ref _poolAbove[a], false);
            }
        }
    }

    /// <summary>Forgets which addresses were past the threshold (a new pool: its indexes mean other addresses).</summary>
    private void ResetPoolThreshold() => Volatile.Write(ref _poolAbove, []);
}

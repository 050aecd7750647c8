using Natd.Dataplane.Packets;

namespace Natd.Dataplane.Nat;

// The engine's face of its neighbour component (Neighbours.cs owns the tables and the hold queue).
public sealed partial class NatEngine
{
    /// <summary>Learned neighbours one side's table holds at most (<see cref="NatSettings.MaxNeighbours"/>).</summary>
    public int NeighbourCapacity => _neighbours.Capacity;

    /// <summary>Learned neighbours on <paramref name="side"/> (static ones not included).</summary>
    public int LearnedNeighbourCount(Side side) => _neighbours.LearnedCount(side);

    /// <summary>Next hops on <paramref name="side"/> being resolved by ARP.</summary>
    public int PendingNeighbourCount(Side side) => _neighbours.PendingCount(side);

    /// <summary>Neighbours known on a side (address network order, MAC): static ones, then learned ones oldest first. Allocates: control path only.</summary>
    public IReadOnlyList<KeyValuePair<uint, MacAddress>> Neighbours(Side side) => _neighbours.List(side);

    /// <summary>
    /// Records a neighbour (from ARP, a restored snapshot or traffic in replay) as confirmed now, and
    /// releases frames held for it. A static neighbour keeps its configured MAC. A full table
    /// evicts its least recently used entry (counted in <see cref="NatCounters.NeighboursEvicted"/>).
    /// </summary>
    public void Learn(Side side, uint address, MacAddress mac) => _neighbours.Learn(side, address, mac, _now);

    /// <inheritdoc cref="Learn(Side, uint, MacAddress)"/>
    /// <param name="side">Side the neighbour is on.</param>
    /// <param name="address">Its IPv4 address, network order.</param>
    /// <param name="mac">Its MAC; multicast, broadcast and zero are ignored.</param>
    /// <param name="nowMs">The engine's time in milliseconds.</param>
    public void Learn(Side side, uint address, MacAddress mac, long nowMs) => _neighbours.Learn(side, address, mac, nowMs);

    /// <summary>Gives up every frame still waiting for ARP (end of a replay, shutdown): each is counted and handed to the sink's Discard.</summary>
    public void DiscardHeld() => _neighbours.DiscardHeld();

    /// <summary>
    /// Learns from an ARP frame another shard received and answered (only senders on the side's
    /// prefix that asked or answered natd, as for ARP this engine receives).
    /// </summary>
    public void LearnFromArp(ReadOnlySpan<byte> frame, Side side) => _neighbours.LearnFromArp(frame, side, _now);
}

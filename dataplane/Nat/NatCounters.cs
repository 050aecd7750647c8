using System.Runtime.CompilerServices;
using Natd.Dataplane.Counters;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Nat;

/// <summary>
/// The one counter table of a shard (<see cref="CounterTable"/>): the scalar counters of
/// <see cref="ShardCounter"/> (traffic, gateway, sessions, expectations, IPsec, poller, handoffs),
/// then drops by <see cref="DropReason"/>, then ALG events by <see cref="AlgKind"/>. Every slot is
/// declared once in <see cref="Schema"/> (group, name, help). Single writer: the shard's poller
/// thread; other threads read through <see cref="View"/>. The named members are references into
/// the table, so <c>Counters.PacketsIn2Out++</c> increments the slot in place.
/// </summary>
public sealed class NatCounters
{
    /// <summary>First slot of the drops (one per <see cref="DropReason"/>).</summary>
    public const int DropBase = ShardCounters.Count;

    /// <summary>ALG kinds counted (indexed by <see cref="AlgKind"/>, 0 unused).</summary>
    public const int AlgKinds = 5;

    /// <summary>First slot of ALG frames by kind; rewrites, refused and lost follow, <see cref="AlgKinds"/> each.</summary>
    public static readonly int AlgBase = DropBase + DropReasons.Count;

    /// <summary>First slot of the PCP server's requests by <see cref="Pcp.PcpOutcome"/>.</summary>
    public static readonly int PcpBase = AlgBase + 4 * AlgKinds;

    private static int SlotCount => PcpBase + Pcp.PcpOutcomes.Count;

    /// <summary>The name table every shard's counters share.</summary>
    public static readonly CounterSchema Schema = BuildSchema();

    private static CounterSchema BuildSchema()
    {
        var d = new List<CounterDeclaration>(SlotCount);
        d.AddRange(ShardCounters.Declarations);
        for (int r = 0; r < DropReasons.Count; r++)
        {
            d.Add(new CounterDeclaration(DropBase + r, "drops", DropReasons.Label((DropReason)r), "Frames dropped, by reason."));
        }
        string[] events = ["frames", "rewrites", "refused", "lost"];
        string[] help =
        [
            "Frames handed to the ALG's helper.", "Payload edits the ALG made.",
            "Commands the ALG refused, and expectations the engine refused.", "Frames the helper never returned (it failed and was restarted).",
        ];
        for (int e = 0; e < events.Length; e++)
        {
            for (int k = 0; k < AlgKinds; k++)
            {
                string alg = k == 0 ? "none" : NatEngine.AlgName((AlgKind)k);
                d.Add(new CounterDeclaration(AlgBase + e * AlgKinds + k, "alg", alg + "/" + events[e], help[e]));
            }
        }
        for (int o = 0; o < Pcp.PcpOutcomes.Count; o++)
        {
            d.Add(new CounterDeclaration(PcpBase + o, "pcp", Pcp.PcpOutcomes.Label((Pcp.PcpOutcome)o), "PCP and NAT-PMP requests, by result."));
        }
        return new CounterSchema(d);
    }

    /// <summary>Creates a zeroed table.</summary>
    public NatCounters() => Table = new CounterTable(Schema);

    /// <summary>The table itself (writers of other layers: session table, IPsec, poller).</summary>
    public CounterTable Table { get; }

    /// <summary>Read-only view for other threads.</summary>
    public CounterView View => Table.View;

    /// <summary>Slot <paramref name="c"/>.</summary>
    public ref long this[ShardCounter c]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref Table[(int)c];
    }

    /// <summary>Packets translated inside to outside.</summary>
    public ref long PacketsIn2Out => ref Table[(int)ShardCounter.PacketsIn2Out];
    /// <summary>Packets translated outside to inside.</summary>
    public ref long PacketsOut2In => ref Table[(int)ShardCounter.PacketsOut2In];
    /// <summary>IPv4 bytes (total length) translated inside to outside.</summary>
    public ref long BytesIn2Out => ref Table[(int)ShardCounter.BytesIn2Out];
    /// <summary>IPv4 bytes translated outside to inside.</summary>
    public ref long BytesOut2In => ref Table[(int)ShardCounter.BytesOut2In];
    /// <summary>ARP replies natd sent for its own addresses.</summary>
    public ref long ArpRepliesSent => ref Table[(int)ShardCounter.ArpRepliesSent];
    /// <summary>ARP requests natd sent to resolve next hops.</summary>
    public ref long ArpRequestsSent => ref Table[(int)ShardCounter.ArpRequestsSent];
    /// <summary>ICMP errors natd generated.</summary>
    public ref long IcmpErrorsSent => ref Table[(int)ShardCounter.IcmpErrorsSent];
    /// <summary>ICMP echo replies natd sent for its own addresses.</summary>
    public ref long EchoRepliesSent => ref Table[(int)ShardCounter.EchoRepliesSent];
    /// <summary>Frames held while their next hop's MAC was resolved.</summary>
    public ref long FramesHeld => ref Table[(int)ShardCounter.FramesHeld];
    /// <summary>TCP/UDP checksums completed in software (sender used checksum offload).</summary>
    public ref long ChecksumsCompleted => ref Table[(int)ShardCounter.ChecksumsCompleted];
    /// <summary>ICMP errors translated (RFC 5508 embedded header rewrite).</summary>
    public ref long IcmpErrorsTranslated => ref Table[(int)ShardCounter.IcmpErrorsTranslated];
    /// <summary>Port-forward backends marked down after refusing a connection.</summary>
    public ref long BackendRefusals => ref Table[(int)ShardCounter.BackendRefusals];
    /// <summary>Packets translated by protocol forwards (both directions).</summary>
    public ref long ProtocolForwarded => ref Table[(int)ShardCounter.ProtocolForwarded];
    /// <summary>Packets hairpinned (inside to an external address and back inside, RFC 4787 REQ-9).</summary>
    public ref long Hairpinned => ref Table[(int)ShardCounter.Hairpinned];
    /// <summary>GRE version 1 packets of PPTP calls translated by Call ID (both directions, RFC 2637).</summary>
    public ref long PptpGreTranslated => ref Table[(int)ShardCounter.PptpGreTranslated];
    /// <summary>Learned neighbours removed to make room in a full table (<see cref="NatSettings.MaxNeighbours"/>).</summary>
    public ref long NeighboursEvicted => ref Table[(int)ShardCounter.NeighboursEvicted];
    /// <summary>Learned neighbours removed after going unused and unconfirmed for the stale time (60 s).</summary>
    public ref long NeighboursExpired => ref Table[(int)ShardCounter.NeighboursExpired];
    /// <summary>Pending ARP resolutions given up to make room in a full pending table (their held frames dropped).</summary>
    public ref long PendingNeighboursEvicted => ref Table[(int)ShardCounter.PendingNeighboursEvicted];
    /// <summary>Pending ARP resolutions that failed: no reply within the hold time.</summary>
    public ref long PendingNeighboursExpired => ref Table[(int)ShardCounter.PendingNeighboursExpired];
    /// <summary>Sessions deleted by the sweeper's slices.</summary>
    public ref long SessionsSwept => ref Table[(int)ShardCounter.SessionsSwept];

    /// <summary>Drops by <see cref="DropReason"/> (a span over the table: <c>Drops[(int)reason]++</c>).</summary>
    public Span<long> Drops
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Table.Range(DropBase, DropReasons.Count);
    }
}

using System.Runtime.CompilerServices;

namespace Natd.Dataplane.Counters;

/// <summary>Whether a counter only grows (a Prometheus counter) or goes up and down (a gauge).</summary>
public enum CounterKind : byte
{
    /// <summary>Only grows while the process runs.</summary>
    Counter,
    /// <summary>A current level (sessions in the table now).</summary>
    Gauge,
}

/// <summary>One counter's declaration: where it is, what it is called, what it means.</summary>
/// <param name="Index">Its slot in a <see cref="CounterTable"/>.</param>
/// <param name="Group">The family it is exported in (e.g. <c>gateway</c>, <c>drops</c>, <c>alg</c>).</param>
/// <param name="Name">Its label inside the family, lower-case with dashes (e.g. <c>arp-replies-sent</c>).</param>
/// <param name="Help">One line for operators: what is counted, and the unit when it is not "events".</param>
/// <param name="Kind">Counter or gauge.</param>
public sealed record CounterDeclaration(int Index, string Group, string Name, string Help, CounterKind Kind = CounterKind.Counter);

/// <summary>
/// The name table of a <see cref="CounterTable"/>: every slot declared once with its group, name
/// and help, the way a VPP node declares its error counters once next to the code that counts them.
/// Immutable; shared by every shard's table.
/// </summary>
public sealed class CounterSchema
{
    private readonly CounterDeclaration[] _declarations;
    private readonly Dictionary<(string, string), int> _byName = [];

    /// <summary>Builds a schema from declarations whose indexes are exactly 0..n-1 (any order).</summary>
    /// <exception cref="ArgumentException">A missing, repeated or out-of-range index, or a repeated group/name.</exception>
    public CounterSchema(IEnumerable<CounterDeclaration> declarations)
    {
        ArgumentNullException.ThrowIfNull(declarations);
        var list = declarations.ToList();
        _declarations = new CounterDeclaration[list.Count];
        foreach (var d in list)
        {
            if ((uint)d.Index >= (uint)list.Count || _declarations[d.Index] is not null)
            {
                throw new ArgumentException($"counter slot {d.Index} ({d.Group}/{d.Name}) is out of range or declared twice", nameof(declarations));
            }
            if (!_byName.TryAdd((d.Group, d.Name), d.Index))
            {
                throw new ArgumentException($"counter {d.Group}/{d.Name} is declared twice", nameof(declarations));
            }
            _declarations[d.Index] = d;
        }
    }

    /// <summary>Number of slots.</summary>
    public int Count => _declarations.Length;

    /// <summary>Declaration of slot <paramref name="index"/>.</summary>
    public CounterDeclaration this[int index] => _declarations[index];

    /// <summary>Every declaration, in slot order.</summary>
    public IReadOnlyList<CounterDeclaration> Declarations => _declarations;

    /// <summary>The slot of <paramref name="group"/>/<paramref name="name"/>, or -1.</summary>
    public int IndexOf(string group, string name) => _byName.TryGetValue((group, name), out int i) ? i : -1;
}

/// <summary>
/// All counters of one shard in one flat array of 64-bit values, laid out by a
/// <see cref="CounterSchema"/> and padded by a cache line (64 bytes) at each end so no other
/// shard's writes share its lines. Single writer: the shard's poller thread. Other threads read
/// through <see cref="View"/> (values may be a batch old; aligned 64-bit loads do not tear).
/// </summary>
public sealed class CounterTable
{
    private const int Pad = 8; // 8 longs = one 64-byte cache line
    private readonly long[] _values;

    /// <summary>Creates a zeroed table for <paramref name="schema"/>.</summary>
    public CounterTable(CounterSchema schema)
    {
        Schema = schema ?? throw new ArgumentNullException(nameof(schema));
        _values = new long[schema.Count + 2 * Pad];
    }

    /// <summary>The table's name table.</summary>
    public CounterSchema Schema { get; }

    /// <summary>Slot <paramref name="index"/>, to increment in place (owner thread only).</summary>
    public ref long this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref _values[Pad + index];
    }

    /// <summary><paramref name="length"/> consecutive slots from <paramref name="start"/> (an array-like group: drops by reason).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<long> Range(int start, int length) => _values.AsSpan(Pad + start, length);

    /// <summary>A read-only view for other threads (metrics, stats, logs).</summary>
    public CounterView View => new(this);

    internal long Read(int index) => Volatile.Read(ref _values[Pad + index]);
}

/// <summary>
/// Read-only access to a shard's <see cref="CounterTable"/> from another thread: what the metrics
/// exporter and <c>natctl stats</c> read instead of reaching into an engine.
/// </summary>
public readonly struct CounterView
{
    private readonly CounterTable _table;

    internal CounterView(CounterTable table) => _table = table;

    /// <summary>The name table.</summary>
    public CounterSchema Schema => _table.Schema;

    /// <summary>Number of slots.</summary>
    public int Count => _table.Schema.Count;

    /// <summary>The current value of slot <paramref name="index"/> (a volatile read).</summary>
    public long this[int index] => _table.Read(index);

    /// <summary>The current value of <paramref name="group"/>/<paramref name="name"/>; 0 when not declared.</summary>
    public long Get(string group, string name) => Schema.IndexOf(group, name) is var i and >= 0 ? _table.Read(i) : 0;
}

namespace Natd.Dataplane.Sessions;

/// <summary>
/// UDP idle timeouts of their own for sessions whose server port is a well-known port (RFC 4787
/// REQ-5a: "for specific destination ports in the well-known port range (ports 0-1023), a NAT
/// behavior MAY have shorter UDP mapping timers"). A DNS query is one request and one answer: at the
/// 300 s UDP timeout every query a subscriber's stub resolver sends from a fresh port holds an
/// external port for five minutes, which is what exhausts a carrier-grade NAT's ports first.
/// <para>
/// A session's server port is its remote port (an outbound flow: the destination the inside host
/// sent to) or its external port (an inbound flow to a forward or a mapping: the port natd was sent
/// to); the remote port is looked up first. Each distinct timeout is an expiry class of its own
/// (<see cref="LruClass.UdpPort0"/>..<see cref="LruClass.UdpPort3"/>), so at most
/// <see cref="MaxTimers"/> distinct values. Immutable; equal when the same ports map to the same
/// timeouts.
/// </para>
/// </summary>
public sealed class UdpPortTimeouts : IEquatable<UdpPortTimeouts>
{
    /// <summary>The highest port a timer may name (the well-known range, RFC 4787 REQ-5a).</summary>
    public const int MaxPort = 1023;

    /// <summary>Distinct timeouts at most: one expiry list each.</summary>
    public const int MaxTimers = 4;

    /// <summary>No port has a timer of its own (the default).</summary>
    public static readonly UdpPortTimeouts None = new([]);

    // Per well-known port: 0 none, else 1 + the index of its timeout in _seconds.
    private readonly byte[] _timerByPort = new byte[MaxPort + 1];
    private readonly int[] _seconds;
    private readonly KeyValuePair<int, int>[] _entries;

    private UdpPortTimeouts(KeyValuePair<int, int>[] sortedEntries)
    {
        _entries = sortedEntries;
        var seconds = new List<int>(MaxTimers);
        foreach (var (port, s) in sortedEntries)
        {
            int t = seconds.IndexOf(s);
            if (t < 0)
            {
                t = seconds.Count;
                seconds.Add(s);
            }
            _timerByPort[port] = (byte)(t + 1);
        }
        _seconds = [.. seconds];
    }

    /// <summary>
    /// Builds the timers from (port, seconds) pairs: ports 1..<see cref="MaxPort"/>, each once,
    /// seconds at least 1, at most <see cref="MaxTimers"/> distinct values. Null and the reason
    /// when the pairs break one of those rules.
    /// </summary>
    public static UdpPortTimeouts? Create(IEnumerable<KeyValuePair<int, int>> entries, out string? error)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var list = new List<KeyValuePair<int, int>>();
        var distinct = new HashSet<int>();
        foreach (var e in entries)
        {
            if (e.Key is < 1 or > MaxPort)
            {
                error = $"port {e.Key} is not a well-known port (1..{MaxPort}; RFC 4787 REQ-5a allows a UDP timer of its own there only)";
                return null;
            }
            if (e.Value < 1)
            {
                error = $"port {e.Key}: {e.Value} s is not a timeout (at least 1 s)";
                return null;
            }
            if (list.Exists(x => x.Key == e.Key))
            {
                error = $"port {e.Key} is named twice";
                return null;
            }
            distinct.Add(e.Value);
            list.Add(e);
        }
        if (distinct.Count > MaxTimers)
        {
            error = $"{distinct.Count} distinct timeouts; at most {MaxTimers} (each is an expiry list of its own), so give ports that can share one the same value";
            return null;
        }
        error = null;
        list.Sort((a, b) => a.Key.CompareTo(b.Key));
        return list.Count == 0 ? None : new UdpPortTimeouts([.. list]);
    }

    /// <summary>The (port, seconds) pairs, by port.</summary>
    public IReadOnlyList<KeyValuePair<int, int>> Entries => _entries;

    /// <summary>True when no port has a timer of its own.</summary>
    public bool IsEmpty => _entries.Length == 0;

    /// <summary>
    /// Seconds of idle time the class <see cref="LruClass.UdpPort0"/> + <paramref name="timer"/>
    /// allows; <paramref name="udp"/> (the UDP timeout) for a timer no port uses.
    /// </summary>
    public int Seconds(int timer, int udp) => (uint)timer < (uint)_seconds.Length ? _seconds[timer] : udp;

    /// <summary>
    /// The expiry class of a UDP session: <see cref="LruClass.Udp"/>, or the timer of its remote
    /// port, else of its external port. Ports in network byte order, as <see cref="FlowKey"/> keeps them.
    /// </summary>
    public LruClass ClassOf(ushort remotePortRaw, ushort externalPortRaw)
    {
        if (_entries.Length == 0)
        {
            return LruClass.Udp;
        }
        int t = Timer(FlowKey.PortToHost(remotePortRaw));
        if (t == 0)
        {
            t = Timer(FlowKey.PortToHost(externalPortRaw));
        }
        return t == 0 ? LruClass.Udp : (LruClass)((int)LruClass.UdpPort0 + t - 1);
    }

    private int Timer(int port) => port <= MaxPort ? _timerByPort[port] : 0;

    /// <inheritdoc/>
    public bool Equals(UdpPortTimeouts? other)
        => other is not null && (ReferenceEquals(this, other) || _entries.AsSpan().SequenceEqual(other._entries));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as UdpPortTimeouts);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var (port, s) in _entries)
        {
            h.Add(port);
            h.Add(s);
        }
        return h.ToHashCode();
    }

    /// <summary>The YAML flow form: <c>{ 53: 30, 123: 60 }</c>, or <c>{}</c>.</summary>
    public override string ToString()
        => _entries.Length == 0 ? "{}" : "{ " + string.Join(", ", Array.ConvertAll(_entries, e => $"{e.Key}: {e.Value}")) + " }";
}

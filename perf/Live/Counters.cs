using System.Globalization;
using Natd.Dataplane.Io;

namespace Natd.Live;

/// <summary>Packet counters of one interface (from /proc/net/dev), in packets.</summary>
public readonly record struct IfCounters(long RxPackets, long RxDropped, long TxPackets, long TxDropped)
{
    /// <summary>Field-wise difference later - earlier.</summary>
    public static IfCounters operator -(IfCounters a, IfCounters b) =>
        new(a.RxPackets - b.RxPackets, a.RxDropped - b.RxDropped, a.TxPackets - b.TxPackets, a.TxDropped - b.TxDropped);
}

/// <summary>
/// Reads interface counters of another network namespace without spawning a process: a thread
/// enters the namespace (setns) and reads /proc/thread-self/net/dev, which shows the reading
/// thread's namespace. Takes well under a millisecond, so the window edges are sharp.
/// </summary>
public static class Counters
{
    /// <summary>Counters of <paramref name="iface"/> in namespace <paramref name="ns"/>.</summary>
    /// <exception cref="InvalidOperationException">The interface is not listed.</exception>
    public static IfCounters Read(string ns, string iface) => NetNamespace.RunIn(ns, () => Parse(File.ReadAllText("/proc/thread-self/net/dev"), iface));

    /// <summary>Reads a file as a thread in <paramref name="ns"/> sees it (e.g. /proc/sys/net/...); null if missing.</summary>
    public static string? ReadFileIn(string ns, string path) =>
        NetNamespace.RunIn(ns, () => File.Exists(path) ? File.ReadAllText(path) : null);

    /// <summary>Parses the /proc/net/dev line of one interface.</summary>
    public static IfCounters Parse(string procNetDev, string iface)
    {
        foreach (var raw in procNetDev.Split('\n'))
        {
            int colon = raw.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 || raw[..colon].Trim() != iface)
            {
                continue;
            }
            var f = raw[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop ...
            return new IfCounters(
                long.Parse(f[1], CultureInfo.InvariantCulture), long.Parse(f[3], CultureInfo.InvariantCulture),
                long.Parse(f[9], CultureInfo.InvariantCulture), long.Parse(f[11], CultureInfo.InvariantCulture));
        }
        throw new InvalidOperationException($"interface {iface} not in /proc/net/dev");
    }

    /// <summary>
    /// Sums columns of /proc/net/stat/nf_conntrack (one hex row per CPU) as seen in <paramref name="ns"/>;
    /// empty when conntrack is not loaded.
    /// </summary>
    public static Dictionary<string, long> Conntrack(string ns)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        string? text = ReadFileIn(ns, "/proc/thread-self/net/stat/nf_conntrack");
        if (text is null)
        {
            return result;
        }
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length < 2)
        {
            return result;
        }
        var names = lines[0].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        for (int l = 1; l < lines.Length; l++)
        {
            var v = lines[l].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            for (int c = 0; c < names.Length && c < v.Length; c++)
            {
                // "entries" is a global gauge repeated on every row: keep one copy.
                long x = long.Parse(v[c], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                result[names[c]] = names[c] == "entries" ? x : result.GetValueOrDefault(names[c]) + x;
            }
        }
        return result;
    }
}

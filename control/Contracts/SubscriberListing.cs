using System.Globalization;
using System.Text;

namespace Natd.Contracts;

/// <summary>
/// `natctl subscribers`, `natctl blocks` and `natctl mappings` as aligned columns, one row per
/// subscriber, block or PCP mapping:
/// <code>
/// subscriber  external      blocks                   ports     sessions   limit-hits
/// 10.0.0.2    198.51.100.1  1024-2046/2              12/1024   10/2000    sessions=7 rate=2
/// </code>
/// A limit of 0 (unlimited) prints as "-"; a subscriber with no limit hit prints "-". A note names
/// how many rows the listing left out (natd answers at most --limit rows).
/// </summary>
internal static class SubscriberListing
{
    /// <summary>The subscribers table.</summary>
    public static string Render(SubscribersAnswer answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var rows = new List<string[]> { new[] { "subscriber", "external", "blocks", "ports", "sessions", "limit-hits" } };
        foreach (var s in answer.Subscribers)
        {
            rows.Add([
                s.Subscriber,
                s.External.Length == 0 ? "-" : s.External,
                s.Blocks.Length == 0 ? "-" : string.Join(',', s.Blocks),
                Of(s.Ports, s.PortLimit),
                Of(s.Sessions, s.SessionLimit),
                Hits(s.LimitHits),
            ]);
        }
        return Columns(rows, answer.Total - answer.Subscribers.Length, "subscribers");
    }

    /// <summary>The blocks table.</summary>
    public static string Render(BlocksAnswer answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var rows = new List<string[]> { new[] { "external", "block", "subscriber", "ports-in-use", "allocated-at" } };
        foreach (var b in answer.Blocks)
        {
            rows.Add([b.External, b.Block, b.Subscriber, b.PortsInUse.ToString(CultureInfo.InvariantCulture), b.AllocatedAt]);
        }
        return Columns(rows, answer.Total - answer.Blocks.Length, "blocks");
    }

    /// <summary>
    /// The PCP and NAT-PMP mappings table, one mapping a line: protocol, internal, external, lifetime
    /// left (seconds), filters ("-" when every remote may use it), nonce, and how it was made.
    /// </summary>
    public static string Render(MappingsAnswer answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        var rows = new List<string[]> { new[] { "protocol", "internal", "external", "lifetime", "filters", "nonce", "via" } };
        foreach (var m in answer.Mappings)
        {
            rows.Add([
                m.Protocol,
                m.Internal,
                m.External,
                string.Create(CultureInfo.InvariantCulture, $"{m.LifetimeLeft}s"),
                m.Filters.Length == 0 ? "-" : string.Join(',', m.Filters),
                m.Nonce,
                m.Via,
            ]);
        }
        return Columns(rows, answer.Total - answer.Mappings.Length, "mappings");
    }

    /// <summary>A block's ports as "LOW-HIGH", or "LOW-HIGH/STEP" when its ports are every STEP-th (RFC 8158 portRangeStepSize).</summary>
    public static string Block(int low, int high, int step)
        => step > 1
            ? string.Create(CultureInfo.InvariantCulture, $"{low}-{high}/{step}")
            : string.Create(CultureInfo.InvariantCulture, $"{low}-{high}");

    private static string Of(long value, long limit)
        => string.Create(CultureInfo.InvariantCulture, $"{value}/{(limit == 0 ? "-" : limit.ToString(CultureInfo.InvariantCulture))}");

    private static string Hits(Dictionary<string, long> hits)
    {
        var parts = new List<string>();
        foreach (var kv in hits)
        {
            if (kv.Value != 0)
            {
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"{kv.Key}={kv.Value}"));
            }
        }
        return parts.Count == 0 ? "-" : string.Join(' ', parts);
    }

    private static string Columns(List<string[]> rows, long more, string what)
    {
        int columns = rows[0].Length;
        var width = new int[columns];
        foreach (var r in rows)
        {
            for (int c = 0; c < columns; c++)
            {
                width[c] = Math.Max(width[c], r[c].Length);
            }
        }
        var sb = new StringBuilder(64 * rows.Count);
        foreach (var r in rows)
        {
            for (int c = 0; c < columns; c++)
            {
                // The last column is not padded: no trailing blanks.
                sb.Append(c == columns - 1 ? r[c] : r[c].PadRight(width[c] + 2));
            }
            sb.Append('\n');
        }
        if (more > 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $"({more} more {what} not shown; raise --limit)\n");
        }
        return sb.ToString();
    }
}

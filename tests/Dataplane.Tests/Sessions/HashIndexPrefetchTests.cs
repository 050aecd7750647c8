using System.Runtime.CompilerServices;
using Natd.Dataplane.Sessions;
using Xunit;

namespace Natd.Dataplane.Tests.Sessions;

/// <summary>
/// Prefetch stage two names the session of a key from its index line. A key's home is a whole
/// cache line and linear probing fills it before it spills into the next, so stage two reads the
/// line stage one fetched, finds every entry placed in it, never reads past it, and never names an
/// entry of another tag.
/// </summary>
public class HashIndexPrefetchTests
{
    private readonly struct Never : IKeyMatcher
    {
        public bool Matches(int value, in FlowKey key) => false;
    }

    [Fact]
    public void Stage_two_finds_entries_displaced_within_the_home_line()
    {
        const int lines = 500;
        var index = new HashIndex<Never>(100_000, default);
        Assert.Equal(0, index.Slots % 8);
        int lineCount = index.Slots / 8;
        var rnd = new Random(23);
        var used = new HashSet<int>();
        int tried = 0, found = 0, missed = 0, wrong = 0, value = 0;
        for (int n = 0; n < lines; n++)
        {
            // Eleven hashes h, h + 1, ... that share a home line (the hash scaled to the line count)
            // whose line and the next are empty: the first eight fill the line, displaced by one
            // slot after another; the last three spill into the next line.
            uint h = (uint)rnd.NextInt64(1, uint.MaxValue - 16);
            int line = (int)(((ulong)h * (uint)lineCount) >> 32);
            if (((ulong)(h + 10) * (uint)lineCount) >> 32 != (ulong)line || line + 2 >= lineCount
                || used.Contains(line - 1) || used.Contains(line) || used.Contains(line + 1) || used.Contains(line + 2))
            {
                continue;
            }
            used.Add(line);
            used.Add(line + 1);
            tried++;
            int first = value;
            for (uint k = 0; k < 11; k++)
            {
                Assert.True(index.Insert(h + k, value++));
            }
            for (uint k = 0; k < 11; k++)
            {
                int v = index.Prefetch(h + k, value: true);
                if (k < 8)
                {
                    found += v == first + (int)k ? 1 : 0;
                }
                else
                {
                    missed += v == -1 ? 1 : 0;
                }
                wrong += v >= 0 && v != first + (int)k ? 1 : 0;
            }
        }
        Assert.True(tried > lines / 2, $"only {tried} empty line pairs drawn");
        Assert.Equal(0, wrong);
        // Every entry in the home line is found (reading only the home slot would find one in eight);
        // an entry in the next line is left alone (reading it would miss, in the prefetch).
        Assert.Equal(8 * tried, found);
        Assert.Equal(3 * tried, missed);
    }

    [Fact]
    public void Stage_two_gives_up_at_an_empty_slot_or_the_end_of_the_line()
    {
        var index = new HashIndex<Never>(1000, default);
        uint h = 0x8000_0000;
        Assert.Equal(-1, index.Prefetch(h, value: true)); // empty table
        // A run of entries of other tags from the home slot on: the key's tag is never named.
        for (uint k = 1; k <= 20; k++)
        {
            Assert.True(index.Insert(h + k, (int)k));
        }
        Assert.Equal(-1, index.Prefetch(h, value: true));
        Assert.Equal(1, index.Prefetch(h + 1, value: true));
    }
}

/// <summary>The session table's big arrays are advised onto transparent huge pages.</summary>
public class LargeArraysTests
{
    [Fact]
    public void Small_arrays_are_ordinary_and_zeroed()
    {
        int[] a = LargeArrays.Allocate<int>(1000);
        Assert.Equal(1000, a.Length);
        Assert.All(a, x => Assert.Equal(0, x));
    }

    [Fact]
    public unsafe void A_large_array_is_zeroed_and_its_whole_huge_pages_are_advised()
    {
        const int length = (12 << 20) / sizeof(ulong);
        ulong[] a = LargeArrays.Allocate<ulong>(length);
        Assert.Equal(length, a.Length);
        for (int i = 0; i < length; i += 4096)
        {
            Assert.Equal(0UL, a[i]);
        }
        if (!OperatingSystem.IsLinux() || !File.Exists("/sys/kernel/mm/transparent_hugepage/enabled")
            || File.ReadAllText("/sys/kernel/mm/transparent_hugepage/enabled").Contains("[never]"))
        {
            return; // nothing to advise on this kernel
        }
        // The first whole 2 MiB page inside the array lies in a mapping marked "hg" (MADV_HUGEPAGE).
        ulong start = (ulong)Unsafe.AsPointer(ref a[0]);
        ulong probe = (start + (2UL << 20) - 1) & ~((2UL << 20) - 1);
        string? flags = null;
        bool inside = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-');
            int space = line.IndexOf(' ');
            if (dash > 0 && space > dash && ulong.TryParse(line.AsSpan(0, dash), System.Globalization.NumberStyles.HexNumber, null, out ulong lo)
                && ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), System.Globalization.NumberStyles.HexNumber, null, out ulong hi))
            {
                inside = lo <= probe && probe < hi;
            }
            else if (inside && line.StartsWith("VmFlags:", StringComparison.Ordinal))
            {
                flags = line;
                break;
            }
        }
        Assert.NotNull(flags);
        Assert.Contains(" hg", flags);
        GC.KeepAlive(a);
    }
}

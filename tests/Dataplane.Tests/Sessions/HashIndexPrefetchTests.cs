using System.Runtime.CompilerServices;
using Natd.Dataplane.Sessions;
using Xunit;

namespace Natd.Dataplane.Tests.Sessions;

/// <summary>
/// Prefetch stage two names the session of a key from its index slot. Linear probing displaces
/// about half the entries of a loaded table from their home slot, so stage two follows the probe
/// run, within the cache line stage one fetched, and never names an entry of another tag.
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
        const int pairs = 2000;
        var index = new HashIndex<Never>(100_000, default);
        var rnd = new Random(23);
        int found = 0, wrong = 0;
        var used = new HashSet<int>();
        for (int i = 0; i < pairs; i++)
        {
            // Hashes h and h + 1 share a home slot (the slot is the hash scaled to the slot count)
            // but not a tag: the second entry lands one slot later.
            uint h = (uint)rnd.NextInt64(1, uint.MaxValue - 1);
            int home = (int)(((ulong)h * (uint)index.Slots) >> 32);
            if (((ulong)(h + 1) * (uint)index.Slots) >> 32 != (ulong)home || !used.Add(home) || !used.Add(home + 1) || used.Contains(home + 2) || used.Contains(home - 1))
            {
                continue;
            }
            Assert.True(index.Insert(h, 2 * i));
            Assert.True(index.Insert(h + 1, 2 * i + 1));
            Assert.Equal(2 * i, index.Prefetch(h, value: true));
            int v = index.Prefetch(h + 1, value: true);
            found += v == 2 * i + 1 ? 1 : 0;
            wrong += v >= 0 && v != 2 * i + 1 ? 1 : 0;
        }
        Assert.Equal(0, wrong);
        // One home slot in eight ends its cache line; the displaced entry then lies in the next line,
        // which stage two leaves alone. Reading only the home slot would find none.
        Assert.True(found > used.Count / 2 * 3 / 4, $"found {found} displaced entries of {used.Count / 2}");
        Assert.True(found < used.Count / 2, "an entry past the home slot's line was read");
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

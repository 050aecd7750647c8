using System.Runtime.CompilerServices;
using Tmds.Linux;

namespace Natd.Dataplane.Sessions;

/// <summary>
/// The session table's big arrays (sessions, index slots) on transparent huge pages where the
/// kernel offers them. A look-up in a table of a million sessions touches a random index slot and
/// a random session: with 4 KiB pages each is also a TLB miss (a page walk, under a hypervisor a
/// two-dimensional one). With 2 MiB pages the TLB covers the whole table.
/// </summary>
internal static class LargeArrays
{
    /// <summary>Arrays smaller than this stay ordinary (a huge page would be mostly empty).</summary>
    public const int MinBytes = 4 << 20;

    /// <summary>A transparent huge page on x86-64 and arm64 (with 4 KiB base pages).</summary>
    public const int HugePage = 2 << 20;

    /// <summary>
    /// A zeroed array of <paramref name="length"/> elements. From <see cref="MinBytes"/> up it is
    /// pinned (it never moves, so the advice holds) and its whole 2 MiB pages are advised
    /// MADV_HUGEPAGE before first touch; where that fails (no THP, not Linux) it is an ordinary
    /// pinned array. Never throws for the advice.
    /// </summary>
    /// <remarks>The type parameter is not called T: the architecture test's analyser takes a
    /// generic parameter for a type of the namespace that declares it, and every other T in the
    /// dataplane would then seem to depend on this one.</remarks>
    public static TElement[] Allocate<TElement>(int length)
        where TElement : unmanaged
        => Allocate<TElement>(length, pinned: false);

    /// <summary>
    /// As <see cref="Allocate{TElement}(int)"/>, but pinned at every size: for a caller that keeps
    /// an address-derived property (a cache-line aligned start) for the array's life.
    /// </summary>
    public static TElement[] AllocatePinned<TElement>(int length)
        where TElement : unmanaged
        => Allocate<TElement>(length, pinned: true);

    private static unsafe TElement[] Allocate<TElement>(int length, bool pinned)
        where TElement : unmanaged
    {
        long bytes = (long)length * sizeof(TElement);
        if (bytes < MinBytes || !OperatingSystem.IsLinux())
        {
            return pinned ? GC.AllocateArray<TElement>(length, pinned: true) : new TElement[length];
        }
        TElement[] array = GC.AllocateArray<TElement>(length, pinned: true);
        nint start = (nint)Unsafe.AsPointer(ref array[0]);
        nint first = (start + HugePage - 1) & ~(nint)(HugePage - 1);
        nint end = (start + (nint)bytes) & ~(nint)(HugePage - 1);
        if (end > first)
        {
            _ = LibC.madvise((void*)first, (size_t)(ulong)(end - first), LibC.MADV_HUGEPAGE);
        }
        return array;
    }
}

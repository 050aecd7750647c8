namespace Natd.Dataplane.Sessions;

/// <summary>
/// How a shard cuts an address's ports into blocks: block <c>i</c> is the ports
/// <c>First + i * Size * step, ..., + (Size - 1) * step</c>, for <c>i</c> below <see cref="PerAddress"/>.
/// </summary>
/// <param name="First">The shard's lowest ordinary port: block 0's low port.</param>
/// <param name="Size">Ports per block.</param>
/// <param name="PerAddress">Whole blocks per address.</param>
public readonly record struct BlockGeometry(int First, int Size, int PerAddress)
{
    /// <summary>The geometry of the ports <paramref name="low"/>..<paramref name="high"/> (host order) owned by <paramref name="shard"/> of <paramref name="shards"/>, in blocks of <paramref name="size"/>.</summary>
    public static BlockGeometry Of(int low, int high, int shard, int shards, int size)
    {
        int first = low + (((shard - low) % shards) + shards) % shards;
        int owned = first > high ? 0 : (high - first) / shards + 1;
        return new BlockGeometry(first, size, owned / size);
    }
}

/// <summary>
/// The port blocks of one shard (port-block allocation, RFC 6888 section 5 and RFC 8158): for each
/// external address, the shard's ordinary-class ports cut into blocks of <see cref="Size"/> ports.
/// A shard owns the ports <c>port % shards == shard</c> (ShardMap.OwnerOfPort), so a block is the
/// ports <c>low, low + step, ..., low + (Size - 1) * step</c> with <see cref="Step"/> = the shard
/// count (RFC 8158 portRangeStepSize): every port of a block is its shard's, blocks of two shards
/// never share a port, and with one shard blocks are contiguous. Ports left over after the last
/// whole block are never handed out in this mode. A block id is <c>address * PerAddress + index</c>.
/// <para>
/// After a reload changed the geometry (<c>nat.port-block.size</c>, or the low end of
/// <c>nat.ports</c>) while blocks were held, those blocks keep theirs until released: they are
/// <em>legacy</em> blocks, ids from <see cref="CurrentCount"/> up, cut by <see cref="Legacy"/>. A
/// held legacy block pins every current block it overlaps, which is not handed out until the last
/// legacy block over it is released; legacy blocks are never handed out again.
/// </para>
/// Preallocated (a few arrays of one entry per block); single threaded.
/// </summary>
public sealed class PortBlocks
{
    private readonly int[] _classUse;   // [class * blocks + block]: mappings of that class in the block (class-major: one protocol's counts sit together)
    private readonly int _blocks;
    private readonly uint[] _owner;     // subscriber (network order) holding the block
    private readonly bool[] _held;
    private readonly int[] _next;       // the owner's list of blocks
    private readonly int[] _free;       // free current blocks per address (neither held nor pinned)
    private readonly int[]? _pins;      // per current block: held legacy blocks overlapping it
    private readonly int _current;      // current blocks; legacy ids follow
    private readonly ulong _perAddressMagic; // ceil(2^64 / PerAddress): a block's address and index without a division (Lemire, Kaser, Kurz 2019)
    private readonly BlockGeometry _legacy;

    /// <summary>Cuts the ports <paramref name="low"/>..<paramref name="high"/> (host order) owned by <paramref name="shard"/> of <paramref name="shards"/> into blocks.</summary>
    /// <param name="addresses">External addresses (pool size).</param>
    /// <param name="low">Lowest ordinary port of the range.</param>
    /// <param name="high">Highest ordinary port of the range.</param>
    /// <param name="shard">This shard.</param>
    /// <param name="shards">Shards sharing the port space (the step between a block's ports).</param>
    /// <param name="size">Ports per block (at least 1).</param>
    /// <param name="legacy">The geometry of blocks held from before a reload (same shards), or null.</param>
    /// <exception cref="ArgumentException">A bad shard, size or range.</exception>
    public PortBlocks(int addresses, int low, int high, int shard, int shards, int size, BlockGeometry? legacy = null)
    {
        if (addresses < 1 || size < 1 || shards < 1 || shard < 0 || shard >= shards || low < 0 || high > 65535)
        {
            throw new ArgumentException($"bad block geometry: {addresses} addresses, ports {low}-{high}, shard {shard} of {shards}, size {size}");
        }
        var g = BlockGeometry.Of(low, high, shard, shards, size);
        Size = size;
        Step = shards;
        First = g.First;
        PerAddress = g.PerAddress;
        Addresses = addresses;
        _current = addresses * PerAddress;
        int blocks = _current;
        if (legacy is { } l)
        {
            _legacy = l;
            Legacy = l;
            blocks += addresses * l.PerAddress;
            _pins = new int[_current];
        }
        _classUse = new int[blocks * PortAllocator.Classes];
        _blocks = blocks;
        _owner = new uint[blocks];
        _held = new bool[blocks];
        _next = new int[blocks];
        EmptySinceMs = new long[blocks];
        NextInterimMs = new long[blocks];
        AllocatedMs = new long[blocks];
        _free = new int[addresses];
        Array.Fill(_free, PerAddress);
        _perAddressMagic = PerAddress > 1 ? ulong.MaxValue / (uint)PerAddress + 1 : 0;
    }

    /// <summary>Ports per (current) block.</summary>
    public int Size { get; }

    /// <summary>Ports between consecutive ports of a block (the shard count).</summary>
    public int Step { get; }

    /// <summary>The shard's lowest ordinary port: block 0's low port.</summary>
    public int First { get; }

    /// <summary>Current blocks per external address in this shard.</summary>
    public int PerAddress { get; }

    /// <summary>External addresses.</summary>
    public int Addresses { get; }

    /// <summary>How new blocks are cut.</summary>
    public BlockGeometry Geometry => new(First, Size, PerAddress);

    /// <summary>How the legacy blocks (held from before a reload) are cut, or null when there are none.</summary>
    public BlockGeometry? Legacy { get; }

    /// <summary>Blocks in all, legacy ones included.</summary>
    public int Count => _held.Length;

    /// <summary>Current blocks (<see cref="Addresses"/> times <see cref="PerAddress"/>): ids below are current, from it up legacy.</summary>
    public int CurrentCount => _current;

    /// <summary>Engine time (ms) a held block's last mapping ended (meaningful while it holds none).</summary>
    public long[] EmptySinceMs { get; }

    /// <summary>Engine time (ms) a held block's next interim record is due.</summary>
    public long[] NextInterimMs { get; }

    /// <summary>Engine time (ms) a held block was allocated to its holder (natctl blocks).</summary>
    public long[] AllocatedMs { get; }

    /// <summary>True for a legacy block (cut by <see cref="Legacy"/>).</summary>
    public bool IsLegacy(int block) => block >= _current;

    /// <summary>The pool index of block <paramref name="block"/>.</summary>
    public int AddressOf(int block) => block < _current ? AddressOfCurrent(block) : (block - _current) / _legacy.PerAddress;

    /// <summary>Ports of the block.</summary>
    public int SizeOf(int block) => block < _current ? Size : _legacy.Size;

    /// <summary>The block's lowest port (host order).</summary>
    public int Low(int block) => block < _current
        ? First + IndexOnAddress(block) * Size * Step
        : _legacy.First + ((block - _current) % _legacy.PerAddress) * _legacy.Size * Step;

    // block % PerAddress for a current block: the new-session path asks it for every port it takes,
    // and two integer divisions cost more there than the rest of the block arithmetic.
    // (The magic of a divisor of 1 does not fit 64 bits: that case divides by nothing.)
    private int IndexOnAddress(int block) => PerAddress == 1 ? 0 : (int)Math.BigMul(_perAddressMagic * (uint)block, (ulong)(uint)PerAddress, out _);

    private int AddressOfCurrent(int block) => PerAddress == 1 ? block : (int)Math.BigMul(_perAddressMagic, (ulong)(uint)block, out _);

    /// <summary>The block's highest port (host order).</summary>
    public int High(int block) => Low(block) + (SizeOf(block) - 1) * Step;

    /// <summary>The block's <paramref name="i"/>-th port (0 to its size - 1).</summary>
    public int PortAt(int block, int i) => Low(block) + i * Step;

    /// <summary>
    /// The block of <paramref name="address"/> holding <paramref name="port"/>: a held legacy block
    /// when one does, else the current block; -1 for a port in no block (another shard's,
    /// privileged, or past the last whole block).
    /// </summary>
    public int BlockOf(int address, int port)
    {
        if (_pins is not null)
        {
            int l = Cut(_legacy, port);
            if (l >= 0 && _held[_current + address * _legacy.PerAddress + l])
            {
                return _current + address * _legacy.PerAddress + l;
            }
        }
        int b = Cut(Geometry, port);
        return b < 0 ? -1 : address * PerAddress + b;
    }

    /// <summary>
    /// The id here of the block of <paramref name="address"/> starting at <paramref name="port"/>
    /// that another <see cref="PortBlocks"/> cut by <paramref name="geometry"/> (a reload carrying
    /// it over): a current block when the cuts agree (same first port and size), a legacy block when
    /// <paramref name="geometry"/> is <see cref="Legacy"/>; -1 when it has no place here.
    /// </summary>
    public int IdOf(BlockGeometry geometry, int address, int port)
    {
        if (geometry.First == First && geometry.Size == Size)
        {
            int b = Cut(Geometry, port);
            return b < 0 ? -1 : address * PerAddress + b;
        }
        if (_pins is not null && geometry.First == _legacy.First && geometry.Size == _legacy.Size)
        {
            int l = Cut(_legacy, port);
            return l < 0 ? -1 : _current + address * _legacy.PerAddress + l;
        }
        return -1;
    }

    private int Cut(BlockGeometry g, int port)
    {
        int d = port - g.First;
        if (g.PerAddress == 0 || d < 0 || d % Step != 0)
        {
            return -1;
        }
        int b = d / Step / g.Size;
        return b < g.PerAddress ? b : -1;
    }

    /// <summary>True while a subscriber holds the block.</summary>
    public bool IsHeld(int block) => _held[block];

    /// <summary>Blocks held, legacy ones included (control path: a walk of every block).</summary>
    public int HeldCount()
    {
        int n = 0;
        foreach (bool h in _held)
        {
            n += h ? 1 : 0;
        }
        return n;
    }

    /// <summary>The subscriber (network order) holding the block.</summary>
    public uint OwnerOf(int block) => _owner[block];

    /// <summary>The next block of the same holder, or -1.</summary>
    public int NextOf(int block) => _next[block];

    /// <summary>Sets the next block of the same holder.</summary>
    public void SetNext(int block, int next) => _next[block] = next;

    /// <summary>Free current blocks of an address.</summary>
    public int FreeOn(int address) => _free[address];

    /// <summary>Mappings of a protocol class in a block.</summary>
    public int ClassUse(int block, int protocolClass) => _classUse[protocolClass * _blocks + block];

    /// <summary>Prefetches the block's count of <paramref name="protocolClass"/> (a hint: a new flow reads it soon).</summary>
    public unsafe void PrefetchUse(int block, int protocolClass)
    {
        if (System.Runtime.Intrinsics.X86.Sse.IsSupported && (uint)block < (uint)_blocks)
        {
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref _classUse[protocolClass * _blocks + block]));
        }
    }

    /// <summary>Mappings of every class in a block.</summary>
    public int Mappings(int block)
    {
        return _classUse[block] + _classUse[_blocks + block] + _classUse[2 * _blocks + block];
    }

    /// <summary>Counts one mapping more (<paramref name="delta"/> 1) or less (-1) in a block; never below 0.</summary>
    public void Use(int block, int protocolClass, int delta)
    {
        ref int u = ref _classUse[protocolClass * _blocks + block];
        u = Math.Max(0, u + delta);
    }

    /// <summary>Takes block <paramref name="block"/> if free (a restored, re-counted or carried block); false when held or pinned.</summary>
    public bool TryTake(int block, uint owner)
    {
        if (_held[block] || (block < _current && _pins is not null && _pins[block] != 0))
        {
            return false;
        }
        Claim(block, owner);
        return true;
    }

    /// <summary>Frees a held block (its mappings must be gone); a legacy block unpins the current blocks it overlapped.</summary>
    public void Return(int block)
    {
        if (!_held[block])
        {
            return;
        }
        _held[block] = false;
        _next[block] = -1;
        if (block < _current)
        {
            _free[AddressOf(block)]++;
        }
        else
        {
            Pin(block, -1);
        }
        _classUse[block] = _classUse[_blocks + block] = _classUse[2 * _blocks + block] = 0;
    }

    private void Claim(int b, uint owner)
    {
        _held[b] = true;
        _owner[b] = owner;
        _next[b] = -1;
        if (b < _current)
        {
            _free[AddressOf(b)]--;
        }
        else
        {
            Pin(b, 1);
        }
    }

    /// <summary>Pins (<paramref name="delta"/> 1) or unpins (-1) the current blocks legacy block <paramref name="b"/> overlaps.</summary>
    private void Pin(int b, int delta)
    {
        int a = AddressOf(b);
        int lo = Math.Max(Low(b), First), hi = High(b);
        if (PerAddress == 0 || hi < First)
        {
            return;
        }
        int from = (lo - First) / Step / Size;
        int to = Math.Min((hi - First) / Step / Size, PerAddress - 1);
        for (int k = from; k <= to; k++)
        {
            int c = a * PerAddress + k;
            int before = _pins![c];
            _pins[c] = before + delta;
            if (!_held[c] && (before == 0) != (_pins[c] == 0))
            {
                _free[a] -= delta; // became pinned: one free block less; unpinned: one more
            }
        }
    }
}

namespace Natd.Dataplane.Sessions;

/// <summary>
/// The port blocks of one shard (port-block allocation, RFC 6888 section 5 and RFC 8158): for each
/// external address, the shard's ordinary-class ports cut into blocks of <see cref="Size"/> ports.
/// A shard owns the ports <c>port % shards == shard</c> (ShardMap.OwnerOfPort), so a block is the
/// ports <c>low, low + step, ..., low + (Size - 1) * step</c> with <see cref="Step"/> = the shard
/// count (RFC 8158 portRangeStepSize): every port of a block is its shard's, blocks of two shards
/// never share a port, and with one shard blocks are contiguous. Ports left over after the last
/// whole block are never handed out in this mode. A block id is <c>address * PerAddress + index</c>.
/// Preallocated (a few arrays of one entry per block); single threaded.
/// </summary>
public sealed class PortBlocks
{
    private readonly int[] _classUse;   // [block * Classes + class]: mappings of that class in the block
    private readonly uint[] _owner;     // subscriber (network order) holding the block
    private readonly bool[] _held;
    private readonly int[] _next;       // the owner's list of blocks
    private readonly int[] _free;       // free blocks per address

    /// <summary>Cuts the ports <paramref name="low"/>..<paramref name="high"/> (host order) owned by <paramref name="shard"/> of <paramref name="shards"/> into blocks.</summary>
    /// <param name="addresses">External addresses (pool size).</param>
    /// <param name="low">Lowest ordinary port of the range.</param>
    /// <param name="high">Highest ordinary port of the range.</param>
    /// <param name="shard">This shard.</param>
    /// <param name="shards">Shards sharing the port space (the step between a block's ports).</param>
    /// <param name="size">Ports per block (at least 1).</param>
    /// <exception cref="ArgumentException">A bad shard, size or range.</exception>
    public PortBlocks(int addresses, int low, int high, int shard, int shards, int size)
    {
        if (addresses < 1 || size < 1 || shards < 1 || shard < 0 || shard >= shards || low < 0 || high > 65535)
        {
            throw new ArgumentException($"bad block geometry: {addresses} addresses, ports {low}-{high}, shard {shard} of {shards}, size {size}");
        }
        Size = size;
        Step = shards;
        First = low + (((shard - low) % shards) + shards) % shards;
        int owned = First > high ? 0 : (high - First) / shards + 1;
        PerAddress = owned / size;
        Addresses = addresses;
        int blocks = addresses * PerAddress;
        _classUse = new int[blocks * PortAllocator.Classes];
        _owner = new uint[blocks];
        _held = new bool[blocks];
        _next = new int[blocks];
        EmptySinceMs = new long[blocks];
        NextInterimMs = new long[blocks];
        AllocatedMs = new long[blocks];
        _free = new int[addresses];
        Array.Fill(_free, PerAddress);
    }

    /// <summary>Ports per block.</summary>
    public int Size { get; }

    /// <summary>Ports between consecutive ports of a block (the shard count).</summary>
    public int Step { get; }

    /// <summary>The shard's lowest ordinary port: block 0's low port.</summary>
    public int First { get; }

    /// <summary>Blocks per external address in this shard.</summary>
    public int PerAddress { get; }

    /// <summary>External addresses.</summary>
    public int Addresses { get; }

    /// <summary>Blocks in all (<see cref="Addresses"/> times <see cref="PerAddress"/>).</summary>
    public int Count => _held.Length;

    /// <summary>Engine time (ms) a held block's last mapping ended (meaningful while it holds none).</summary>
    public long[] EmptySinceMs { get; }

    /// <summary>Engine time (ms) a held block's next interim record is due.</summary>
    public long[] NextInterimMs { get; }

    /// <summary>Engine time (ms) a held block was allocated to its holder (natctl blocks).</summary>
    public long[] AllocatedMs { get; }

    /// <summary>The pool index of block <paramref name="block"/>.</summary>
    public int AddressOf(int block) => block / PerAddress;

    /// <summary>The block's lowest port (host order).</summary>
    public int Low(int block) => First + (block % PerAddress) * Size * Step;

    /// <summary>The block's highest port (host order).</summary>
    public int High(int block) => Low(block) + (Size - 1) * Step;

    /// <summary>The block's <paramref name="i"/>-th port (0 to <see cref="Size"/> - 1).</summary>
    public int PortAt(int block, int i) => Low(block) + i * Step;

    /// <summary>The block of <paramref name="address"/> holding <paramref name="port"/>, or -1 for a port in no block (another shard's, privileged, or past the last whole block).</summary>
    public int BlockOf(int address, int port)
    {
        int d = port - First;
        if (PerAddress == 0 || d < 0 || d % Step != 0)
        {
            return -1;
        }
        int b = d / Step / Size;
        return b < PerAddress ? address * PerAddress + b : -1;
    }

    /// <summary>True while a subscriber holds the block.</summary>
    public bool IsHeld(int block) => _held[block];

    /// <summary>The subscriber (network order) holding the block.</summary>
    public uint OwnerOf(int block) => _owner[block];

    /// <summary>The next block of the same holder, or -1.</summary>
    public int NextOf(int block) => _next[block];

    /// <summary>Sets the next block of the same holder.</summary>
    public void SetNext(int block, int next) => _next[block] = next;

    /// <summary>Free blocks of an address.</summary>
    public int FreeOn(int address) => _free[address];

    /// <summary>Mappings of a protocol class in a block.</summary>
    public int ClassUse(int block, int protocolClass) => _classUse[block * PortAllocator.Classes + protocolClass];

    /// <summary>Mappings of every class in a block.</summary>
    public int Mappings(int block)
    {
        int i = block * PortAllocator.Classes;
        return _classUse[i] + _classUse[i + 1] + _classUse[i + 2];
    }

    /// <summary>Counts one mapping more (<paramref name="delta"/> 1) or less (-1) in a block; never below 0.</summary>
    public void Use(int block, int protocolClass, int delta)
    {
        ref int u = ref _classUse[block * PortAllocator.Classes + protocolClass];
        u = Math.Max(0, u + delta);
    }

    /// <summary>
    /// Takes a free block of <paramref name="address"/> for <paramref name="owner"/>: the first free
    /// one from a random start (<paramref name="random"/>), so a block's position tells nothing of
    /// the order subscribers came in. Returns the block id or -1 when the address has none free.
    /// </summary>
    public int Take(int address, uint owner, ulong random)
    {
        if (_free[address] == 0)
        {
            return -1;
        }
        int start = (int)(random % (ulong)PerAddress);
        for (int i = 0; i < PerAddress; i++)
        {
            int b = address * PerAddress + (start + i) % PerAddress;
            if (!_held[b])
            {
                Claim(b, owner);
                return b;
            }
        }
        return -1;
    }

    /// <summary>Takes block <paramref name="block"/> if free (a restored or re-counted mapping's block); false when held.</summary>
    public bool TryTake(int block, uint owner)
    {
        if (_held[block])
        {
            return false;
        }
        Claim(block, owner);
        return true;
    }

    /// <summary>Frees a held block (its mappings must be gone).</summary>
    public void Return(int block)
    {
        if (!_held[block])
        {
            return;
        }
        _held[block] = false;
        _next[block] = -1;
        _free[AddressOf(block)]++;
        int i = block * PortAllocator.Classes;
        _classUse[i] = _classUse[i + 1] = _classUse[i + 2] = 0;
    }

    private void Claim(int b, uint owner)
    {
        _held[b] = true;
        _owner[b] = owner;
        _next[b] = -1;
        _free[AddressOf(b)]--;
    }
}

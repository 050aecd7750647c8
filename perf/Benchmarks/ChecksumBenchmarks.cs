using System.Runtime.CompilerServices;
using BenchmarkDotNet.Attributes;
using Natd.Benchmarks.Support;
using Natd.Dataplane.Packets;

namespace Natd.Benchmarks;

/// <summary>
/// RFC 1071 checksum over an IPv4 header (20 bytes), a small packet (64) and a full-size one
/// (1500): <see cref="Checksum.Compute"/> (8-byte loads added as 32-bit halves, no carry tests) against the textbook
/// loop over 16-bit big-endian words built from bytes.
/// </summary>
[BenchmarkCategory(Categories.FastPath)]
[OperationUnit("buffer")]
public class ChecksumBenchmarks
{
    private byte[] _data = null!;

    /// <summary>Bytes summed.</summary>
    [Params(20, 64, 1500)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Size];
        new Random(7).NextBytes(_data);
    }

    /// <summary>The textbook loop: one 16-bit word from two bytes per step.</summary>
    [Benchmark(Baseline = true)]
    public ushort NaiveByteLoop() => NaiveChecksum.Compute(_data);

    /// <summary>The dataplane's checksum.</summary>
    [Benchmark]
    public ushort Compute() => Checksum.Compute(_data);
}

/// <summary>
/// Rewriting the source address of an IPv4 header and fixing its checksum, for a batch of 64
/// headers (what NAT does per packet): a full recompute with the textbook loop (baseline), a full
/// recompute with <see cref="Checksum.Compute"/>, RFC 1624 <see cref="Checksum.Update(ushort, uint, uint)"/>,
/// and <see cref="Checksum.ApplyDelta"/> with the session's precomputed delta. Invocations
/// alternate between two addresses so every variant does the same work each time.
/// </summary>
[BenchmarkCategory(Categories.FastPath)]
[OperationUnit("header")]
public class ChecksumUpdateBenchmarks
{
    private const int Headers = 64;
    private const int HeaderLength = 20;
    private static readonly uint AddressA = Ipv4.Parse("10.16.3.7");
    private static readonly uint AddressB = Ipv4.Parse("198.51.100.77");
    private readonly ushort[] _delta = new ushort[2];
    private byte[] _headers = null!;
    private int _flip;

    [GlobalSetup]
    public void Setup()
    {
        _headers = new byte[Headers * HeaderLength];
        for (int i = 0; i < Headers; i++)
        {
            Span<byte> h = _headers.AsSpan(i * HeaderLength, HeaderLength);
            h[0] = 0x45;
            var ip = new Ipv4Header(h);
            ip.TotalLength = 46 + i;
            ip.Identification = (ushort)(i * 7919);
            ip.Ttl = 64;
            ip.Protocol = IpProtocol.Udp;
            ip.Source = AddressA;
            ip.Destination = Ipv4.Parse("203.0.113.1") + (uint)(i << 24);
            ip.ChecksumRaw = Checksum.Compute(h);
        }
        _delta[0] = Checksum.Delta(AddressA, AddressB, 0, 0);
        _delta[1] = Checksum.Delta(AddressB, AddressA, 0, 0);

        // Self-check: each variant, run there and back, must leave valid checksums.
        Func<int>[] variants = [NaiveRecompute, Recompute, Update, ApplyDelta];
        foreach (var run in variants)
        {
            for (int k = 0; k < 2; k++)
            {
                run();
                if (!AllValid())
                {
                    throw new InvalidOperationException($"{run.Method.Name} left a bad IPv4 header checksum");
                }
            }
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Headers)]
    public int NaiveRecompute()
    {
        uint to = NextAddress(out _);
        int acc = 0;
        for (int i = 0; i < Headers; i++)
        {
            Span<byte> h = _headers.AsSpan(i * HeaderLength, HeaderLength);
            var ip = new Ipv4Header(h);
            ip.Source = to;
            ip.ChecksumRaw = 0;
            ushort c = NaiveChecksum.Compute(h);
            // The naive sum is host order; store it in wire order like the real field.
            h[10] = (byte)(c >> 8);
            h[11] = (byte)c;
            acc += c;
        }
        return acc;
    }

    [Benchmark(OperationsPerInvoke = Headers)]
    public int Recompute()
    {
        uint to = NextAddress(out _);
        int acc = 0;
        for (int i = 0; i < Headers; i++)
        {
            Span<byte> h = _headers.AsSpan(i * HeaderLength, HeaderLength);
            var ip = new Ipv4Header(h);
            ip.Source = to;
            ip.ChecksumRaw = 0;
            ushort c = Checksum.Compute(h);
            ip.ChecksumRaw = c;
            acc += c;
        }
        return acc;
    }

    [Benchmark(OperationsPerInvoke = Headers)]
    public int Update()
    {
        uint to = NextAddress(out uint from);
        int acc = 0;
        for (int i = 0; i < Headers; i++)
        {
            var ip = new Ipv4Header(_headers.AsSpan(i * HeaderLength, HeaderLength));
            ip.Source = to;
            ushort c = Checksum.Update(ip.ChecksumRaw, from, to);
            ip.ChecksumRaw = c;
            acc += c;
        }
        return acc;
    }

    [Benchmark(OperationsPerInvoke = Headers)]
    public int ApplyDelta()
    {
        ushort delta = _delta[_flip];
        uint to = NextAddress(out _);
        int acc = 0;
        for (int i = 0; i < Headers; i++)
        {
            var ip = new Ipv4Header(_headers.AsSpan(i * HeaderLength, HeaderLength));
            ip.Source = to;
            ushort c = Checksum.ApplyDelta(ip.ChecksumRaw, delta);
            ip.ChecksumRaw = c;
            acc += c;
        }
        return acc;
    }

    private bool AllValid()
    {
        for (int i = 0; i < Headers; i++)
        {
            if (!Checksum.Verify(_headers.AsSpan(i * HeaderLength, HeaderLength)))
            {
                return false;
            }
        }
        return true;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint NextAddress(out uint from)
    {
        int f = _flip;
        _flip = f ^ 1;
        from = f == 0 ? AddressA : AddressB;
        return f == 0 ? AddressB : AddressA;
    }
}

/// <summary>The textbook RFC 1071 loop, the baseline the dataplane's checksum is compared with.</summary>
public static class NaiveChecksum
{
    /// <summary>Checksum field value in host order (write it big-endian).</summary>
    public static ushort Compute(ReadOnlySpan<byte> data)
    {
        uint sum = 0;
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += (uint)((data[i] << 8) | data[i + 1]);
        }
        if (i < data.Length)
        {
            sum += (uint)(data[i] << 8);
        }
        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }
}

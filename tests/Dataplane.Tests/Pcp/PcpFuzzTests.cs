using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;
using Natd.Tests.Support;
using static Natd.Tests.Pcp.PcpKit;

namespace Natd.Tests.Pcp;

/// <summary>
/// Property fuzz of the PCP/NAT-PMP server: random datagrams and mutated valid requests never
/// throw, silence only where RFC 6887 section 8.3 and RFC 6886 allow it, and every reply is well
/// formed: PCP version 2, R bit and opcode echoed, a known result code, the epoch time, zero
/// reserved bytes, a multiple of 4 between 24 and 1100 bytes; NAT-PMP version 0, opcode + 128,
/// its fixed length and a known result.
/// </summary>
public class PcpFuzzTests
{
    private static readonly byte[][] Seeds =
    [
        Hex(Map(3600, EngineHarness.InsideHost, IpProtocol.Tcp, 8080, 8080)),
        Hex(Map(3600, EngineHarness.InsideHost, IpProtocol.Udp, 5000, 0, options: Filter(32, 0, "198.51.100.2") + PreferFailure)),
        Hex(Map(0, EngineHarness.InsideHost, IpProtocol.Udp, 5000)),
        Hex(Map(600, EngineHarness.InsideHost, IpProtocol.Tcp, 80, options: ThirdParty("10.0.0.3") + "80 00 0004 01020304")),
        Hex(Peer(600, EngineHarness.InsideHost, IpProtocol.Tcp, 40000, "198.51.100.2", 443)),
        Hex("02 00 0000 00000000" + Mapped(EngineHarness.InsideHost)),
        Hex("00 00"),
        Hex("00 01 0000 1388 1388 00000e10"),
        Hex("00 02 0000 0050 1f90 00000000"),
    ];

    private static Gen<byte[]> RandomBytes =>
        from len in Gen.Choose(0, 1200)
        from bytes in Gen.ArrayOf(Gen.Choose(0, 255).Select(i => (byte)i), len)
        from version in Gen.Elements(-1, 0, 2, 2, 2)
        select version < 0 || bytes.Length == 0 ? bytes : WithVersion(bytes, (byte)version);

    private static byte[] WithVersion(byte[] b, byte v)
    {
        b[0] = v;
        return b;
    }

    private static Gen<byte[]> Mutated =>
        from seed in Gen.Elements(Seeds)
        from flips in Gen.ArrayOf(Gen.Choose(0, 4096).Zip(Gen.Choose(0, 255)), 4)
        from cut in Gen.Choose(-8, 8)
        from extra in Gen.ArrayOf(Gen.Choose(0, 255).Select(i => (byte)i), 8)
        select Mutate(seed, flips, cut, extra);

    private static byte[] Mutate(byte[] seed, (int Pos, int Value)[] flips, int cut, byte[] extra)
    {
        var b = new List<byte>(seed);
        foreach (var (pos, value) in flips.Take(flips.Length > 0 ? 1 + flips[0].Pos % flips.Length : 0))
        {
            if (b.Count > 0)
            {
                b[pos % b.Count] = (byte)value;
            }
        }
        if (cut < 0)
        {
            b.RemoveRange(Math.Max(0, b.Count + cut), Math.Min(b.Count, -cut));
        }
        else
        {
            b.AddRange(extra.Take(cut));
        }
        return [.. b];
    }

    [Fact]
    public void Random_datagrams_get_silence_or_a_well_formed_reply() => Check(RandomBytes);

    [Fact]
    public void Mutated_requests_get_silence_or_a_well_formed_reply() => Check(Mutated);

    private static void Check(Gen<byte[]> gen)
    {
        var h = Harness(p => p with { ThirdParty = true });
        var buffer = new byte[2048];
        long start = h.Now + 1234; // the epoch starts with the first request
        var property = Prop.ForAll(gen.ToArbitrary(), request =>
        {
            h.Now += 1234;
            Array.Clear(buffer);
            request.CopyTo(buffer, 0);
            int n = h.Engine.AnswerPcpForTest(buffer, request.Length, Ipv4.Parse(EngineHarness.InsideHost), h.Now, out PcpOutcome outcome);
            uint epoch = (uint)((h.Now - start) / 1000);
            return WellFormed(request, buffer.AsSpan(0, Math.Max(n, 0)).ToArray(), n, outcome, epoch).Label($"{ToHex(request)} -> {(n < 0 ? "silence" : ToHex(buffer.AsSpan(0, n)))} ({outcome})");
        });
        FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(3000), property);
    }

    private static bool WellFormed(byte[] req, byte[] reply, int n, PcpOutcome outcome, uint epoch)
    {
        if (n < 0)
        {
            bool silentAllowed = req.Length < 2 || (req[0] != 0 && (req[1] & 0x80) != 0) || (req[0] == 0 && req[1] >= 128)
                || (req[0] == 0 && req[1] is 1 or 2 && req.Length < 12);
            return silentAllowed && outcome is PcpOutcome.Dropped or PcpOutcome.NatPmpMalformed;
        }
        bool epochOk = BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(req[0] == 0 ? 4 : 8)) == epoch;
        if (req[0] == 0)
        {
            int expected = req[1] switch { 0 => 12, 1 or 2 => 16, _ => 8 };
            ushort result = BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(2));
            return n == expected && reply[0] == 0 && reply[1] == (req[1] | 0x80) && result <= 5 && epochOk;
        }
        bool header = n >= 24 && n <= 1100 && (n & 3) == 0 && reply[0] == 2 && reply[2] == 0
            && reply[1] == (0x80 | (req[1] & 0x7F)) && reply[3] <= 13 && reply.AsSpan(12, 12).IndexOfAnyExcept((byte)0) < 0 && epochOk;
        bool versionRule = req[0] == 2 || (reply[3] == (byte)PcpResultCode.UnsuppVersion && n == 24);
        bool success = reply[3] != 0 || n >= (req[1] & 0x7F) switch { 1 => 60, 2 => 80, _ => 24 };
        return header && versionRule && success && outcome == (PcpOutcome)reply[3];
    }
}

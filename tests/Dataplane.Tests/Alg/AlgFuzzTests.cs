using System.Text;
using FsCheck;
using FsCheck.Fluent;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Ftp;
using Natd.Dataplane.Alg.Irc;
using Natd.Dataplane.Alg.Tftp;
using Natd.Dataplane.Packets;
using static Natd.Tests.Alg.AlgFrames;

namespace Natd.Tests.Alg;

/// <summary>
/// Fuzz-style properties per ALG (fixed seeds): sessions of valid, mutated and garbage lines,
/// split and retransmitted segments. Whatever the input, the handler does not throw, every frame
/// it emits has valid checksums, the receiver's byte stream is consistent (a retransmission
/// carries the same bytes at the same wire sequence numbers), acknowledgments map back to the
/// sender's numbering (short of bytes natd holds), unedited payloads carry the sender's bytes
/// (held ones moved to the frame that completes their line), and an expectation always names the
/// control connection's inside host (and, for FTP and TFTP, its server).
/// </summary>
public class AlgFuzzTests
{
    /// <summary>One step of a session. Action 0: new segment, 1: retransmit the direction's last segment, 2: split in two.</summary>
    public record Step(bool Out2In, byte[] Payload, int Action, int SplitAt, int Reserved)
    {
        public override string ToString() => $"{(Out2In ? "<-" : "->")} a{Action} r{Reserved} \"{Encoding.Latin1.GetString(Payload).Replace("\r", "\\r").Replace("\n", "\\n").Replace("\u0001", "\\1")}\"";
    }

    private static readonly Gen<byte> AnyByte = Gen.Frequency(
        (3, Gen.Choose(32, 126)), (1, Gen.Elements(0, 1, 10, 13, 32, 44, 124, 40, 41)), (1, Gen.Choose(0, 255))).Select(i => (byte)i);

    private static readonly Gen<byte[]> Garbage = Gen.Choose(0, 40).SelectMany(n => Gen.ArrayOf(AnyByte, n));

    private static readonly Gen<int> Octet = Gen.Frequency((6, Gen.Choose(0, 255)), (1, Gen.Choose(256, 9999)));

    private static readonly Gen<int> PortNumber = Gen.Frequency((6, Gen.Choose(1, 65535)), (1, Gen.Elements(0, 65536, 99999, 1234567)));

    private static Gen<string> Address(char sep) =>
        Gen.Frequency(
            (4, Gen.Elements(Inside, External, Remote, ThirdParty, "0.0.0.0", "255.255.255.255")),
            (1, from a in Octet from b in Octet from c in Octet from d in Octet select $"{a}.{b}.{c}.{d}"))
        .Select(s => s.Replace('.', sep));

    private static readonly Gen<string> FtpLines = Gen.OneOf(
        from a in Address(',') from p in PortNumber from cmd in Gen.Elements("PORT ", "port ", "PORT  ", "PORT")
        select $"{cmd}{a},{p >> 8},{p & 255}\r\n",
        from d in Gen.Elements('|', '!', '1', '.', ' ', '#', '\u0001') from proto in Gen.Elements("1", "1", "2", "3", "")
        from a in Address('.') from p in PortNumber
        select $"EPRT {d}{proto}{d}{a}{d}{p}{d}\r\n",
        from a in Address(',') from p in PortNumber from text in Gen.Elements("Entering Passive Mode (", "=", "ok ", "v2 (")
        select $"227 {text}{a},{p >> 8},{p & 255})\r\n",
        from d in Gen.Elements('|', '!', '(') from p in PortNumber select $"229 Entering Extended Passive Mode ({d}{d}{d}{p}{d})\r\n",
        Gen.Elements("LIST\r\n", "USER anonymous\r\n", "PASV\r\n", "EPSV\r\n", "150 Here comes the list\r\n", "226 ok\r\n", "PORT\r\n", "227\r\n"));

    private static readonly Gen<string> IrcLines = Gen.OneOf(
        from prefix in Gen.Elements("", ":alice!a@h ", ":x ")
        from cmd in Gen.Elements("PRIVMSG", "privmsg", "NOTICE")
        from type in Gen.Elements("SEND", "CHAT", "send", "RESUME")
        from file in Gen.Elements("f", "chat", "\"my file.txt\"", "\"open", "")
        from ip in Gen.Frequency((3, Gen.Elements("167772162", "167772163", "3325256705", "0", "10.0.0.2", "4294967296")),
            (1, Gen.Choose(0, int.MaxValue).Select(i => i.ToString())))
        from port in PortNumber
        from tail in Gen.Elements("", " 1234", " 1234 77", " x")
        from close in Gen.Elements("\u0001", "\u0001", "")
        select $"{prefix}{cmd} bob :\u0001DCC {type} {file} {ip} {port}{tail}{close}\r\n",
        Gen.Elements("PING :irc\r\n", "PRIVMSG #c :hello DCC\r\n", "NICK me\r\n", "PRIVMSG bob :\u0001ACTION x\u0001\r\n"));

    /// <summary>A template line, sometimes with garbage around it and a few byte edits, or plain garbage.</summary>
    private static Gen<byte[]> Payloads(Gen<string> lines) =>
        Gen.Frequency(
            (4, lines.Select(Bytes)),
            (3, from line in lines
                from prefix in Gen.Frequency((3, Gen.Constant(Array.Empty<byte>())), (1, Garbage))
                from suffix in Gen.Frequency((2, Gen.Constant(Array.Empty<byte>())), (1, Garbage))
                from n in Gen.Choose(0, 3)
                from edits in Gen.ArrayOf(from kind in Gen.Choose(0, 2) from pos in Gen.Choose(0, 1000) from b in AnyByte select (kind, pos, b), n)
                select Mutate([.. prefix, .. Bytes(line), .. suffix], edits)),
            (1, Gen.Choose(0, 20).SelectMany(n => Gen.ArrayOf(lines, n)).Select(ls => Bytes(string.Concat(ls)))), // overlong batches
            (1, Garbage.Where(g => g.Length > 0)));

    private static byte[] Mutate(byte[] data, (int kind, int pos, byte b)[] edits)
    {
        var l = data.ToList();
        foreach (var (kind, pos, b) in edits)
        {
            int p = l.Count == 0 ? 0 : pos % (l.Count + (kind == 1 ? 1 : 0));
            if (kind == 0 && l.Count > 0) l[p % l.Count] = b;
            else if (kind == 1) l.Insert(Math.Min(p, l.Count), b);
            else if (l.Count > 1) l.RemoveAt(p % l.Count);
        }
        return l.Count == 0 ? [(byte)'x'] : [.. l];
    }

    private static Arbitrary<Step[]> Sessions(Gen<string> lines)
    {
        var step = from out2In in Gen.Elements(false, false, true)
                   from payload in Payloads(lines)
                   from action in Gen.Frequency((5, Gen.Constant(0)), (2, Gen.Constant(1)), (2, Gen.Constant(2)))
                   from split in Gen.Choose(0, 10_000)
                   from reserved in Gen.Frequency((5, Gen.Choose(1024, 65535)), (1, Gen.Constant(0)))
                   select new Step(out2In, payload, action, split, reserved);
        return Gen.Choose(1, 12).SelectMany(n => Gen.ArrayOf(step, n)).ToArbitrary();
    }

    [Fact]
    public void Ftp_sessions_never_throw_keep_streams_consistent_and_open_nothing_for_third_parties()
        => Check.One(Fuzz(400, 0xF7F), Prop.ForAll(Sessions(FtpLines), steps => RunSession(new FtpHandler(), 21, steps, (e, dir, reserved, c) =>
        {
            Assert.Equal(c.InsideAddress, e.InsideAddress);
            Assert.Equal(c.RemoteAddress, e.RemoteAddress);
            Assert.Equal(IpProtocol.Tcp, e.Protocol);
            if (e.Kind == ExpectationKind.Inbound)
            {
                Assert.Equal(AlgDirection.In2Out, dir);
                Assert.True(e.UsesReservedPort && reserved != 0 && e.ExternalPort == reserved && e.InsidePort != 0);
            }
            else
            {
                Assert.Equal(AlgDirection.Out2In, dir);
                Assert.True(e.RemotePort != 0 && e.InsidePort == 0 && !e.UsesReservedPort);
            }
        }, "10,0,0,2,", ".10.0.0.2.", "|10.0.0.2|", "!10.0.0.2!", "#10.0.0.2#")));

    // A server inside behind a forward: its 227/229 (in2out) get the reserved port and an inbound
    // expectation from the client only; the client's PORT/EPRT (out2in) only mark related.
    // A 229 names no host, so any 229 may open one (to the server's own address, from the client).
    [Fact]
    public void Ftp_server_inside_sessions_never_throw_keep_streams_consistent_and_open_nothing_for_third_parties()
        => Check.One(Fuzz(400, 0x5E7), Prop.ForAll(Sessions(FtpLines), steps => RunSession(new FtpHandler(), 21, outsideOpens: true, steps, (e, dir, reserved, c) =>
        {
            Assert.Equal(c.InsideAddress, e.InsideAddress);
            Assert.Equal(c.RemoteAddress, e.RemoteAddress);
            Assert.Equal(IpProtocol.Tcp, e.Protocol);
            if (e.Kind == ExpectationKind.Inbound)
            {
                Assert.Equal(AlgDirection.In2Out, dir);
                Assert.True(e.UsesReservedPort && reserved != 0 && e.ExternalPort == reserved && e.InsidePort != 0 && e.RemotePort == 0);
            }
            else
            {
                Assert.Equal(AlgDirection.Out2In, dir);
                Assert.True(e.RemotePort != 0 && e.InsidePort == 0 && !e.UsesReservedPort);
            }
        }, "10,0,0,2,", "229 ")));

    [Fact]
    public void Irc_sessions_never_throw_keep_streams_consistent_and_open_nothing_for_third_parties()
        => Check.One(Fuzz(400, 0x1BC), Prop.ForAll(Sessions(IrcLines), steps => RunSession(new IrcHandler(), 6667, steps, (e, dir, reserved, c) =>
        {
            Assert.Equal(c.InsideAddress, e.InsideAddress);
            Assert.Equal(AlgDirection.In2Out, dir);
            Assert.Equal((ExpectationKind.Inbound, IpProtocol.Tcp, 0u, (ushort)0), (e.Kind, e.Protocol, e.RemoteAddress, e.RemotePort));
            Assert.True(e.UsesReservedPort && reserved != 0 && e.ExternalPort == reserved && e.InsidePort != 0);
        }, " 167772162 ")));

    [Fact]
    public void Tftp_datagrams_never_throw_are_never_changed_and_expect_only_the_server()
    {
        var requests =
            from op in Gen.Frequency((4, Gen.Elements(1, 2)), (1, Gen.Choose(0, 7)), (1, Gen.Choose(0, 65535)))
            from name in Gen.Elements("f", "", "boot/pxelinux.0", "a\u0000b")
            from mode in Gen.Elements("octet", "NETASCII", "mail", "binary", "", "octet\u0000blksize\u00001468")
            from term in Gen.Elements("\u0000", "", "\u0000x")
            select (byte[])[(byte)(op >> 8), (byte)op, .. Bytes($"{name}\u0000{mode}{term}")];
        var gen = from out2In in Gen.Elements(false, false, true)
                  from payload in Gen.Frequency((4, requests), (2, from r in requests from n in Gen.Choose(1, 3)
                      from edits in Gen.ArrayOf(from k in Gen.Choose(0, 2) from p in Gen.Choose(0, 100) from b in AnyByte select (k, p, b), n)
                      select Mutate(r, edits)), (1, Garbage))
                  select (out2In, payload);
        var conn = Connection(IpProtocol.Udp, 69);
        var h = new TftpHandler();
        var a = new AlgActions();
        Check.One(Fuzz(1000, 0x7F7), Prop.ForAll(gen.ToArbitrary(), t =>
        {
            var dir = t.out2In ? AlgDirection.Out2In : AlgDirection.In2Out;
            var f = Udp(dir, t.payload, conn);
            var o = Run(h, dir, f, a, reservedPort: 40001, conn: conn);
            Assert.Equal(f, o);
            foreach (var e in a.Expectations)
            {
                Assert.Equal(AlgDirection.In2Out, dir);
                Assert.Equal(new ExpectationRequest(ExpectationKind.Inbound, IpProtocol.Udp, conn.RemoteAddress, 0, conn.ExternalPort,
                    conn.InsideAddress, conn.InsidePort, false), e);
            }
            Assert.True(a.Expectations.Count <= 1);
        }));
    }

    [Fact]
    public void Mangled_frames_never_throw()
    {
        IAlgHandler[] handlers = [new FtpHandler(), new IrcHandler(), new TftpHandler()];
        var gen = from payload in Payloads(Gen.OneOf(FtpLines, IrcLines))
                  from udp in Gen.Elements(false, true)
                  from n in Gen.Choose(0, 6)
                  from edits in Gen.ArrayOf(from pos in Gen.Choose(0, 80) from b in Gen.Choose(0, 255) select (pos, (byte)b), n)
                  from cut in Gen.Choose(0, 100)
                  from h in Gen.Choose(0, 2)
                  from dir in Gen.Elements(AlgDirection.In2Out, AlgDirection.Out2In)
                  select (payload, udp, edits, cut, h, dir);
        var a = new AlgActions();
        Check.One(Fuzz(2000, 0xBAD), Prop.ForAll(gen.ToArbitrary(), t =>
        {
            var f = t.udp ? Udp(AlgDirection.In2Out, t.payload) : Tcp(t.dir, 0x18, 1001, 5001, t.payload);
            foreach (var (pos, b) in t.edits)
            {
                f[Math.Min(pos, f.Length - 1)] = b; // headers mostly: lengths, offsets, protocol
            }
            f = f[..Math.Max(0, f.Length - t.cut)];
            var buffer = new byte[f.Length + 64];
            f.CopyTo(buffer, 0);
            int n = handlers[t.h].Handle(Connection(), t.dir, buffer, f.Length, 40001, a, 0);
            Assert.InRange(n, 0, buffer.Length);
            foreach (var e in a.Expectations)
            {
                Assert.Equal(Connection().InsideAddress, e.InsideAddress);
            }
        }));
    }

    private static void RunSession(TcpLineAlgHandler h, int remotePort, Step[] steps,
        Action<ExpectationRequest, AlgDirection, ushort, AlgConnection> checkExpectation, params string[] insideTexts)
        => RunSession(h, remotePort, outsideOpens: false, steps, checkExpectation, insideTexts);

    // outsideOpens: the remote host sends the SYN (a server inside behind a forward).
    private static void RunSession(TcpLineAlgHandler h, int remotePort, bool outsideOpens, Step[] steps,
        Action<ExpectationRequest, AlgDirection, ushort, AlgConnection> checkExpectation, params string[] insideTexts)
    {
        var c = Connection(remotePort: remotePort);
        var a = new AlgActions();
        uint[] origNext = [1001, 5001];
        uint[] wireNext = [1001, 5001];
        var received = new[] { new Dictionary<uint, byte>(), new Dictionary<uint, byte>() };
        var sent = new[] { new List<byte>(), new List<byte>() }; // each direction's stream as the sender wrote it, from 1001 and 5001
        var last = new (uint seq, byte[] payload, uint outSeq, byte[] outPayload)?[2];
        if (outsideOpens)
        {
            Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, 0x02, 5000, 0, conn: c), a, conn: c);
            Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, 0x12, 1000, 5001, conn: c), a, conn: c);
        }
        else
        {
            Run(h, AlgDirection.In2Out, Tcp(AlgDirection.In2Out, 0x02, 1000, 0, conn: c), a, conn: c);
            Run(h, AlgDirection.Out2In, Tcp(AlgDirection.Out2In, 0x12, 5000, 1001, conn: c), a, conn: c);
        }
        foreach (var step in steps)
        {
            int d = step.Out2In ? 1 : 0;
            var dir = step.Out2In ? AlgDirection.Out2In : AlgDirection.In2Out;
            var segments = new List<(byte[] payload, bool retransmit)>();
            if (step.Action == 1 && last[d] is { } prev)
            {
                segments.Add((prev.payload, true));
            }
            else if (step.Action == 2 && step.Payload.Length >= 2)
            {
                int k = 1 + step.SplitAt % (step.Payload.Length - 1);
                segments.Add((step.Payload[..k], false));
                segments.Add((step.Payload[k..], false));
            }
            else
            {
                segments.Add((step.Payload, false));
            }
            foreach (var (payload, retransmit) in segments)
            {
                uint seq = retransmit ? last[d]!.Value.seq : origNext[d];
                int heldBefore = h.HeldBytes(c, dir);
                var f = Tcp(dir, 0x18, seq, wireNext[1 - d], payload, conn: c);
                var o = Run(h, dir, f, a, (ushort)step.Reserved, c);
                int heldAfter = h.HeldBytes(c, dir);
                Assert.True(Valid(o), "checksums");
                // Every line of a segment is parsed, but only one may take the frame's reserved port.
                Assert.True(a.Expectations.Count(e => e.UsesReservedPort) <= 1);
                if (!retransmit)
                {
                    sent[d].AddRange(payload);
                }
                // What this frame carried of the sender's stream: any bytes held before it, then its own.
                string covered = Encoding.Latin1.GetString(sent[d].ToArray(), (int)(seq - 1001 - (uint)(d * 4000)) - (retransmit ? 0 : heldBefore),
                    payload.Length + (retransmit ? 0 : heldBefore));
                foreach (var e in a.Expectations)
                {
                    checkExpectation(e, dir, (ushort)step.Reserved, c);
                    // An inbound pinhole only for a line that named the inside host itself.
                    Assert.True(e.Kind == ExpectationKind.Outbound || insideTexts.Any(t => covered.Contains(t, StringComparison.Ordinal)));
                }
                byte[] outPayload = Payload(o);
                if (a.Rewrites == 0 && !retransmit)
                {
                    // Unedited: the covered bytes less any now held (docs/architecture.md, "ALG control streams").
                    Assert.Equal(covered[..(covered.Length - heldAfter)], Encoding.Latin1.GetString(outPayload));
                }
                // The peer acknowledged everything it got on the wire; the sender sees its own numbering, short of what natd holds.
                Assert.Equal(origNext[1 - d] - (uint)h.HeldBytes(c, 1 - d == 0 ? AlgDirection.In2Out : AlgDirection.Out2In), Ack(o));
                if (!retransmit)
                {
                    Assert.Equal(wireNext[d], Seq(o));
                }
                for (int i = 0; i < outPayload.Length; i++)
                {
                    uint at = Seq(o) + (uint)i;
                    if (received[d].TryGetValue(at, out byte had))
                    {
                        Assert.Equal(had, outPayload[i]);
                    }
                    else
                    {
                        received[d][at] = outPayload[i];
                    }
                }
                if (!retransmit)
                {
                    last[d] = (seq, payload, Seq(o), outPayload);
                    origNext[d] += (uint)payload.Length;
                }
                if (SeqMath.After(Seq(o) + (uint)outPayload.Length, wireNext[d]))
                {
                    wireNext[d] = Seq(o) + (uint)outPayload.Length;
                }
            }
        }
        h.Dispose();
    }
}

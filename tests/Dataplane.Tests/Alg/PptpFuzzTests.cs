using FsCheck;
using FsCheck.Fluent;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Pptp;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Alg.PptpFrames;

namespace Natd.Tests.Alg;

/// <summary>
/// Fuzz-style properties of the PPTP handler: control streams of valid, mutated and random
/// messages, cut at random places, some segments retransmitted, both directions, never throw,
/// keep the frame's length and checksums, and never announce a GRE call for a host other than the
/// connection's own inside host.
/// </summary>
public class PptpFuzzTests
{
    public record Step(bool FromClient, byte[] Bytes, bool Retransmit);

    private static Gen<byte[]> ValidMessage() =>
        from kind in Gen.Choose(0, 10)
        from id in Gen.Elements<ushort>(0, 1, 2, 0x4000, 0xFFFF)
        from peer in Gen.Elements<ushort>(0, 1, 2, 0x4000, 0x7001, 0xFFFF)
        from result in Gen.Elements<byte>(1, 1, 2)
        select kind switch
        {
            0 => OutgoingCallRequest(id),
            1 => OutgoingCallReply(id, peer, result),
            2 => IncomingCallReply(id, peer, result),
            3 => IncomingCallConnected(peer),
            4 => CallClearRequest(id),
            5 => CallDisconnectNotify(id),
            6 => WanErrorNotify(peer),
            7 => SetLinkInfo(peer),
            8 => Message(9, 220, id),
            9 => StartControlConnectionRequest(),
            _ => Message(5, 16),
        };

    private static Gen<byte[]> Mutated() =>
        from m in ValidMessage()
        from at in Gen.Choose(0, 19)
        from value in Gen.Choose(0, 255)
        select Mutate(m, at, (byte)value);

    private static byte[] Mutate(byte[] m, int at, byte value)
    {
        var c = (byte[])m.Clone();
        c[at % c.Length] = value;
        return c;
    }

    private static Gen<byte[]> Junk() =>
        from len in Gen.Choose(1, 64)
        from bytes in Gen.ArrayOf(Gen.Choose(0, 255).Select(i => (byte)i), len)
        select bytes;

    private static Gen<List<Step>> Streams() =>
        from n in Gen.Choose(1, 14)
        from chunks in Gen.ListOf(
            from client in Gen.Elements(true, false)
            from kind in Gen.Frequency((6, ValidMessage()), (3, Mutated()), (1, Junk()))
            from cut in Gen.Choose(0, 3)
            from cutAt in Gen.Choose(1, 200)
            from retransmit in Gen.Elements(false, false, false, true)
            select (client, kind, cut, cutAt, retransmit), n)
        select Split(chunks);

    private static List<Step> Split(IEnumerable<(bool Client, byte[] Bytes, int Cut, int CutAt, bool Retransmit)> chunks)
    {
        var steps = new List<Step>();
        foreach (var c in chunks)
        {
            if (c.Cut == 0 && c.CutAt < c.Bytes.Length)
            {
                steps.Add(new Step(c.Client, c.Bytes[..c.CutAt], c.Retransmit));
                steps.Add(new Step(c.Client, c.Bytes[c.CutAt..], false));
            }
            else
            {
                steps.Add(new Step(c.Client, c.Bytes, c.Retransmit));
            }
        }
        return steps;
    }

    [Fact]
    public void Random_and_mutated_control_streams_never_throw_and_announce_only_the_connections_host()
    {
        var handler = new PptpHandler(seed: 5);
        var controls = new[]
        {
            new PptpControl(handler, "10.0.0.2", 40000, 1024),
            new PptpControl(handler, "10.0.0.3", 40001, 1025),
        };
        // What each receiver got, by wire sequence number: a byte once delivered never changes.
        var received = new Dictionary<uint, byte>[4];
        for (int i = 0; i < received.Length; i++)
        {
            received[i] = [];
        }
        Prop.ForAll(Streams().ToArbitrary(), Gen.Choose(0, 1).ToArbitrary(), (steps, which) =>
        {
            PptpControl c = controls[which];
            foreach (Step s in steps)
            {
                uint? seq = null;
                if (s.Retransmit)
                {
                    // Send it, then the same bytes again at the same sequence number.
                    seq = s.FromClient ? c.ClientSeq : null;
                }
                byte[] input = s.FromClient ? c.ClientFrame(s.Bytes) : c.ServerFrame(s.Bytes);
                byte[] output = s.FromClient ? c.FromClient(s.Bytes) : c.FromServer(s.Bytes);
                Dictionary<uint, byte> got = received[2 * which + (s.FromClient ? 0 : 1)];
                if (!Check(c, input, output, got))
                {
                    return false;
                }
                if (seq is not null)
                {
                    byte[] again = c.FromClient(s.Bytes, seq);
                    if (!Check(c, input, again, got))
                    {
                        return false;
                    }
                }
            }
            return true;
        }).QuickCheckThrowOnFailure();
        // Every call the handler keeps is bounded by the per-connection cap.
        Assert.True(handler.Calls <= 2 * PptpHandler.MaxCallsPerConnection);
        handler.Dispose();
    }

    private static bool Check(PptpControl c, byte[] input, byte[] output, Dictionary<uint, byte> received)
    {
        if (!Frames.ChecksumsValid(output))
        {
            return false;
        }
        // Addresses, ports and the acknowledgment stay as they were; rewrites keep every length.
        int l4 = Frames.L4Offset(output);
        if (!output.AsSpan(26, 8).SequenceEqual(input.AsSpan(26, 8)) || !output.AsSpan(l4, 4).SequenceEqual(input.AsSpan(l4, 4))
            || !output.AsSpan(l4 + 8, 4).SequenceEqual(input.AsSpan(l4 + 8, 4)))
        {
            return false;
        }
        // The segment may start earlier (held bytes put back in front) or end earlier (bytes held), never later.
        uint inSeq = AlgFrames.Seq(input), outSeq = AlgFrames.Seq(output);
        byte[] payload = AlgFrames.Payload(output);
        if (SeqMath.After(outSeq, inSeq) || SeqMath.After(outSeq + (uint)payload.Length, inSeq + (uint)AlgFrames.Payload(input).Length))
        {
            return false;
        }
        for (int i = 0; i < payload.Length; i++)
        {
            if (received.TryGetValue(outSeq + (uint)i, out byte had) && had != payload[i])
            {
                return false;
            }
            received[outSeq + (uint)i] = payload[i];
        }
        foreach (GreCall g in c.Actions.GreCalls)
        {
            bool own = g.InsideAddress == c.Connection.InsideAddress && g.RemoteAddress == c.Connection.RemoteAddress
                && g.ExternalAddress == c.Connection.ExternalAddress;
            // Removals queued by another connection's Forget may ride along; there are none here.
            if (!own)
            {
                return false;
            }
        }
        return true;
    }

    [Fact]
    public void Arbitrary_bytes_as_frames_never_throw()
    {
        var handler = new PptpHandler(seed: 9);
        var conn = new AlgConnection(IpProtocol.Tcp, Ipv4.Parse("10.0.0.2"), 40000, Ipv4.Parse("198.51.100.2"), 1723, Ipv4.Parse("198.51.100.1"), 1024);
        var actions = new AlgActions();
        Prop.ForAll(Gen.ArrayOf(Gen.Choose(0, 255).Select(i => (byte)i)).ToArbitrary(), Gen.Elements(AlgDirection.In2Out, AlgDirection.Out2In).ToArbitrary(), (bytes, dir) =>
        {
            actions.Clear();
            // A real frame's headers with random payload, and the raw random bytes as a frame.
            byte[] framed = Frames.Tcp("198.51.100.1", 1024, "198.51.100.2", 1723, 0x18, 1, 1, bytes);
            var buffer = new byte[framed.Length + 16];
            framed.CopyTo(buffer, 0);
            int n1 = handler.Handle(conn, dir, buffer, framed.Length, 0, actions, 1);
            var raw = new byte[bytes.Length + 16];
            bytes.CopyTo(raw, 0);
            int n2 = handler.Handle(conn, dir, raw, bytes.Length, 0, actions, 1);
            // Held bytes (at most a message's first 20) leave a frame shorter, down to its headers, or come back in front of a later one.
            return n1 >= 54 && n1 <= framed.Length + 20 && n2 == bytes.Length && Frames.ChecksumsValid(buffer[..n1]);
        }).QuickCheckThrowOnFailure();
    }
}

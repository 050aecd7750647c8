using System.Buffers.Binary;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Alg.Ftp;
using Natd.Dataplane.Alg.Irc;
using Natd.Dataplane.Alg.Pptp;
using Natd.Dataplane.Alg.Tftp;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;

namespace Natd.Fuzzing.Targets;

/// <summary>
/// Fuzz target "alg": one ALG handler (or the TCP rewriter) over a fuzzed connection. Byte 0
/// selects (modulo 6): 0 FTP with the client inside, 1 FTP with the server inside (the remote
/// opens), 2 IRC, 3 TFTP, 4 PPTP, 5 <see cref="TcpRewriter.Splice"/>. The rest is records of a
/// control byte (bit 0: out2in; bit 1: retransmit that direction's last segment; bit 2: raw, the
/// record is a whole frame with mangled headers; bit 3: an external port is reserved), a length
/// byte and the payload. Frames are built as natd hands them to a helper (already translated),
/// with sequence numbers that follow the stream as the peers see it.
/// Invariants (violations throw <see cref="FuzzInvariantException"/>): no exception; the returned
/// length fits the slot (<see cref="FrameBatch.SlotSize"/>); an emitted frame built from a valid
/// one has valid IPv4 and TCP/UDP checksums (RFC 1071, the target's own code); an expectation
/// names the connection's inside host, and its server for FTP and TFTP (no remote for IRC's DCC);
/// a PPTP GRE call names the connection's own hosts.
/// </summary>
public static class AlgTarget
{
    private const string Inside = "10.0.0.2", External = "198.51.100.1", Remote = "192.0.2.10";

    /// <summary>Records read from one input at most.</summary>
    public const int MaxRecords = 256;

    /// <summary>Runs one input; throws <see cref="FuzzInvariantException"/> when an invariant fails.</summary>
    public static void Run(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
        {
            return;
        }
        int mode = input[0] % 6;
        if (mode == 5)
        {
            Splices(input[1..]);
            return;
        }
        (IAlgHandler h, byte proto, ushort port, bool outsideOpens) = mode switch
        {
            0 => ((IAlgHandler)new FtpHandler(), IpProtocol.Tcp, (ushort)21, false),
            1 => (new FtpHandler(), IpProtocol.Tcp, (ushort)21, true),
            2 => (new IrcHandler(), IpProtocol.Tcp, (ushort)6667, false),
            3 => (new TftpHandler(), IpProtocol.Udp, (ushort)69, false),
            _ => (new PptpHandler(seed: 3), IpProtocol.Tcp, (ushort)1723, false),
        };
        new Session(h, mode, proto, port, outsideOpens).Run(input[1..]);
    }

    private sealed class Session(IAlgHandler handler, int mode, byte proto, ushort remotePort, bool outsideOpens)
    {
        private readonly AlgConnection _c = new(proto, Ipv4.Parse(Inside), 40000, Ipv4.Parse(Remote), remotePort, Ipv4.Parse(External), 61000);
        private readonly AlgActions _a = new();
        private readonly byte[] _buffer = new byte[FrameBatch.SlotSize];
        private readonly uint[] _origNext = [1001, 5001];
        private readonly uint[] _wireNext = [1001, 5001];
        private readonly (uint Seq, byte[] Payload)?[] _last = new (uint, byte[])?[2];
        private int _record;

        public void Run(ReadOnlySpan<byte> input)
        {
            if (proto == IpProtocol.Tcp)
            {
                // The handshake, as the handler would have seen it.
                if (outsideOpens)
                {
                    Handle(AlgDirection.Out2In, Tcp(AlgDirection.Out2In, 0x02, 5000, 0, []), 0, true);
                    Handle(AlgDirection.In2Out, Tcp(AlgDirection.In2Out, 0x12, 1000, 5001, []), 0, true);
                }
                else
                {
                    Handle(AlgDirection.In2Out, Tcp(AlgDirection.In2Out, 0x02, 1000, 0, []), 0, true);
                    Handle(AlgDirection.Out2In, Tcp(AlgDirection.Out2In, 0x12, 5000, 1001, []), 0, true);
                }
            }
            int pos = 0;
            while (pos + 2 <= input.Length && _record < MaxRecords)
            {
                byte ctl = input[pos];
                int len = Math.Min(input[pos + 1], input.Length - pos - 2);
                byte[] payload = input.Slice(pos + 2, len).ToArray();
                pos += 2 + len;
                var dir = (ctl & 1) != 0 ? AlgDirection.Out2In : AlgDirection.In2Out;
                ushort reserved = (ctl & 8) != 0 ? (ushort)40001 : (ushort)0;
                int d = (int)dir;
                if ((ctl & 4) != 0)
                {
                    Handle(dir, payload, reserved, valid: false);
                }
                else if (proto == IpProtocol.Udp)
                {
                    Handle(dir, Udp(dir, payload), reserved, valid: true);
                }
                else
                {
                    bool retransmit = (ctl & 2) != 0 && _last[d] is not null;
                    (uint seq, byte[] p) = retransmit ? _last[d]!.Value : (_origNext[d], payload);
                    byte[] o = Handle(dir, Tcp(dir, 0x18, seq, _wireNext[1 - d], p), reserved, valid: true);
                    if (!retransmit && o.Length >= 54)
                    {
                        _last[d] = (seq, p);
                        _origNext[d] += (uint)p.Length;
                        int l4 = 14 + (o[14] & 0xF) * 4;
                        int total = BinaryPrimitives.ReadUInt16BigEndian(o.AsSpan(16));
                        int payloadLength = 14 + total - l4 - (o[l4 + 12] >> 4) * 4;
                        _wireNext[d] = BinaryPrimitives.ReadUInt32BigEndian(o.AsSpan(l4 + 4)) + (uint)Math.Max(0, payloadLength);
                    }
                }
                _record++;
            }
        }

        private byte[] Handle(AlgDirection dir, byte[] frame, ushort reserved, bool valid)
        {
            int n = Math.Min(frame.Length, _buffer.Length);
            Array.Clear(_buffer);
            frame.AsSpan(0, n).CopyTo(_buffer);
            _a.Clear();
            n = handler.Handle(_c, dir, _buffer, n, reserved, _a, 1000 * _record);
            if (n < 0 || n > _buffer.Length)
            {
                throw Fail($"handler returned length {n} for a slot of {_buffer.Length}");
            }
            byte[] o = _buffer.AsSpan(0, n).ToArray();
            if (valid && !_a.Drop && Rfc1071.CheckFrame(o) is { } bad)
            {
                throw Fail($"{dir} frame: {bad}");
            }
            foreach (ExpectationRequest e in _a.Expectations)
            {
                if (e.InsideAddress != _c.InsideAddress)
                {
                    throw Fail($"expectation names inside host {Ipv4.Format(e.InsideAddress)}, not the connection's {Inside}");
                }
                bool remoteOk = mode == 2 ? e.RemoteAddress == 0 : e.RemoteAddress == _c.RemoteAddress;
                if (!remoteOk)
                {
                    throw Fail($"expectation names remote {Ipv4.Format(e.RemoteAddress)}");
                }
                if (e.UsesReservedPort && (reserved == 0 || e.ExternalPort != reserved))
                {
                    throw Fail($"expectation uses external port {e.ExternalPort} but the reserved port is {reserved}");
                }
            }
            foreach (GreCall g in _a.GreCalls)
            {
                if (g.Add && (g.InsideAddress != _c.InsideAddress || g.RemoteAddress != _c.RemoteAddress || g.ExternalAddress != _c.ExternalAddress))
                {
                    throw Fail($"GRE call names {Ipv4.Format(g.InsideAddress)} / {Ipv4.Format(g.RemoteAddress)}, not the connection's hosts");
                }
            }
            return o;
        }

        private FuzzInvariantException Fail(string what) => new($"alg mode {mode}: record {_record}: {what}");

        private (uint Src, ushort Sport, uint Dst, ushort Dport) Endpoints(AlgDirection dir)
            => dir == AlgDirection.In2Out
                ? (_c.ExternalAddress, _c.ExternalPort, _c.RemoteAddress, _c.RemotePort)
                : (_c.RemoteAddress, _c.RemotePort, _c.InsideAddress, _c.InsidePort);

        private byte[] Tcp(AlgDirection dir, byte flags, uint seq, uint ack, byte[] payload)
        {
            var (src, sport, dst, dport) = Endpoints(dir);
            return FrameBuilder.Tcp(src, sport, dst, dport, flags, seq, ack, payload);
        }

        private byte[] Udp(AlgDirection dir, byte[] payload)
        {
            var (src, sport, dst, dport) = Endpoints(dir);
            return FrameBuilder.Udp(src, sport, dst, dport, payload);
        }
    }

    /// <summary>
    /// The TCP rewriter: records of [offset, remove, insert length] bytes and the inserted bytes,
    /// applied to one TCP frame built from the first record's payload; every successful splice
    /// leaves a frame within the slot whose lengths and checksums verify.
    /// </summary>
    private static void Splices(ReadOnlySpan<byte> input)
    {
        if (input.Length < 1)
        {
            return;
        }
        int first = Math.Min(input[0], input.Length - 1);
        byte[] frame = FrameBuilder.Tcp(Ipv4.Parse(External), 61000, Ipv4.Parse(Remote), 21, 0x18, 1001, 5001, input.Slice(1, first).ToArray());
        var buffer = new byte[FrameBatch.SlotSize];
        frame.CopyTo(buffer, 0);
        int length = frame.Length;
        int pos = 1 + first;
        for (int i = 0; pos + 3 <= input.Length && i < MaxRecords; i++)
        {
            int at = input[pos], remove = input[pos + 1], insertLength = input[pos + 2] * 8;
            pos += 3;
            // Inserts repeat the remaining input so a splice can grow the frame to the slot's edge.
            byte[] insert = new byte[insertLength];
            for (int k = 0; k < insertLength && pos < input.Length; k++)
            {
                insert[k] = input[pos + k % (input.Length - pos)];
            }
            if (!FrameLayout.TryParseTcp(buffer.AsSpan(0, length), out FrameLayout seg))
            {
                throw new FuzzInvariantException($"alg splice {i}: the rewritten frame no longer parses as TCP");
            }
            int before = length;
            bool ok = TcpRewriter.Splice(buffer, ref length, ref seg, at, remove, insert);
            if (!ok && length != before)
            {
                throw new FuzzInvariantException($"alg splice {i}: refused, but the length changed");
            }
            if (length < 0 || length > buffer.Length)
            {
                throw new FuzzInvariantException($"alg splice {i}: length {length} outside the slot");
            }
            if (Rfc1071.CheckFrame(buffer.AsSpan(0, length)) is { } bad)
            {
                throw new FuzzInvariantException($"alg splice {i} (at {at}, remove {remove}, insert {insertLength}): {bad}");
            }
        }
    }
}

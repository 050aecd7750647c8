using System.Buffers.Binary;
using System.Text;
using Natd.Control.Config;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;
using Natd.Fuzzing.Targets;

namespace Natd.Fuzzing;

/// <summary>
/// Writes the generated seed files of each target's corpus (`Natd.Fuzzing seed tests/Fuzz/corpus`):
/// hand-built conversations of each ALG, frames of the committed tcpdump captures in
/// corpus/pcap/ moved onto the lab's addresses, and the loader's own key reference. Files copied
/// by hand (captures, the packaged natd.yaml) are left alone. Output is deterministic.
/// </summary>
public static class Seeds
{
    private static readonly uint InsideHost = Ipv4.Parse("10.0.0.2");
    private static readonly uint OutsideHost = Ipv4.Parse("198.51.100.2");
    private static readonly uint External = Ipv4.Parse("198.51.100.1");
    private static readonly uint Remote = Ipv4.Parse("192.0.2.10");

    /// <summary>Writes every generated seed under <paramref name="corpus"/> (one directory per target).</summary>
    public static void Write(string corpus)
    {
        Packet(Path.Combine(corpus, "packet"), Path.Combine(corpus, "pcap"));
        Cgn(Path.Combine(corpus, "cgn"), Path.Combine(corpus, "packet"));
        Alg(Path.Combine(corpus, "alg"));
        File.WriteAllText(Path.Combine(corpus, "config", "gen-describe.yaml"), ConfigLoader.Describe());
    }

    private static void Save(string dir, string name, byte[] data)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, name), data);
    }

    private static byte[] B(string s) => Encoding.Latin1.GetBytes(s);

    /// <summary>One packet-target record: length, flags (bit 0 outside), frame.</summary>
    private static void Rec(List<byte> into, byte[] frame, bool outside, int clock = 0)
    {
        into.Add((byte)(frame.Length >> 8));
        into.Add((byte)frame.Length);
        into.Add((byte)((outside ? 1 : 0) | clock << 1));
        into.AddRange(frame);
    }

    private static void Packet(string dir, string pcapDir)
    {
        // A TCP conversation through natd: in2out from the inside host, out2in to the external address.
        // natd picks the external port; the seed uses one, afl finds others.
        byte[] In(byte proto, ushort sport, ushort dport, byte[] payload, byte flags = 0x18, uint seq = 1001, uint ack = 5001) => proto == 6
            ? FrameBuilder.Tcp(InsideHost, sport, Remote, dport, flags, seq, ack, payload)
            : FrameBuilder.Udp(InsideHost, sport, Remote, dport, payload);
        byte[] Out(byte proto, ushort sport, ushort dport, byte[] payload, byte flags = 0x18, uint seq = 5001, uint ack = 1001) => proto == 6
            ? FrameBuilder.Tcp(Remote, sport, External, dport, flags, seq, ack, payload)
            : FrameBuilder.Udp(Remote, sport, External, dport, payload);

        var ftp = new List<byte>();
        Rec(ftp, In(6, 40000, 21, [], 0x02, 1000, 0), false);
        Rec(ftp, Out(6, 21, 1024, [], 0x12, 5000, 1001), true);
        Rec(ftp, Out(6, 21, 1024, B("220 ready\r\n")), true);
        Rec(ftp, In(6, 40000, 21, B("PORT 10,0,0,2,156,65\r\n")), false);
        Rec(ftp, In(6, 40000, 21, B("EPRT |1|10.0.0.2|40002|\r\n"), seq: 1023), false);
        Rec(ftp, Out(6, 21, 1024, B("227 Entering Passive Mode (192,0,2,10,4,1)\r\n"), seq: 5012, ack: 1049), true);
        Rec(ftp, Out(6, 20, 1025, [], 0x02, 9000, 0), true);
        Save(dir, "gen-ftp", [.. ftp]);

        var irc = new List<byte>();
        Rec(irc, In(6, 40001, 6667, [], 0x02, 1000, 0), false);
        Rec(irc, Out(6, 6667, 1024, [], 0x12, 5000, 1001), true);
        Rec(irc, In(6, 40001, 6667, B("PRIVMSG bob :\u0001DCC SEND f 167772162 40100 12\u0001\r\n")), false);
        Save(dir, "gen-irc", [.. irc]);

        var tftp = new List<byte>();
        Rec(tftp, In(17, 40002, 69, B("\0\u0001boot/pxelinux.0\0octet\0")), false);
        Rec(tftp, Out(17, 50000, 1024, B("\0\u0003\0\u0001data")), true);
        Save(dir, "gen-tftp", [.. tftp]);

        var pptp = new List<byte>();
        Rec(pptp, In(6, 40003, 1723, [], 0x02, 1000, 0), false);
        Rec(pptp, Out(6, 1723, 1024, [], 0x12, 5000, 1001), true);
        Rec(pptp, In(6, 40003, 1723, PptpMessage(7, 168, 0x4001, 0)), false);
        Rec(pptp, Out(6, 1723, 1024, PptpMessage(8, 32, 0x7001, 0x4001), seq: 5001, ack: 1169), true);
        var gre = new byte[16];
        gre[0] = 0x20; gre[1] = 0x01; gre[2] = 0x88; gre[3] = 0x0b;
        Rec(pptp, FrameBuilder.Ip(InsideHost, Remote, 47, gre), false);
        Save(dir, "gen-pptp", [.. pptp]);

        var other = new List<byte>();
        Rec(other, FrameBuilder.Icmp(InsideHost, Remote, 8, 0, 0x00070001, B("ping")), false);
        Rec(other, FrameBuilder.Icmp(Remote, External, 0, 0, 0x04000001, B("ping")), true);
        Rec(other, FrameBuilder.Udp(InsideHost, 500, Remote, 500, new byte[28]), false);
        Rec(other, FrameBuilder.Ip(InsideHost, Remote, 50, new byte[24]), false);
        Rec(other, FrameBuilder.Ip(InsideHost, Remote, 6, new byte[20], ttl: 1), false);
        Rec(other, In(17, 40004, 53, B("query")), false, clock: 3);
        Rec(other, Arp(1, InsideHost, Ipv4.Parse("10.0.0.1")), false);
        Rec(other, Arp(2, Ipv4.Parse("198.51.100.9"), External), true);
        Save(dir, "gen-other", [.. other]);

        // The egress MTU (576 outside, 1200 inside): a datagram to fragment, the same with DF (fragmentation-needed),
        // a SYN whose MSS option the clamp lowers, and its SYN-ACK.
        var mtu = new List<byte>();
        Rec(mtu, In(17, 40005, 53, new byte[900]), false);
        byte[] df = In(17, 40005, 53, new byte[900]);
        df[20] = 0x40;
        Rfc1071.Finish(df);
        Rec(mtu, df, false);
        Rec(mtu, Out(17, 53, 1024, new byte[1100]), true);
        byte[] syn = new byte[24];
        BinaryPrimitives.WriteUInt16BigEndian(syn, 40006);
        BinaryPrimitives.WriteUInt16BigEndian(syn.AsSpan(2), 80);
        syn[12] = 6 << 4;
        syn[13] = 0x02;
        syn[20] = 2; syn[21] = 4; syn[22] = 0x05; syn[23] = 0xB4; // MSS 1460
        Rec(mtu, FrameBuilder.Ip(InsideHost, Remote, 6, syn), false);
        byte[] synAck = (byte[])syn.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(synAck, 80);
        BinaryPrimitives.WriteUInt16BigEndian(synAck.AsSpan(2), 1024);
        synAck[13] = 0x12;
        Rec(mtu, FrameBuilder.Ip(Remote, External, 6, synAck), true);
        Save(dir, "gen-mtu", [.. mtu]);

        // Real conversations from the committed captures, moved onto the lab's addresses.
        foreach (string file in Directory.GetFiles(pcapDir).Order(StringComparer.Ordinal))
        {
            byte[]? seed = FromCapture(file);
            if (seed is not null)
            {
                Save(dir, "cap-" + Path.GetFileNameWithoutExtension(file), seed);
            }
        }
    }

    /// <summary>
    /// The cgn target's seeds, for each of its profiles with one shard and with two (byte 0): flows
    /// of three hosts (two of one /31) until their blocks and limits run out, PCP MAP requests (one
    /// port, all ports) with a hairpin and a fragmented datagram to the mapped port, a fragmented
    /// datagram both ways, and the packet target's generated conversations.
    /// </summary>
    private static void Cgn(string dir, string packetDir)
    {
        // 10.0.0.2 and .3 share a /31 (profile 0); with two shards .4 is the other shard's.
        uint second = Ipv4.Parse("10.0.0.3"), third = Ipv4.Parse("10.0.0.4");
        var flows = new List<byte>();
        for (int i = 0; i < 42; i++)
        {
            uint host = (i % 3) switch { 0 => InsideHost, 1 => second, _ => third };
            Rec(flows, FrameBuilder.Udp(host, (ushort)(41000 + i), Remote, 53, B("q")), false);
            if (i % 8 == 7)
            {
                Rec(flows, FrameBuilder.Tcp(host, (ushort)(42000 + i), Remote, 443, 0x02, 1, 0, []), false, clock: 1);
            }
        }
        Rec(flows, FrameBuilder.Udp(InsideHost, 123, Remote, 123, B("ntp")), false);
        Rec(flows, FrameBuilder.Udp(Remote, 53, External, 1030, B("a")), true, clock: 2);
        Rec(flows, FrameBuilder.Udp(InsideHost, 41000, Remote, 53, B("again")), false, clock: 3);

        var pcp = new List<byte>();
        uint gateway = Ipv4.Parse("10.0.0.1");
        Rec(pcp, FrameBuilder.Udp(InsideHost, 40500, gateway, 5351, PcpMap(InsideHost, 17, 8080, 1040, 3600)), false);
        Rec(pcp, FrameBuilder.Udp(InsideHost, 40500, gateway, 5351, PcpMap(InsideHost, 6, 0, 0, 3600)), false);
        Rec(pcp, FrameBuilder.Udp(InsideHost, 40500, gateway, 5351, PcpMap(InsideHost, 0, 0, 0, 3600)), false);
        Rec(pcp, FrameBuilder.Udp(InsideHost, 8080, Remote, 7000, B("out")), false);
        foreach (uint external in new[] { External, Ipv4.Parse("198.51.100.7") }) // the mapping's address: the subscriber's pairing
        {
            Rec(pcp, FrameBuilder.Udp(Remote, 7000, external, 1040, B("in")), true);
            Rec(pcp, FrameBuilder.Udp(third, 41500, external, 1040, B("hairpin")), false); // from inside (another shard's host)
            byte[][] inbound = Fragments(FrameBuilder.Udp(Remote, 7001, external, 1040, new byte[64]), 40);
            Rec(pcp, inbound[1], true); // fragmented, the later fragment first
            Rec(pcp, inbound[0], true);
        }
        Rec(pcp, FrameBuilder.Udp(InsideHost, 40500, gateway, 5351, PcpMap(InsideHost, 17, 8080, 1040, 0)), false, clock: 1);

        var frag = new List<byte>();
        byte[] datagram = FrameBuilder.Udp(InsideHost, 43000, Remote, 53, new byte[64]);
        foreach (byte[] f in Fragments(datagram, 40))
        {
            Rec(frag, f, false);
        }
        byte[] reply = FrameBuilder.Udp(Remote, 53, External, 1100, new byte[64]);
        byte[][] parts = Fragments(reply, 40);
        Rec(frag, parts[1], true); // out of order
        Rec(frag, parts[0], true);
        byte[] ping = FrameBuilder.Icmp(InsideHost, Remote, 8, 0, 0x00090001, new byte[100]);
        foreach (byte[] f in Fragments(ping, 48))
        {
            Rec(frag, f, false);
        }

        // Byte 0: the profile, and bit 2 for two shards (suffix -w2).
        foreach (int shards in new[] { 0, 4 })
        {
            string w = shards == 0 ? "" : "-w2";
            for (int profile = 0; profile < CgnTarget.Profiles.Length; profile++)
            {
                byte head = (byte)(profile | shards);
                Save(dir, $"gen-{profile}-flows{w}", [head, .. flows]);
                Save(dir, $"gen-{profile}-pcp{w}", [head, .. pcp]);
                Save(dir, $"gen-{profile}-frag{w}", [head, .. frag]);
                foreach (string name in new[] { "gen-ftp", "gen-tftp", "gen-pptp", "gen-other" })
                {
                    Save(dir, $"{name}-{profile}{w}", [head, .. File.ReadAllBytes(Path.Combine(packetDir, name))]);
                }
            }
        }
    }

    /// <summary>A PCP MAP request (RFC 6887 sections 7.1 and 11.1) from <paramref name="client"/>: protocol 0 and port 0 ask for all.</summary>
    private static byte[] PcpMap(uint client, byte protocol, ushort internalPort, ushort suggestedPort, uint lifetime)
    {
        var m = new byte[60];
        m[0] = 2; // version
        m[1] = 1; // MAP, a request
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(4), lifetime);
        m[18] = 0xff; m[19] = 0xff; // the client's IPv4 address, IPv4-mapped
        BitConverter.TryWriteBytes(m.AsSpan(20), client);
        for (int i = 0; i < 12; i++)
        {
            m[24 + i] = (byte)(0x5a + i); // nonce
        }
        m[36] = protocol;
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(40), internalPort);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(42), suggestedPort);
        m[54] = 0xff; m[55] = 0xff; // suggested external address ::ffff:0.0.0.0 (none)
        return m;
    }

    /// <summary>
    /// <paramref name="frame"/>'s IPv4 datagram cut in two fragments, the first carrying
    /// <paramref name="firstBytes"/> (a multiple of 8) of its payload; header checksums set.
    /// </summary>
    private static byte[][] Fragments(byte[] frame, int firstBytes)
    {
        const int header = 14 + 20;
        byte[] payload = frame[header..];
        byte[] Part(int offset, int length, bool more)
        {
            var f = new byte[header + length];
            frame.AsSpan(0, header).CopyTo(f);
            payload.AsSpan(offset, length).CopyTo(f.AsSpan(header));
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), (ushort)(20 + length));
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(20), (ushort)((more ? 0x2000 : 0) | offset / 8));
            f[24] = 0; f[25] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(24), (ushort)~Rfc1071.Fold(Rfc1071.Sum(f.AsSpan(14, 20))));
            return f;
        }
        return [Part(0, firstBytes, true), Part(firstBytes, payload.Length - firstBytes, false)];
    }

    private static byte[] Arp(ushort op, uint sender, uint target)
    {
        var f = new byte[42];
        f.AsSpan(0, 6).Fill(0xff);
        FrameBuilder.InsideHostMac.CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x0806);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(14), 1);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 0x0800);
        f[18] = 6; f[19] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(20), op);
        FrameBuilder.InsideHostMac.CopyTo(f, 22);
        BitConverter.TryWriteBytes(f.AsSpan(28), sender);
        BitConverter.TryWriteBytes(f.AsSpan(38), target);
        return f;
    }

    /// <summary>A PPTP control message (RFC 2637 section 2): length, type 1, magic cookie, control type, Call ID, peer's Call ID.</summary>
    private static byte[] PptpMessage(ushort controlType, int length, ushort callId, ushort peerCallId)
    {
        var m = new byte[length];
        BinaryPrimitives.WriteUInt16BigEndian(m, (ushort)length);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(2), 1);
        BinaryPrimitives.WriteUInt32BigEndian(m.AsSpan(4), 0x1A2B3C4D);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(8), controlType);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(12), callId);
        BinaryPrimitives.WriteUInt16BigEndian(m.AsSpan(14), peerCallId);
        if (controlType == 8)
        {
            m[16] = 1; // result: connected
        }
        return m;
    }

    /// <summary>
    /// The IPv4 Ethernet frames of a capture (at most 24): the first source becomes the inside
    /// host (frames from inside), the other party the external address's peer (frames from outside, to the external address).
    /// </summary>
    private static byte[]? FromCapture(string file)
    {
        var seed = new List<byte>();
        try
        {
            using var r = new PcapReader(file);
            uint client = 0;
            int n = 0;
            while (n < 24 && r.TryRead(out PcapRecord rec))
            {
                byte[] f = rec.Data.ToArray();
                if (rec.LinkType != 1 || f.Length < 34 || f.Length > FrameBatch.SlotSize || BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) != 0x0800)
                {
                    continue;
                }
                uint src = BitConverter.ToUInt32(f, 26);
                client = client == 0 ? src : client;
                bool fromInside = src == client;
                BitConverter.TryWriteBytes(f.AsSpan(26), fromInside ? InsideHost : OutsideHost);
                BitConverter.TryWriteBytes(f.AsSpan(30), fromInside ? OutsideHost : External);
                int total = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16));
                if ((f[14] >> 4) == 4 && 14 + total <= f.Length && (f[14] & 0xF) >= 5)
                {
                    Rfc1071.Finish(f);
                }
                Rec(seed, f, !fromInside);
                n++;
            }
        }
        catch (PcapFormatException)
        {
        }
        return seed.Count > 0 ? [.. seed] : null;
    }

    private static void Alg(string dir)
    {
        // Records: control byte (bit 0 out2in, bit 1 retransmit, bit 2 raw frame, bit 3 reserved port), length, payload.
        static byte[] S(byte mode, params (int Ctl, string Text)[] records)
        {
            var l = new List<byte> { mode };
            foreach (var (ctl, text) in records)
            {
                byte[] p = B(text);
                l.Add((byte)ctl);
                l.Add((byte)Math.Min(p.Length, 255));
                l.AddRange(p.AsSpan(0, Math.Min(p.Length, 255)).ToArray());
            }
            return [.. l];
        }
        Save(dir, "gen-ftp-port", S(0, (8, "USER anonymous\r\n"), (8, "PORT 10,0,0,2,156,65\r\n"), (1, "200 ok\r\n"), (10, "")));
        Save(dir, "gen-ftp-eprt", S(0, (8, "EPRT |1|10.0.0.2|40002|\r\n"), (1, "229 Entering Extended Passive Mode (|||6446|)\r\n")));
        Save(dir, "gen-ftp-pasv", S(0, (0, "PASV\r\n"), (1, "227 Entering Passive Mode (192,0,2,10,4,1)\r\n")));
        Save(dir, "gen-ftp-split", S(0, (8, "PORT 10,0,"), (8, "0,2,156,65\r\n"), (10, "")));
        Save(dir, "gen-ftp-server", S(1, (1, "PASV\r\n"), (8, "227 Entering Passive Mode (10,0,0,2,156,65)\r\n"), (8, "229 Entering Extended Passive Mode (|||40002|)\r\n"), (1, "PORT 192,0,2,10,4,1\r\n")));
        Save(dir, "gen-irc-dcc", S(2, (8, "PRIVMSG bob :\u0001DCC SEND \"my file\" 167772162 40100 12\u0001\r\n"), (8, "PRIVMSG bob :\u0001DCC CHAT chat 167772162 40101\u0001\r\n"), (1, "PING :irc\r\n")));
        Save(dir, "gen-tftp", S(3, (0, "\0\u0001boot/pxelinux.0\0octet\0"), (0, "\0\u0002f\0netascii\0blksize\u00001468\0"), (1, "\0\u0005\0\u0001no\0")));
        string ocrq = Encoding.Latin1.GetString(PptpMessage(7, 168, 0x4001, 0));
        string ocrp = Encoding.Latin1.GetString(PptpMessage(8, 32, 0x7001, 0x4001));
        string clear = Encoding.Latin1.GetString(PptpMessage(12, 16, 0x4001, 0));
        Save(dir, "gen-pptp", S(4, (0, Encoding.Latin1.GetString(PptpMessage(1, 156, 0, 0))), (0, ocrq), (1, ocrp), (0, clear)));
        Save(dir, "gen-splice", [5, 16, .. B("PORT 1,2,3,4,5,6"), 5, 11, 3, .. B("10,0,0,2,156,65"), 0, 0, 200, 0, 255, 0]);
        byte[] raw = FrameBuilder.Tcp(External, 61000, Remote, 21, 0x18, 1001, 5001, B("PORT 10,0,0,2,1,2\r\n"));
        raw[14] = 0x4f;
        Save(dir, "gen-raw", [0, 12, (byte)raw.Length, .. raw]);
    }
}

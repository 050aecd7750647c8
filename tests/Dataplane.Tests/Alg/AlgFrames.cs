using System.Buffers.Binary;
using FsCheck;
using Microsoft.FSharp.Core;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;

namespace Natd.Tests.Alg;

/// <summary>
/// Frames of one ALG connection as natd hands them to a handler (already translated): in2out
/// from the external endpoint to the server, out2in from the server to the inside host.
/// </summary>
public static class AlgFrames
{
    public const string Inside = "10.0.0.2";
    public const string External = "198.51.100.1";
    public const string Remote = "192.0.2.10";
    public const string ThirdParty = "10.0.0.3";
    public const int InsidePort = 40000;
    public const int ExternalPort = 61000;

    public static AlgConnection Connection(byte protocol = IpProtocol.Tcp, int remotePort = 21)
        => new(protocol, Ipv4.Parse(Inside), InsidePort, Ipv4.Parse(Remote), (ushort)remotePort, Ipv4.Parse(External), ExternalPort);

    /// <summary>A TCP frame with optional raw options (padded to 4 bytes with NOPs), checksums by the tests' own code.</summary>
    public static byte[] Tcp(AlgDirection dir, byte flags, uint seq, uint ack, byte[]? payload = null, byte[]? options = null, AlgConnection? conn = null)
    {
        var c = conn ?? Connection();
        payload ??= [];
        options ??= [];
        int optLength = (options.Length + 3) / 4 * 4;
        var l4 = new byte[20 + optLength + payload.Length];
        (string src, int sport, string dst, int dport) = Endpoints(dir, c);
        BinaryPrimitives.WriteUInt16BigEndian(l4, (ushort)sport);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(2), (ushort)dport);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(l4.AsSpan(8), ack);
        l4[12] = (byte)((20 + optLength) / 4 << 4);
        l4[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(14), 65535);
        l4.AsSpan(20, optLength).Fill(1);
        options.CopyTo(l4, 20);
        payload.CopyTo(l4, 20 + optLength);
        BinaryPrimitives.WriteUInt16BigEndian(l4.AsSpan(16),
            Frames.PlainChecksum(l4, Frames.Pseudo(Frames.Ip(src), Frames.Ip(dst), 6, l4.Length)));
        return Frames.Wrap(src, dst, 6, l4, 64, null, null);
    }

    public static byte[] Udp(AlgDirection dir, byte[] payload, AlgConnection? conn = null)
    {
        var c = conn ?? Connection(IpProtocol.Udp, 69);
        (string src, int sport, string dst, int dport) = Endpoints(dir, c);
        return Frames.Udp(src, sport, dst, dport, payload);
    }

    /// <summary>SACK option (RFC 2018) with the given edges.</summary>
    public static byte[] Sack(params uint[] edges)
    {
        var o = new byte[2 + 4 * edges.Length];
        o[0] = 5;
        o[1] = (byte)o.Length;
        for (int i = 0; i < edges.Length; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(o.AsSpan(2 + 4 * i), edges[i]);
        }
        return o;
    }

    /// <summary>Runs the handler on a copy of <paramref name="frame"/> in a buffer with room to grow; returns the output frame.</summary>
    public static byte[] Run(IAlgHandler handler, AlgDirection dir, byte[] frame, AlgActions actions, ushort reservedPort = 0,
        AlgConnection? conn = null, long nowMs = 0, int bufferSize = 2048)
    {
        var buffer = new byte[Math.Max(bufferSize, frame.Length)];
        frame.CopyTo(buffer, 0);
        actions.Clear();
        int n = handler.Handle(conn ?? Connection(), dir, buffer, frame.Length, reservedPort, actions, nowMs);
        return buffer.AsSpan(0, n).ToArray();
    }

    public static uint Seq(byte[] f) => BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(Frames.L4Offset(f) + 4));
    public static uint Ack(byte[] f) => BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(Frames.L4Offset(f) + 8));

    public static byte[] Payload(byte[] f)
    {
        int l4 = Frames.L4Offset(f);
        int total = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16));
        int hdr = f[23] == 17 ? 8 : (f[l4 + 12] >> 4) * 4;
        return f.AsSpan(l4 + hdr, 14 + total - l4 - hdr).ToArray();
    }

    public static string Text(byte[] f) => System.Text.Encoding.Latin1.GetString(Payload(f));

    public static byte[] Bytes(string s) => System.Text.Encoding.Latin1.GetBytes(s);

    /// <summary>SACK edges found in the frame's options.</summary>
    public static uint[] SackEdges(byte[] f)
    {
        int l4 = Frames.L4Offset(f);
        int hdr = (f[l4 + 12] >> 4) * 4;
        var edges = new List<uint>();
        for (int i = l4 + 20; i < l4 + hdr;)
        {
            if (f[i] == 0) break;
            if (f[i] == 1) { i++; continue; }
            if (f[i] == 5)
            {
                for (int e = i + 2; e < i + f[i + 1]; e += 4) edges.Add(BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(e)));
            }
            i += f[i + 1];
        }
        return [.. edges];
    }

    /// <summary>Both checksums verify with the dataplane's checksum code and the tests' own, and lengths agree.</summary>
    public static bool Valid(byte[] f)
    {
        if (!Frames.ChecksumsValid(f)) return false;
        var ip = f.AsSpan(14);
        int ihl = (ip[0] & 0xF) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if (14 + total > f.Length || !Checksum.Verify(ip[..ihl])) return false;
        byte proto = ip[9];
        ulong pseudo = Checksum.PseudoHeaderSum(Checksum.ReadRaw32(ip, 12), Checksum.ReadRaw32(ip, 16), proto, total - ihl);
        return Checksum.Verify(ip[ihl..total], pseudo);
    }

    /// <summary>A fixed-seed FsCheck configuration: deterministic, bounded.</summary>
    public static Config Fuzz(int tests, ulong seed)
        => Config.QuickThrowOnFailure.WithMaxTest(tests).WithReplay(FSharpOption<FsCheck.Replay>.Some(new FsCheck.Replay(new Rnd(seed), FSharpOption<int>.None)));

    private static (string, int, string, int) Endpoints(AlgDirection dir, AlgConnection c)
        => dir == AlgDirection.In2Out
            ? (Ipv4.Format(c.ExternalAddress), c.ExternalPort, Ipv4.Format(c.RemoteAddress), c.RemotePort)
            : (Ipv4.Format(c.RemoteAddress), c.RemotePort, Ipv4.Format(c.InsideAddress), c.InsidePort);
}

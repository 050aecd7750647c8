using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Natd.Dataplane.Io;

namespace Natd.Tests.Io;

/// <summary>
/// Transmit checksum offload across a veth (DESIGN section 9): a kernel UDP socket sends out of
/// va; the AF_PACKET port on the peer vb sees the frame. With offload on (the veth default) the
/// skb stays CHECKSUM_PARTIAL across the pair and the ring reports TP_STATUS_CSUMNOTREADY; with
/// offload off the checksum is complete and no flag is set.
/// </summary>
public sealed class AfPacketChecksumTests : IDisposable
{
    private const string SenderAddress = "10.199.0.1";
    private const string PeerAddress = "10.199.0.9"; // not local: the packet must leave through va
    private const int Port = 9999;
    private readonly VethNamespace _ns = VethNamespace.WithSender(SenderAddress, PeerAddress);

    public void Dispose() => _ns.Dispose();

    [Fact]
    public void Udp_sent_with_tx_offload_on_arrives_flagged_checksum_partial()
    {
        _ns.Exec("ethtool", "-K", VethNamespace.A, "tx", "on");
        var (frame, flags) = SendAndCapture();

        Assert.Equal(FrameFlags.ChecksumPartial, flags & FrameFlags.ChecksumPartial);
        // The field holds only the folded pseudo-header sum (not complemented): what a
        // completing dataplane starts from.
        Assert.Equal(PseudoHeaderFold(frame), UdpChecksumField(frame));
        Assert.NotEqual(0, UdpChecksumVerify(frame)); // not yet a finished checksum
    }

    [Fact]
    public void Udp_sent_with_tx_offload_off_arrives_complete_and_unflagged()
    {
        _ns.Exec("ethtool", "-K", VethNamespace.A, "tx", "off");
        var (frame, flags) = SendAndCapture();

        Assert.Equal(FrameFlags.None, flags & FrameFlags.ChecksumPartial);
        Assert.Equal(0, UdpChecksumVerify(frame)); // a finished checksum sums to 0xffff (complement 0)
    }

    private (byte[] Frame, FrameFlags Flags) SendAndCapture()
    {
        using var port = NetNamespace.RunIn(_ns.Name, () => AfPacketPort.Open(VethNamespace.B, AfPacketOptions.Default));
        // Fixed bytes keep the test deterministic (the namespace is private, so no nonce is needed).
        byte[] payload = new byte[64];
        for (int i = 0; i < payload.Length; i++)
        {
            payload[i] = (byte)(0x41 + i);
        }
        NetNamespace.RunIn(_ns.Name, () =>
        {
            using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(IPAddress.Parse(SenderAddress), 0));
            udp.SendTo(payload, new IPEndPoint(IPAddress.Parse(PeerAddress), Port));
        });

        using var batch = new FrameBatch(64);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            batch.Clear();
            port.Receive(batch);
            for (int i = 0; i < batch.Count; i++)
            {
                var f = batch.Frame(i);
                if (f.Length >= 42 + payload.Length && BinaryPrimitives.ReadUInt16BigEndian(f[12..]) == 0x0800
                    && f[23] == 17 && BinaryPrimitives.ReadUInt16BigEndian(f[36..]) == Port
                    && f.Slice(42, payload.Length).SequenceEqual(payload))
                {
                    return (f.ToArray(), batch.Flags[i]);
                }
            }
            PortPoller.Wait(port, port, 20);
        }
        throw new TimeoutException("the UDP datagram never reached the AF_PACKET port on the peer veth");
    }

    private static ushort UdpChecksumField(byte[] f) => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(40));

    private static uint PseudoSum(byte[] f)
    {
        int udpLength = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(38));
        uint sum = 0;
        for (int i = 26; i < 34; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(i)); // source and destination address
        }
        return sum + 17 + (uint)udpLength;
    }

    private static ushort Fold(uint sum)
    {
        while (sum > 0xffff)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        return (ushort)sum;
    }

    private static ushort PseudoHeaderFold(byte[] f) => Fold(PseudoSum(f));

    /// <summary>RFC 1071 over pseudo-header and UDP datagram; 0 when the checksum is right.</summary>
    private static ushort UdpChecksumVerify(byte[] f)
    {
        int udpLength = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(38));
        uint sum = PseudoSum(f);
        for (int i = 0; i < udpLength; i += 2)
        {
            int hi = f[34 + i];
            int lo = i + 1 < udpLength ? f[34 + i + 1] : 0;
            sum += (uint)((hi << 8) | lo);
        }
        return (ushort)~Fold(sum);
    }
}

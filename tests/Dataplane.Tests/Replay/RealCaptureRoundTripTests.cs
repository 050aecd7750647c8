using Natd.Control.Config;
using Natd.Control.Replay;
using Natd.Tests.Io;

namespace Natd.Tests.Replay;

/// <summary>
/// The --inside-trace round trip on real captures of single inside-host conversations (the
/// tcpdump project's test captures). Each gets a configuration whose inside network is the
/// capture's client, and an outside side in 203.0.113.0/24 (TEST-NET-3, used by none of them).
/// Where the server shares the client's /24, natd's inside address is the client's /31 partner so
/// that the server is not on the inside prefix (natd never translates inside-to-inside).
/// Replaced from the brief's list, since they do not fit: tcp-handshake-nano.pcap is Linux cooked
/// (not Ethernet), ipv4_tcp_http_xml.pcap is one 802.1Q-tagged frame from the server,
/// syslog_udp.pcap has no inbound frame; ssh.pcap, whois.pcap and ntp.pcap take their places.
/// </summary>
public class RealCaptureRoundTripTests
{
    private static string Config(string insideAddress, string client, bool verifyChecksums = true) => $"""
        interfaces:
          inside:
            address: {insideAddress}
            networks: [{client}/32]
          outside:
            address: 203.0.113.1/24
            gateway: 203.0.113.254
            martian-filter: off        # the captures' servers have private addresses (their labs)
        nat:
          pool: [203.0.113.1]
        dataplane:
          verify-checksums: {(verifyChecksums ? "true" : "false")}
        """;

    /// <param name="file">Capture in the shared tcpdump folder.</param>
    /// <param name="client">The inside host (found with tcpdump -nn -e -r FILE).</param>
    /// <param name="insideAddress">natd's inside address and prefix.</param>
    /// <param name="verify">False when the client's outbound frames carry offloaded (unfinished) checksums.</param>
    /// <param name="expected">Inbound frames that follow an outbound frame of their flow, counted by hand from tcpdump's listing.</param>
    /// <param name="unsolicited">Inbound frames with no earlier outbound frame of their flow.</param>
    [Theory]
    // 1 query, 1 answer.
    [InlineData("dns_udp.pcap", "192.168.1.11", "192.168.1.1/24", true, 1, 0)]
    // A DNS query over TCP: handshake, query, answer, close; 5 frames from the server.
    [InlineData("dns_tcp.pcap", "192.168.1.11", "192.168.1.1/24", true, 5, 0)]
    // The server answers the RRQ from a new port (59557): its first DATA belongs to no flow yet, the
    // client's ACK to 59557 opens that flow and the next two DATA frames come back in.
    [InlineData("tftp.pcap", "192.168.1.2", "192.168.1.3/31", true, 2, 1)]
    // Captured on a VirtualBox guest with transmit checksum offload: all 6 outbound TCP checksums are
    // unfinished (tcpdump -vv says "incorrect"), so verification is off; the 5 replies are correct.
    [InlineData("whois.pcap", "10.0.2.15", "10.0.2.2/24", false, 5, 0)]
    // An SSH session: 30 frames from the client, 24 from the server.
    [InlineData("ssh.pcap", "202.108.87.165", "202.108.87.1/24", true, 24, 0)]
    // Four NTP exchanges over 35 minutes, each a new flow (one from port 123): 4 replies. The
    // client's 4 UDP checksums are unfinished (tcpdump -vv: "bad udp cksum"; offload), so
    // verification is off. Both directions carry the same MAC pair, which natd must not mind.
    [InlineData("ntp.pcap", "192.168.100.2", "192.168.100.3/31", false, 4, 0)]
    public void Inside_trace_round_trip_reproduces_every_reply(string file, string client, string insideAddress, bool verify, int expected, int unsolicited)
    {
        var config = ConfigLoader.Parse(Config(insideAddress, client, verify), file + ".yaml");
        byte[] capture = File.ReadAllBytes(Path.Combine(Captures.Tcpdump, file));
        var o = RoundTrip.Check(capture, config, client);
        Assert.Equal(expected, o.Reproduced.Count);
        Assert.Equal(unsolicited, o.Unsolicited.Count);
        Assert.Equal(unsolicited, o.Result.Summary.TotalDrops);
    }

    [Fact]
    public void The_replaced_captures_do_not_fit_for_the_stated_reasons()
    {
        // Linux cooked capture: refused as a whole.
        var nano = File.ReadAllBytes(Path.Combine(Captures.Tcpdump, "tcp-handshake-nano.pcap"));
        var e = Assert.Throws<ReplayInputException>(() => ReplayKit.Run(nano, insideTrace: true));
        Assert.Contains("link type 113", e.Message);

        // One VLAN-tagged frame from the server, no outbound frame: nothing to reproduce.
        var http = ReplayKit.Read(File.ReadAllBytes(Path.Combine(Captures.Tcpdump, "ipv4_tcp_http_xml.pcap")));
        Assert.Equal(0x8100, Assert.Single(http).Data[12] << 8 | http[0].Data[13]);

        // Syslog is one-way: every frame is from the client.
        var syslog = ReplayKit.Read(File.ReadAllBytes(Path.Combine(Captures.Tcpdump, "syslog_udp.pcap")));
        Assert.NotEmpty(syslog);
        Assert.All(syslog, f => Assert.Equal("10.0.0.20", Support.Frames.Src(f.Data)));
    }
}

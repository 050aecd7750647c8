using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Pcp;
using Natd.Dataplane.Sessions;
using Natd.Tests.Support;
using static Natd.Tests.Pcp.PcpKit;

namespace Natd.Tests.Pcp;

/// <summary>
/// Exact request and response bytes for every result code natd sends (RFC 6887 section 7.4) and
/// for NAT-PMP (RFC 6886 section 3), each request hand-written from the RFCs' wire formats. The
/// first request of each engine fixes the epoch, so epoch time is 0 unless the test moves the clock.
/// </summary>
public class PcpProtocolTests
{
    private const string Host = EngineHarness.InsideHost;
    private static readonly string Ext = Mapped(EngineHarness.External);

    [Fact]
    public void Map_success_assigns_the_suggested_port_with_the_lifetime_granted_and_the_nonce_echoed()
    {
        var h = Harness();
        string reply = AskHex(h, Map(3600, Host, IpProtocol.Tcp, 8080, 8080));
        Assert.Equal(Head(1, 0, 3600, 0) + Nonce + "06000000" + "1f90" + "1f90" + Ext, reply);
        Assert.Equal(1, Count(h, PcpOutcome.Success));
    }

    [Fact]
    public void Map_lifetime_is_clamped_to_min_and_max_lifetime()
    {
        var h = Harness(p => p with { MinLifetime = 300, MaxLifetime = 1000 });
        Assert.Equal(Head(1, 0, 300, 0), AskHex(h, Map(10, Host, IpProtocol.Udp, 5000, 5000))[..48]);
        Assert.Equal(Head(1, 0, 1000, 0), AskHex(h, Map(99999, Host, IpProtocol.Udp, 5001, 5001))[..48]);
    }

    [Fact]
    public void Epoch_time_counts_seconds_since_the_first_request()
    {
        var h = Harness();
        AskHex(h, Map(3600, Host, IpProtocol.Udp, 5000, 5000));
        h.Now += 61_500;
        Assert.Equal(Head(1, 0, 3600, 61), AskHex(h, Map(3600, Host, IpProtocol.Udp, 5000, 5000))[..48]);
    }

    [Theory]
    [InlineData("01")] // a PCP version 1 (draft) client
    [InlineData("03")]
    public void Unsupported_version_gets_UNSUPP_VERSION_naming_version_2_with_a_long_lifetime(string version)
    {
        var h = Harness();
        string request = version + Map(3600, Host, IpProtocol.Tcp, 8080)[2..];
        Assert.Equal(Head(1, 1, 1800, 0), AskHex(h, request));
        Assert.Equal(1, Count(h, PcpOutcome.UnsuppVersion));
    }

    [Fact]
    public void Third_party_when_not_allowed_is_NOT_AUTHORIZED_with_the_request_echoed()
    {
        var h = Harness();
        string body = Nonce + "06000000" + "1f90" + "0000" + new string('0', 32) + ThirdParty("10.0.0.3").Replace(" ", "");
        string reply = AskHex(h, Map(3600, Host, IpProtocol.Tcp, 8080, options: ThirdParty("10.0.0.3")));
        Assert.Equal(Head(1, 2, 1800, 0) + body, reply);
        Assert.Equal(1, Count(h, PcpOutcome.NotAuthorized));
    }

    [Fact]
    public void Third_party_when_allowed_maps_the_other_host()
    {
        var h = Harness(p => p with { ThirdParty = true });
        byte[] r = Ask(h, Hex(Map(3600, Host, IpProtocol.Tcp, 8080, 8080, options: ThirdParty("10.0.0.3"))))!;
        Assert.Equal(PcpResultCode.Success, Result(r));
        Assert.Equal(1, h.Engine.PcpTable!.FindInternal(IpProtocol.Tcp, Ipv4.Parse("10.0.0.3"), FlowKey.PortToRaw(8080)) + 1);
    }

    [Fact]
    public void A_request_from_outside_the_inside_networks_is_NOT_AUTHORIZED()
    {
        var h = Harness();
        string reply = AskHex(h, Map(3600, "10.0.1.5", IpProtocol.Tcp, 8080), from: "10.0.1.5");
        Assert.Equal(Head(1, 2, 1800, 0), reply[..48]);
    }

    [Fact]
    public void Length_not_a_multiple_of_4_is_MALFORMED_REQUEST()
    {
        var h = Harness();
        string request = Map(3600, Host, IpProtocol.Tcp, 8080) + "00 00"; // 62 bytes
        Assert.Equal(Head(1, 3, 1800, 0) + Nonce + "06000000" + "1f90" + "0000" + new string('0', 32), AskHex(h, request));
        Assert.Equal(1, Count(h, PcpOutcome.MalformedRequest));
    }

    [Fact]
    public void A_header_shorter_than_24_bytes_is_MALFORMED_REQUEST_padded_to_a_header()
    {
        var h = Harness();
        Assert.Equal(Head(1, 3, 1800, 0), AskHex(h, "02 01 0000 00000e10 00000000"));
    }

    [Fact]
    public void A_MAP_too_short_for_its_opcode_is_MALFORMED_REQUEST_with_what_came_echoed()
    {
        var h = Harness();
        string request = Map(3600, Host, IpProtocol.Tcp, 8080).Replace(" ", "")[..(40 * 2)];
        Assert.Equal(Head(1, 3, 1800, 0) + request[48..], AskHex(h, request));
    }

    [Fact]
    public void Unknown_opcode_is_UNSUPP_OPCODE()
    {
        var h = Harness();
        Assert.Equal(Head(5, 4, 1800, 0), AskHex(h, "02 05 0000 00000000" + Mapped(Host)));
        Assert.Equal(1, Count(h, PcpOutcome.UnsuppOpcode));
    }

    [Fact]
    public void Unknown_mandatory_option_is_UNSUPP_OPTION_and_unknown_optional_is_ignored_and_not_echoed()
    {
        var h = Harness();
        string mandatory = "7f 00 0004 deadbeef";
        string reply = AskHex(h, Map(3600, Host, IpProtocol.Tcp, 8080, options: mandatory));
        Assert.Equal(Head(1, 5, 1800, 0) + Nonce + "06000000" + "1f90" + "0000" + new string('0', 32) + "7f000004deadbeef", reply);
        Assert.Equal(1, Count(h, PcpOutcome.UnsuppOption));

        string optional = "80 00 0004 deadbeef";
        reply = AskHex(h, Map(3600, Host, IpProtocol.Tcp, 8081, 8081, options: optional + PreferFailure));
        Assert.Equal(Head(1, 0, 3600, 0) + Nonce + "06000000" + "1f91" + "1f91" + Ext + "02000000", reply);
    }

    [Theory]
    [InlineData("02 00 0004 00000000")]                 // PREFER_FAILURE with data
    [InlineData("02 00 0000 02 00 0000")]               // PREFER_FAILURE twice
    [InlineData("03 00 0010 00000000 00000000 00000000 00000000")] // FILTER of 16 bytes
    [InlineData("01 00 0010 20010db8000000000000000000000001")]     // THIRD_PARTY not IPv4-mapped
    [InlineData("03 00 0014 00 28 0000 00000000000000000000ffffc6336402")] // FILTER prefix 40: neither 0-32 nor 96-128
    [InlineData("03 00 0018 00 20 0000 00000000000000000000ffffc6336402")] // option longer than the message
    public void Bad_option_is_MALFORMED_OPTION(string option)
    {
        var h = Harness();
        string request = Map(3600, Host, IpProtocol.Tcp, 8080, options: option);
        string reply = AskHex(h, request);
        Assert.Equal(Head(1, 6, 1800, 0), reply[..48]);
        Assert.Equal(Hex(request).Length, reply.Length / 2);
        Assert.Equal(ToHex(Hex(request))[48..], reply[48..]);
        Assert.Equal(1, Count(h, PcpOutcome.MalformedOption));
    }

    [Fact]
    public void A_FILTER_in_a_PEER_is_MALFORMED_OPTION()
    {
        var h = Harness();
        string reply = AskHex(h, Peer(600, Host, IpProtocol.Tcp, 40000, "198.51.100.2", 80, Filter(32, 0, "198.51.100.2")));
        Assert.Equal(Head(2, 6, 1800, 0), reply[..48]);
    }

    [Fact]
    public void No_port_left_is_NO_RESOURCES_with_a_short_lifetime()
    {
        var h = Harness(more: s => s with { PortMin = 40000, PortMax = 40001 }, pcp: p => p with { AllowedPorts = new PortRange(40000, 40001) });
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5000)))!));
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5001)))!));
        string reply = AskHex(h, Map(3600, Host, IpProtocol.Udp, 5002));
        Assert.Equal(Head(1, 8, 30, 0) + Nonce + "11000000" + "138a" + "0000" + new string('0', 32), reply);
        Assert.Equal(1, Count(h, PcpOutcome.NoResources));
    }

    [Theory]
    [InlineData(0, 0)]   // all protocols
    [InlineData(47, 0)]  // GRE has no ports to map
    [InlineData(132, 5000)] // SCTP: not translated by natd
    public void Protocols_other_than_TCP_and_UDP_are_UNSUPP_PROTOCOL(int protocol, int port)
    {
        var h = Harness();
        string reply = AskHex(h, Map(3600, Host, protocol, port));
        Assert.Equal(Head(1, 9, 1800, 0), reply[..48]);
        Assert.Equal(1, Count(h, PcpOutcome.UnsuppProtocol));
    }

    [Fact]
    public void Mappings_over_the_subscribers_quota_are_USER_EX_QUOTA()
    {
        var h = Harness(p => p with { MappingsPerSubscriber = 1 });
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(3600, Host, IpProtocol.Udp, 5000)))!));
        Assert.Equal(Head(1, 10, 30, 0), AskHex(h, Map(3600, Host, IpProtocol.Udp, 5001))[..48]);
        Assert.Equal(1, Count(h, PcpOutcome.UserExQuota));
        // Another subscriber has its own quota.
        Assert.Equal(PcpResultCode.Success, Result(Ask(h, Hex(Map(3600, "10.0.0.3", IpProtocol.Udp, 5001)), from: "10.0.0.3")!));
    }

    [Fact]
    public void Prefer_failure_with_the_suggested_port_taken_is_CANNOT_PROVIDE_EXTERNAL()
    {
        var h = Harness();
        Assert.Equal(8080, ExternalPort(Ask(h, Hex(Map(3600, Host, IpProtocol.Tcp, 8080, 8080)))!));
        string request = Map(3600, "10.0.0.3", IpProtocol.Tcp, 8080, 8080, options: PreferFailure);
        Assert.Equal(Head(1, 11, 30, 0) + ToHex(Hex(request))[48..], AskHex(h, request, from: "10.0.0.3"));
        Assert.Equal(1, Count(h, PcpOutcome.CannotProvideExternal));
        // Without PREFER_FAILURE the same request gets another port.
        byte[] other = Ask(h, Hex(Map(3600, "10.0.0.3", IpProtocol.Tcp, 8080, 8080)), from: "10.0.0.3")!;
        Assert.Equal(PcpResultCode.Success, Result(other));
        Assert.NotEqual(8080, ExternalPort(other));
    }

    [Fact]
    public void A_client_address_field_other_than_the_source_is_ADDRESS_MISMATCH()
    {
        var h = Harness();
        string request = Map(3600, "10.0.0.9", IpProtocol.Tcp, 8080);
        Assert.Equal(Head(1, 12, 1800, 0) + ToHex(Hex(request))[48..], AskHex(h, request));
        Assert.Equal(1, Count(h, PcpOutcome.AddressMismatch));
    }

    [Fact]
    public void More_filters_than_a_mapping_keeps_is_EXCESSIVE_REMOTE_PEERS()
    {
        var h = Harness();
        string filters = string.Concat(Enumerable.Range(2, PcpRequest.MaxFilters + 1).Select(i => Filter(32, 0, $"198.51.100.{i}")));
        Assert.Equal(Head(1, 13, 1800, 0), AskHex(h, Map(3600, Host, IpProtocol.Tcp, 8080, options: filters))[..48]);
        Assert.Equal(1, Count(h, PcpOutcome.ExcessiveRemotePeers));
    }

    [Fact]
    public void Announce_request_is_answered_with_success_and_the_epoch()
    {
        var h = Harness();
        Assert.Equal(Head(0, 0, 0, 0), AskHex(h, "02 00 0000 00000000" + Mapped(Host)));
    }

    [Theory]
    [InlineData("02")]                      // shorter than 2 bytes
    [InlineData("0281")]                    // a response (R bit)
    [InlineData("0081")]                    // a NAT-PMP response (opcode >= 128)
    public void Requests_the_RFC_ignores_get_silence(string request)
    {
        var h = Harness();
        Assert.Equal("", AskHex(h, request));
        Assert.Equal(DropReason.PcpIgnored, h.LastDrop);
        Assert.Equal(1, Count(h, PcpOutcome.Dropped));
    }

    [Fact]
    public void NatPmp_external_address_request()
    {
        var h = Harness();
        Assert.Equal("0080" + "0000" + "00000000" + "c6336401", AskHex(h, "00 00"));
        Assert.Equal(1, Count(h, PcpOutcome.NatPmpSuccess));
    }

    [Fact]
    public void NatPmp_udp_mapping_then_delete()
    {
        var h = Harness();
        // version 0, opcode 1 (UDP), reserved, internal 5000, suggested 5000, lifetime 60 (raised to 120).
        Assert.Equal("0081" + "0000" + "00000000" + "1388" + "1388" + "00000078", AskHex(h, "00 01 0000 1388 1388 0000003c"));
        Assert.Equal("0081" + "0000" + "00000000" + "1388" + "0000" + "00000000", AskHex(h, "00 01 0000 1388 0000 00000000"));
        Assert.Equal(0, h.Engine.PcpTable!.Count);
    }

    [Fact]
    public void NatPmp_tcp_mapping_reports_tcp()
    {
        var h = Harness();
        Assert.Equal("0082" + "0000" + "00000000" + "0050" + "1f90" + "00000e10", AskHex(h, "00 02 0000 0050 1f90 00000e10"));
    }

    [Fact]
    public void NatPmp_unsupported_opcode_and_refusals()
    {
        var h = Harness(p => p with { MappingsPerSubscriber = 1 });
        Assert.Equal("0085" + "0005" + "00000000", AskHex(h, "00 05"));
        Assert.Equal(1, Count(h, PcpOutcome.NatPmpUnsuppOpcode));
        Assert.Equal("0080" + "0002" + "00000000" + "00000000", AskHex(h, "00 00", from: "10.0.1.5"));
        Assert.Equal(1, Count(h, PcpOutcome.NatPmpNotAuthorized));
        AskHex(h, "00 01 0000 1388 1388 00000e10");
        Assert.Equal("0081" + "0004" + "00000000" + "1389" + "0000" + "00000000", AskHex(h, "00 01 0000 1389 1389 00000e10"));
        Assert.Equal(1, Count(h, PcpOutcome.NatPmpOutOfResources));
    }

    [Fact]
    public void NatPmp_mapping_request_too_short_is_dropped_as_malformed()
    {
        var h = Harness();
        Assert.Equal("", AskHex(h, "00 01 0000 1388"));
        Assert.Equal(1, Count(h, PcpOutcome.NatPmpMalformed));
    }

    [Fact]
    public void Pcp_off_leaves_the_port_to_the_gateway_drop()
    {
        var h = new EngineHarness();
        Assert.Null(Ask(h, Hex("00 00")));
        Assert.Equal(DropReason.ToGateway, h.LastDrop);
    }
}

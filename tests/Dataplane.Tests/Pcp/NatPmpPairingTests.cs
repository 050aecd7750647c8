using System.Buffers.Binary;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Pcp;
using Natd.Dataplane.Packets;
using Natd.Tests.Support;
using static Natd.Tests.Pcp.PcpKit;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Pcp;

/// <summary>
/// NAT-PMP under carrier-grade NAT with subscriber state and two pool addresses: the external
/// address a client is told (RFC 6886 section 3.2) must be the one its mappings and flows take,
/// since a NAT-PMP mapping reply does not repeat it. The address answer pairs the subscriber and
/// holds that pairing for <c>pcp.min-lifetime</c>.
/// </summary>
public class NatPmpPairingTests
{
    private const string Second = "198.51.100.7";

    private static EngineHarness TwoAddresses() => Harness(more: s => s with
    {
        Cgnat = CgnatKit.Pba(size: 64),
        Pool = [Ipv4.Parse(EngineHarness.External), Ipv4.Parse(Second)],
    });

    private static string Told(EngineHarness h, string inside)
    {
        byte[] reply = Ask(h, Hex("00 00"), inside)!;
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(2)));
        return Ipv4.Format(Ipv4.FromHostOrder(BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(8))));
    }

    /// <summary>
    /// Each host asks its address, maps UDP 5000 and sends from it: the mapping and the flow leave
    /// from the address it was told. Before, an unpaired subscriber was told the hash's address
    /// while its mapping's port paired it with the least loaded, apart for about a third of the hosts.
    /// </summary>
    [Fact]
    public void A_clients_mapping_and_flows_take_the_address_it_was_told()
    {
        var h = TwoAddresses();
        var told = new HashSet<string>();
        for (int host = 2; host < 40; host++)
        {
            string inside = $"10.0.0.{host}";
            string address = Told(h, inside);
            told.Add(address);
            byte[] map = Ask(h, Hex("00 01 0000 1388 1388 00000e10"), inside)!;
            Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(map.AsSpan(2)));
            int external = BinaryPrimitives.ReadUInt16BigEndian(map.AsSpan(10));
            var mappings = new List<PcpMappingInfo>();
            h.Engine.CollectPcpMappings(mappings, h.Now);
            PcpMappingInfo m = Assert.Single(mappings, x => x.Internal == Ipv4.Parse(inside));
            Assert.Equal((Ipv4.Parse(address), (ushort)external), (m.External, m.ExternalPort));
            byte[] sent = h.Out(Udp(inside, 5000, EngineHarness.OutsideHost, 53));
            Assert.Equal((address, external), (Src(sent), SrcPort(sent)));
            Assert.Equal(address, Told(h, inside)); // asked again: the same
        }
        Assert.Equal(2, told.Count); // the answers still spread subscribers over both addresses
    }

    /// <summary>An address answer alone holds its pairing for pcp.min-lifetime, then the subscriber goes.</summary>
    [Fact]
    public void An_address_answer_holds_the_pairing_for_the_minimum_lifetime_then_lets_go()
    {
        var h = TwoAddresses();
        uint key = Ipv4.Parse("10.0.0.9");
        string address = Told(h, "10.0.0.9");
        var held = Assert.Single(h.Engine.Subscribers!.List(), s => s.Subscriber == key);
        Assert.Equal((Ipv4.Parse(address), 0), (held.External, held.Ports));
        long hold = h.Engine.Settings.Pcp.MinLifetime * 1000L;
        h.Now += hold - 1_000;
        h.Engine.Sweep(h.Now, 100_000);
        Assert.Contains(h.Engine.Subscribers!.List(), s => s.Subscriber == key);
        h.Now += 2_000;
        h.Engine.Sweep(h.Now, 100_000);
        Assert.DoesNotContain(h.Engine.Subscribers!.List(), s => s.Subscriber == key);
    }

    // Spill pairing, two addresses of two 16-port blocks each (ports 1024-1055): inside's 32 UDP
    // flows fill the address it is paired with (returned); the next port spills to the other.
    private static (EngineHarness H, string Paired) SpillWithPairedAddressFull(string inside)
    {
        var h = Harness(more: s => s with
        {
            Cgnat = CgnatKit.Pba(size: 16, perSubscriber: 8, pairing: Pairing.Spill),
            Pool = [Ipv4.Parse(EngineHarness.External), Ipv4.Parse(Second)],
            PortMin = 1024,
            PortMax = 1055,
        });
        string paired = Src(h.Out(Udp(inside, 40000, EngineHarness.OutsideHost, 53)));
        for (int i = 1; i < 32; i++)
        {
            Assert.Equal(paired, Src(h.Out(Udp(inside, 40000 + i, EngineHarness.OutsideHost, 53))));
        }
        return (h, paired);
    }

    /// <summary>
    /// Spill pairing with the told address full: a NAT-PMP mapping would land on the other address,
    /// which its reply cannot say, so it is refused (out of resources) and its port given back; PCP,
    /// whose reply names the address, gets the spilled one.
    /// </summary>
    [Fact]
    public void A_natpmp_mapping_that_would_spill_to_another_address_is_refused_and_pcp_gets_it()
    {
        const string inside = "10.0.0.9";
        var (h, paired) = SpillWithPairedAddressFull(inside);
        Assert.Equal(paired, Told(h, inside));
        int portsBefore = h.Engine.Subscribers!.List().Single(x => x.Subscriber == Ipv4.Parse(inside)).Ports;

        byte[] map = Ask(h, Hex("00 01 0000 1388 1388 00000e10"), inside)!;
        Assert.Equal(4, BinaryPrimitives.ReadUInt16BigEndian(map.AsSpan(2))); // NAT-PMP: out of resources
        var mappings = new List<PcpMappingInfo>();
        h.Engine.CollectPcpMappings(mappings, h.Now);
        Assert.Empty(mappings);
        Assert.Equal(portsBefore, h.Engine.Subscribers!.List().Single(x => x.Subscriber == Ipv4.Parse(inside)).Ports); // the spilled port went back

        byte[] pcp = Ask(h, Hex(Map(3600, inside, IpProtocol.Udp, 5000)), inside)!;
        Assert.Equal(PcpResultCode.Success, Result(pcp));
        h.Engine.CollectPcpMappings(mappings, h.Now);
        Assert.Equal(Ipv4.Parse(Second == paired ? EngineHarness.External : Second), Assert.Single(mappings).External);
    }

    /// <summary>
    /// The same, where the internal port already has an implicit mapping that spilled to the other
    /// address: NAT-PMP does not take it over (its reply would name neither address); it is refused.
    /// </summary>
    [Fact]
    public void A_natpmp_mapping_does_not_take_over_an_implicit_mapping_on_another_address()
    {
        const string inside = "10.0.0.9";
        var (h, paired) = SpillWithPairedAddressFull(inside);
        string spilled = Src(h.Out(Udp(inside, 5000, EngineHarness.OutsideHost, 53))); // UDP 5000's implicit mapping, on the other address
        Assert.NotEqual(paired, spilled);
        Assert.Equal(paired, Told(h, inside));

        byte[] map = Ask(h, Hex("00 01 0000 1388 1388 00000e10"), inside)!;
        Assert.Equal(4, BinaryPrimitives.ReadUInt16BigEndian(map.AsSpan(2)));
        var mappings = new List<PcpMappingInfo>();
        h.Engine.CollectPcpMappings(mappings, h.Now);
        Assert.Empty(mappings);
        Assert.Equal(spilled, Src(h.Out(Udp(inside, 5000, EngineHarness.OutsideHost, 53)))); // the implicit mapping goes on
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Natd.Dataplane.Io;

namespace Natd.Tests.Io;

/// <summary>
/// The link settings natd reads and sets on the interfaces it takes (<see cref="LinkSettings"/>),
/// on a real veth pair, and what a port does with a frame larger than its slot.
/// </summary>
public sealed class LinkSettingsTests : IDisposable
{
    private const string SenderAddress = "10.199.1.1";
    private const string PeerAddress = "10.199.1.9"; // not local: the datagram leaves through va
    private const int Port = 9998;
    private readonly VethNamespace _ns = VethNamespace.WithSender(SenderAddress, PeerAddress);

    public void Dispose() => _ns.Dispose();

    private T In<T>(Func<T> f) => NetNamespace.RunIn(_ns.Name, f);

    private bool GroOn(string dev) => _ns.Exec("ethtool", "-k", dev).Contains("generic-receive-offload: on", StringComparison.Ordinal);

    [Fact]
    public void Mtu_is_the_interfaces_and_a_missing_interface_is_named()
    {
        _ns.Exec("ip", "link", "set", VethNamespace.B, "mtu", "3000");
        Assert.Equal(3000, In(() => LinkSettings.Mtu(VethNamespace.B)));
        Assert.Equal(1500, In(() => LinkSettings.Mtu(VethNamespace.A)));
        var e = Assert.Throws<NativeIoException>(() => In(() => LinkSettings.Mtu("natd-nosuch0")));
        Assert.Contains("natd-nosuch0", e.Message, StringComparison.Ordinal);
        Assert.Equal(2030, LinkSettings.LargestMtu); // a 2048-byte slot less an Ethernet header and a VLAN tag
    }

    [Fact]
    public void Receive_coalescing_goes_off_and_comes_back_on_and_an_interface_without_it_is_left_alone()
    {
        _ns.Exec("ethtool", "-K", VethNamespace.B, "gro", "on");
        Assert.True(GroOn(VethNamespace.B));

        CoalescingChange change = In(() => LinkSettings.TurnOffReceiveCoalescing(VethNamespace.B, out string? refused) is var c && refused is null ? c : throw new InvalidOperationException(refused));
        Assert.Equal(new CoalescingChange(VethNamespace.B, Gro: true, Lro: false), change); // a veth's LRO is fixed off
        Assert.False(GroOn(VethNamespace.B));

        // Already off: nothing to change, nothing to restore.
        CoalescingChange again = In(() => LinkSettings.TurnOffReceiveCoalescing(VethNamespace.B, out _));
        Assert.False(again.Any);
        Assert.Null(In(() => LinkSettings.Restore(again)));
        Assert.False(GroOn(VethNamespace.B));

        Assert.Null(In(() => LinkSettings.Restore(change)));
        Assert.True(GroOn(VethNamespace.B));
        Assert.False(GroOn(VethNamespace.A)); // the peer was never touched
    }

    [Theory]
    [InlineData("af_packet")]
    [InlineData("af_xdp")]
    public void A_frame_larger_than_a_slot_is_dropped_and_counted_and_the_next_one_arrives(string driver)
    {
        _ns.Exec("ip", "link", "set", VethNamespace.A, "mtu", "3000");
        _ns.Exec("ip", "link", "set", VethNamespace.B, "mtu", "3000");
        using IPacketPort port = In<IPacketPort>(() => driver == "af_xdp"
            ? AfXdpPort.Open(VethNamespace.B, AfXdpOptions.Default)
            : AfPacketPort.Open(VethNamespace.B, AfPacketOptions.Default));

        Send(new byte[2500]); // a 2,542-byte frame: past the 2,048-byte slot
        Send([0x6e, 0x61, 0x74, 0x64]);

        using var batch = new FrameBatch(64);
        var clock = Stopwatch.StartNew();
        int small = 0, large = 0;
        while (small == 0 && clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            batch.Clear();
            port.Receive(batch);
            for (int i = 0; i < batch.Count; i++)
            {
                var f = batch.Frame(i);
                if (f.Length > 42 && f[23] == 17 && f[36] == Port >> 8 && f[37] == (Port & 0xff))
                {
                    small += f.Length == 42 + 4 ? 1 : 0;
                    large += f.Length > 42 + 4 ? 1 : 0;
                }
            }
            PortPoller.Wait(port, port, 20);
        }
        Assert.Equal(1, small);
        Assert.Equal(0, large);
        Assert.Equal(1, port.Stats.RxOversize);
        Assert.Equal(0, port.Stats.RxDropped); // not a ring overrun
    }

    private void Send(byte[] payload) => NetNamespace.RunIn(_ns.Name, () =>
    {
        using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        udp.Bind(new IPEndPoint(IPAddress.Parse(SenderAddress), 0));
        udp.SendTo(payload, new IPEndPoint(IPAddress.Parse(PeerAddress), Port));
    });
}

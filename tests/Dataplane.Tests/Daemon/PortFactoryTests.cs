using Natd.Control.Config;
using Natd.Control.Daemon;
using Natd.Dataplane.Io;
using Natd.Tests.Io;

namespace Natd.Tests.Daemon;

/// <summary>
/// dataplane.xdp-fill-ring reaching the AF_XDP sockets the daemon opens: the options it derives,
/// and the fill rings of a real shared-UMEM pair on two veths.
/// </summary>
public sealed class PortFactoryTests
{
    [Fact]
    public void Without_the_setting_the_driver_defaults_stay()
    {
        AfXdpOptions o = PortFactory.XdpOptions(1, null);
        Assert.Equal(1, o.QueueId);
        Assert.Equal(AfXdpOptions.Default.FrameCount, o.FrameCount);
        Assert.Equal(AfXdpOptions.Default.RingSize, o.RingSize);
        Assert.Equal(0, o.FillRingFrames);
        Assert.Equal([0x0800, 0x0806], o.RedirectEtherTypes!);
    }

    [Theory]
    [InlineData(64, 256, 2048)]
    [InlineData(1024, 4096, 2048)]    // the default pair's geometry, spelled out
    [InlineData(3000, 12000, 4096)]   // rings are powers of two: rounded up
    [InlineData(4096, 16384, 4096)]
    [InlineData(16384, 65536, 16384)] // the largest: the UMEM's 65536-frame limit
    public void The_setting_sizes_the_fill_ring_the_umem_and_the_rings(int fill, int frames, int ring)
    {
        AfXdpOptions o = PortFactory.XdpOptions(0, fill);
        o.Validate();
        Assert.Equal(fill, o.FillRingFrames);
        Assert.Equal(frames, o.FrameCount);
        Assert.Equal(ring, o.RingSize);
    }

    [Theory]
    [InlineData(null, 1, 2, null)]   // a core to spare: the driver's default
    [InlineData(null, 2, 2, 4096)]   // the pollers take every core: deeper
    [InlineData(null, 3, 2, 4096)]
    [InlineData(null, 1, 1, 4096)]
    [InlineData(2048, 2, 2, 2048)]   // the setting wins either way
    [InlineData(256, 1, 2, 256)]
    public void Unset_the_fill_ring_deepens_only_when_the_pollers_take_every_core(int? setting, int pollers, int cores, int? expected)
        => Assert.Equal(expected, PortFactory.XdpFillRing(setting, pollers, cores));

    [Theory]
    [InlineData(null, 2, 1024)]
    [InlineData(null, 1, 4096)]
    [InlineData(4096, 2, 4096)]
    [InlineData(512, 1, 512)]
    public void A_shared_umem_pair_keeps_the_configured_frames_on_each_fill_ring(int? setting, int cores, int expected)
    {
        string ns = $"natd-pf-{Guid.NewGuid():N}"[..20];
        Shell.Run("ip", "netns", "add", ns);
        try
        {
            foreach (var (a, b) in new[] { ("natin", "hostin"), ("natout", "hostout") })
            {
                Shell.Run("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b);
                Shell.Run("ip", "-n", ns, "link", "set", a, "up");
                Shell.Run("ip", "-n", ns, "link", "set", b, "up");
            }
            string yaml = setting is int f ? $"dataplane: {{ xdp-fill-ring: {f} }}\n" : "dataplane: { batch: 64 }\n";
            NatdConfig config = ConfigLoader.Parse(yaml, "test.yaml");
            OpenedPorts opened = NetNamespace.RunIn(ns, () => PortFactory.Open(config, pollers: 1, cores));
            try
            {
                Assert.True(opened.SharedUmem, string.Join("; ", opened.Notes));
                var (inside, outside) = ((AfXdpPort)opened.Pairs[0].Inside, (AfXdpPort)opened.Pairs[0].Outside);
                Assert.Equal(expected, inside.FillFrames);
                Assert.Equal(expected, outside.FillFrames);
                Assert.Equal(4 * expected, inside.UmemFrameCount);
                Assert.Equal(2 * expected, inside.UmemFreeFrames); // half of the UMEM waits for transmitting
                Assert.Equal(expected, opened.XdpFillFrames); // what the ready line reports
            }
            finally
            {
                foreach (var (i, o) in opened.Pairs)
                {
                    i.Dispose();
                    o.Dispose();
                }
            }
        }
        finally
        {
            Shell.TryRun(TimeSpan.FromSeconds(20), "ip", "netns", "delete", ns);
        }
    }
}

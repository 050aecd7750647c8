using System.Diagnostics;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;

namespace Natd.Tests.Replay;

/// <summary>
/// RFC 4787 REQ-14 in replay, with captures scapy builds (Scripts/fragment_captures.py): a 4000-byte
/// UDP datagram whose fragments arrive in reverse order and its reply with the first fragment last
/// leave translated and, joined, carry the payload with a valid checksum; overlapping fragments
/// (teardrop) are dropped and counted.
/// </summary>
public class FragmentReplayTests
{
    private static Dictionary<string, byte[]> Captures(int? externalPort = null)
    {
        var dir = Directory.CreateTempSubdirectory("natd-frag-");
        try
        {
            var psi = new ProcessStartInfo("/usr/bin/python3")
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Replay", "Scripts", "fragment_captures.py"));
            psi.ArgumentList.Add(dir.FullName);
            if (externalPort is int p)
            {
                psi.ArgumentList.Add(p.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            using var proc = Process.Start(psi)!;
            string err = proc.StandardError.ReadToEnd();
            Assert.True(proc.WaitForExit(60_000), "scapy did not finish");
            Assert.True(proc.ExitCode == 0, $"fragment_captures.py failed: {err}");
            return Directory.GetFiles(dir.FullName).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static byte[] Payload(int n, int k)
    {
        var p = new byte[n];
        for (int i = 0; i < n; i++)
        {
            p[i] = (byte)((i * k) + 3);
        }
        return p;
    }

    [Fact]
    public void Out_of_order_fragments_each_way_leave_translated_and_join_to_the_datagram()
    {
        // First the request alone, to learn the external port the seeded replay gives it.
        var first = ReplayKit.Run(Captures()["udp-out-of-order.pcap"]);
        var outbound = first.Out.Where(f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data)).Select(f => f.Data).ToList();
        Assert.Equal(3, outbound.Count);
        var joined = FragmentKit.Join(outbound);
        Assert.True(ChecksumsValid(joined));
        Assert.Equal("198.51.100.1", Src(joined));
        Assert.Equal(5000, DstPort(joined));
        Assert.Equal(Payload(4000, 7), joined[(14 + 20 + 8)..]);
        int ext = SrcPort(joined);
        Assert.Equal(2, first.Summary.Consumed); // the two later fragments waited for the first

        var r = ReplayKit.Run(Captures(ext)["udp-out-of-order.pcap"]);
        var inbound = r.Out.Where(f => f.Interface == "inside").Select(f => f.Data).ToList();
        Assert.Equal(3, inbound.Count);
        var back = FragmentKit.Join(inbound);
        Assert.True(ChecksumsValid(back));
        Assert.Equal("10.0.0.2", Dst(back));
        Assert.Equal(40000, DstPort(back));
        Assert.Equal(Payload(3500, 11), back[(14 + 20 + 8)..]);
        Assert.Empty(r.Summary.Drops);
    }

    [Fact]
    public void Overlapping_fragments_teardrop_are_dropped_and_counted()
    {
        var r = ReplayKit.Run(Captures()["teardrop.pcap"]);
        Assert.Single(r.Out, f => f.Interface == "outside" && ReplayKit.IsIpv4(f.Data)); // the first fragment had already gone
        Assert.Equal(1, r.Summary.Drops["fragment-overlap"]);
        Assert.Equal(1, r.Summary.Drops["fragment-of-dropped-datagram"]);
        Assert.Equal(["fragment-overlap", "fragment-of-dropped-datagram"], r.Drops.Select(d => d.Comment ?? "").ToArray());
    }
}

using System.Text;
using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;

namespace Natd.Tests.Replay;

/// <summary>
/// `natd replay` runs ALGs as live mode does, inline and in file order: an FTP control
/// connection's PORT commands come out rewritten to the external address and a reserved port, the
/// server's data connection opens through the expectation, reserved ports come back when the
/// expectations expire, and every frame read is accounted for.
/// </summary>
public class AlgReplayTests
{
    private const string Host = "10.0.0.2", Ext = "198.51.100.1", Server = "203.0.113.21", Other = "203.0.113.53";
    private const byte Syn = 2, Psh = 8, Ack = 16;
    private const int ControlPort = 33000;

    /// <summary>Five external ports: the control connection's and four that PORT commands reserve.</summary>
    private static NatdConfig Config() => ConfigLoader.Parse("nat:\n  ports: 40000-40004\n", "t.yaml");

    private static long Ts(double seconds) => ReplayKit.T0 + (long)(seconds * 1e9);

    private static byte[] Port(int dataPort) => Encoding.ASCII.GetBytes($"PORT 10,0,0,2,{dataPort >> 8},{dataPort & 0xFF}\r\n");

    /// <summary>The 12 frames of the capture the issue describes: an FTP control connection with 4 PORT commands, then a later flow.</summary>
    /// <param name="control">The control connection's external port (replies go there).</param>
    /// <param name="data">The reserved port the first PORT command advertises (the server's data connection goes there).</param>
    private static List<CapFrame> Capture(int control, int data)
    {
        var f = new List<CapFrame>();
        uint cseq = 1000, sseq = 5000;
        void In(byte[] frame, double t) => f.Add(new CapFrame(frame, Ts(t), "inside"));
        void Out(byte[] frame, double t) => f.Add(new CapFrame(Lab.FromOutside(frame), Ts(t), "outside"));
        void Command(byte[] payload, double t)
        {
            In(Frames.Tcp(Host, ControlPort, Server, 21, Psh | Ack, cseq, sseq + 1, payload), t);
            cseq += (uint)payload.Length;
        }

        f.Add(Lab.RouterArp(Ts(0)));
        In(Frames.Tcp(Host, ControlPort, Server, 21, Syn, cseq++), 0.1);
        Out(Frames.Tcp(Server, 21, Ext, control, Syn | Ack, sseq, cseq), 0.2);
        In(Frames.Tcp(Host, ControlPort, Server, 21, Ack, cseq, sseq + 1), 0.3);
        Command(Port(50001), 1);
        // The server opens the active data connection to the reserved port PORT advertised.
        Out(Frames.Tcp(Server, 20, Ext, data, Syn, 9000), 1.1);
        Command(Port(50002), 2);
        Out(Frames.Tcp(Server, 21, Ext, control, Psh | Ack, sseq + 1, cseq, "200 PORT command successful\r\n"u8.ToArray()), 2.1);
        Command(Port(50003), 3);
        Command(Port(50004), 4);
        // After the expectation timeout (60 s), the three unused reservations are free again.
        In(Frames.Udp(Host, 5353, Other, 53, "query"u8.ToArray()), 70);
        In(Frames.Udp("10.0.0.3", 5353, Other, 53, "query"u8.ToArray()), 70.1);
        return f;
    }

    private static (List<CapFrame> Input, ReplayResult Result) Run()
    {
        // natd chooses the external ports (seeded): a first pass learns the control connection's and
        // the first PORT command's, which the server's frames of the second pass are addressed to.
        var first = ReplayKit.Run(ReplayKit.PcapNg(Capture(40000, 40001)), Config());
        var outside = first.Out.Where(o => o.Interface == "outside" && ReplayKit.IsIpv4(o.Data)).ToList();
        int control = outside.Select(o => ReplayKit.Tuple(o.Data)).FirstOrDefault(t => t?.DPort == 21)?.SPort ?? 40000;
        var ports = outside.Select(o => ParsePort(o.Data)).Where(p => p is not null).Select(p => p!.Value.Port).ToList();
        int data = ports.Count > 0 ? ports[0] : 40001;
        var input = Capture(control, data);
        return (input, ReplayKit.Run(ReplayKit.PcapNg(input), Config()));
    }

    /// <summary>The (address, port) a PORT command in a TCP frame names, or null.</summary>
    private static (string Address, int Port)? ParsePort(byte[] frame)
    {
        if (!ReplayKit.IsIpv4(frame) || ReplayKit.Proto(frame) != 6)
        {
            return null;
        }
        int l4 = Frames.L4Offset(frame);
        int payload = l4 + (frame[l4 + 12] >> 4) * 4;
        int end = 14 + ReplayKit.IpTotal(frame);
        string text = Encoding.ASCII.GetString(frame, payload, end - payload);
        if (!text.StartsWith("PORT ", StringComparison.Ordinal))
        {
            return null;
        }
        var n = text[5..].TrimEnd('\r', '\n').Split(',').Select(int.Parse).ToArray();
        return ($"{n[0]}.{n[1]}.{n[2]}.{n[3]}", n[4] * 256 + n[5]);
    }

    [Fact]
    public void Port_commands_come_out_rewritten_to_the_external_address_and_a_reserved_port()
    {
        var (_, r) = Run();
        var commands = r.Out.Where(o => o.Interface == "outside").Select(o => ParsePort(o.Data)).Where(p => p is not null).Select(p => p!.Value).ToList();
        Assert.Equal(4, commands.Count);
        var controlFrame = r.Out.Where(o => o.Interface == "outside").Select(o => ReplayKit.Tuple(o.Data)).FirstOrDefault(t => t?.DPort == 21);
        Assert.NotNull(controlFrame);
        int control = controlFrame.Value.SPort;
        Assert.InRange(control, 40000, 40004);
        Assert.All(commands, c => Assert.Equal(Ext, c.Address));
        Assert.All(commands, c => Assert.InRange(c.Port, 40000, 40004));
        // Each command reserved its own port: with the control connection's, the whole range.
        Assert.Equal(5, commands.Select(c => c.Port).Append(control).Distinct().Count());
        Assert.All(r.Out.Where(o => ReplayKit.IsIpv4(o.Data)), o => Assert.True(Frames.ChecksumsValid(o.Data), "checksums of " + ReplayKit.Hex(o.Data)));
    }

    [Fact]
    public void Data_connection_opens_through_the_expectation_and_later_flows_still_get_ports()
    {
        var (_, r) = Run();
        // The server's SYN from port 20 reaches the inside host's advertised data port.
        Assert.Contains(r.Out, o => o.Interface == "inside" && ReplayKit.Tuple(o.Data) is { } t
            && t.Src == Server && t.SPort == 20 && t.Dst == Host && t.DPort == 50001);
        Assert.Equal(0, r.Summary.Drops.GetValueOrDefault(DropReasons.Label(DropReason.PortExhausted)));
        // Both later flows left, from ports the expired reservations gave back.
        var udp = r.Out.Where(o => o.Interface == "outside" && ReplayKit.Tuple(o.Data) is { Proto: 17 }).Select(o => ReplayKit.Tuple(o.Data)!.Value).ToList();
        Assert.Equal(2, udp.Count);
        Assert.All(udp, u => Assert.InRange(u.SPort, 40000, 40004));
    }

    [Fact]
    public void Every_frame_of_the_alg_capture_is_accounted_for()
    {
        var (input, r) = Run();
        var s = r.Summary;
        Assert.Equal(12, input.Count);
        Assert.Equal(input.Count, s.FramesRead);
        Assert.Equal(s.FramesRead, s.Forwarded + s.Dropped + s.Consumed + s.SkippedLinkType);
        Assert.Equal(s.TotalDrops, s.Dropped);
        Assert.Equal(0, s.Dropped);
        // Every frame left: the router's ARP request answered, the rest translated.
        Assert.Equal(12, s.Forwarded);
    }
}

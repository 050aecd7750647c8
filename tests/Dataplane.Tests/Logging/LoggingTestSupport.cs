using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Natd.Tests.Support;

namespace Natd.Tests.Logging;

/// <summary>Collector sockets, a pcap writer and a tshark runner for the event log tests.</summary>
internal static class LoggingTestSupport
{
    /// <summary>A fixed Unix time (ms) for engine time 0, so decoded times are predictable: 2026-11-21T00:00:00Z.</summary>
    public const long EpochOffsetMs = 1_795_219_200_000;

    /// <summary>Reads every datagram already queued on the socket, then waits up to <paramref name="quiet"/> for stragglers.</summary>
    public static List<byte[]> ReceiveAll(UdpClient client, TimeSpan quiet)
    {
        var list = new List<byte[]>();
        client.Client.ReceiveTimeout = (int)quiet.TotalMilliseconds;
        var from = new IPEndPoint(IPAddress.Any, 0);
        while (true)
        {
            try
            {
                list.Add(client.Receive(ref from));
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut || e.SocketErrorCode == SocketError.WouldBlock)
            {
                return list;
            }
        }
    }

    /// <summary>Writes a classic pcap (linktype Ethernet) with each payload in its own Ethernet/IPv4/UDP frame 127.0.0.1:50000 -> 127.0.0.1:<paramref name="dstPort"/>.</summary>
    public static void WritePcap(string path, IReadOnlyList<byte[]> payloads, int dstPort)
    {
        using var f = File.Create(path);
        Span<byte> gh = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(gh, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(gh[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(gh[6..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(gh[16..], 65535);
        BinaryPrimitives.WriteUInt32LittleEndian(gh[20..], 1);
        f.Write(gh);
        uint sec = 1_795_219_200;
        Span<byte> ph = stackalloc byte[16];
        foreach (var p in payloads)
        {
            byte[] frame = Frames.Udp("127.0.0.1", 50000, "127.0.0.1", dstPort, p);
            ph.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(ph, sec++);
            BinaryPrimitives.WriteUInt32LittleEndian(ph[8..], (uint)frame.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(ph[12..], (uint)frame.Length);
            f.Write(ph);
            f.Write(frame);
        }
    }

    /// <summary>Runs tshark with the arguments; returns stdout. Fails the test on a non-zero exit or after 60 s.</summary>
    public static string Tshark(params string[] args)
    {
        var psi = new ProcessStartInfo("tshark") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("tshark is not installed (Debian package tshark)", e);
        }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(60_000))
            {
                p.Kill(true);
                throw new TimeoutException("tshark did not finish in 60 s");
            }
            Assert.True(p.ExitCode == 0, $"tshark exited {p.ExitCode}: {stderr.Result}");
            return stdout.Result;
        }
    }
}

using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Logging;
using Akka.Actor;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Logging;

public class IpfixTests
{
    internal static string TsharkTime(long unixMs) =>
        DateTime.UnixEpoch.AddMilliseconds(unixMs).ToString("MMM d, yyyy HH:mm:ss.fff'000000 UTC'", CultureInfo.InvariantCulture);

    /// <summary>Every data record tshark decoded, in order, as its field dictionary (cflow.* names).</summary>
    internal static List<Dictionary<string, string>> DecodedFlows(JsonElement packets, out List<JsonElement> headers)
    {
        var flows = new List<Dictionary<string, string>>();
        headers = [];
        foreach (var packet in packets.EnumerateArray())
        {
            JsonElement cflow = packet.GetProperty("_source").GetProperty("layers").GetProperty("cflow");
            headers.Add(cflow);
            foreach (var set in cflow.EnumerateObject())
            {
                if (!set.Name.StartsWith("Set ", StringComparison.Ordinal))
                {
                    continue;
                }
                foreach (var flow in set.Value.EnumerateObject())
                {
                    if (flow.Name.StartsWith("Flow ", StringComparison.Ordinal))
                    {
                        flows.Add(flow.Value.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? ""));
                    }
                }
            }
        }
        return flows;
    }

    [Fact]
    public async Task Records_decoded_by_tshark_equal_the_sessions_created_deleted_and_refused()
    {
        using var collector = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var h = new EngineHarness(s => s with { MaxSessions = 3 }) { Now = 1_000_123 };
        var stats = new EventLogStats();
        var settings = new EventLogSettings { Queue = 1024, Ipfix = new IpfixSinkSettings((IPEndPoint)collector.Client.LocalEndPoint!, 7, 60) };
        NatEventLogger.AttachRing(h.Engine.Table, settings.Queue); // as the daemon does, before the engine runs
        await using var system = AkkaSystem.Create("ipfix");
        IReadOnlyList<SessionTable> tables = [h.Engine.Table];
        var logger = system.ActorOf(Props.Create(() => new NatEventLogger(settings, tables, stats, NullLogger.Instance,
            new EventLoggerOptions { EpochOffsetMs = LoggingTestSupport.EpochOffsetMs, MaxSessions = 3 })), "event-log");

        // Three sessions (the table's capacity), then a refused fourth flow, then expiry of all three.
        var created = new List<(int InsidePort, string External, int ExternalPort)>();
        for (int i = 0; i < 3; i++)
        {
            byte[] o = h.Out(Udp(EngineHarness.InsideHost, 40000 + i, EngineHarness.OutsideHost, 53));
            created.Add((40000 + i, Src(o), SrcPort(o)));
        }
        Assert.Equal(Verdict.Drop, h.Run(Udp(EngineHarness.InsideHost, 40003, EngineHarness.OutsideHost, 53), Side.Inside, out _));
        long createdAt = h.Now;
        h.Now += 301_456;
        Assert.Equal(3, h.Engine.Sweep(h.Now, 100));
        await logger.Ask<NatEventLogger.Flushed>(NatEventLogger.Flush.Instance, TimeSpan.FromSeconds(10));
        var datagrams = LoggingTestSupport.ReceiveAll(collector, TimeSpan.FromMilliseconds(300));
        Assert.NotEmpty(datagrams);

        string pcap = Path.Combine(Path.GetTempPath(), $"natd-ipfix-{Guid.NewGuid():N}.pcap");
        try
        {
            LoggingTestSupport.WritePcap(pcap, datagrams, 4739);
            string json = LoggingTestSupport.Tshark("-r", pcap, "-d", "udp.port==4739,cflow", "-T", "json");
            using var doc = JsonDocument.Parse(json);
            var flows = DecodedFlows(doc.RootElement, out var headers);

            var expected = new List<Dictionary<string, string>>();
            foreach (var (ev, at) in new[] { ("4", createdAt), ("5", h.Now) })
            {
                foreach (var c in created)
                {
                    expected.Add(new()
                    {
                        ["cflow.observation_time_milliseconds"] = TsharkTime(at + LoggingTestSupport.EpochOffsetMs),
                        ["cflow.nat_event"] = ev,
                        ["cflow.protocol"] = "17",
                        ["cflow.srcaddr"] = EngineHarness.InsideHost,
                        ["cflow.srcport"] = c.InsidePort.ToString(CultureInfo.InvariantCulture),
                        ["cflow.post_natsource_ipv4_address"] = c.External,
                        ["cflow.post_naptsource_transport_port"] = c.ExternalPort.ToString(CultureInfo.InvariantCulture),
                    });
                }
                if (ev == "4")
                {
                    // RFC 8158 quota exceeded: natQuotaExceededEvent 1 (maximum session entries) with maxSessionEntries.
                    expected.Add(new()
                    {
                        ["cflow.observation_time_milliseconds"] = TsharkTime(createdAt + LoggingTestSupport.EpochOffsetMs),
                        ["cflow.nat_event"] = "13",
                        ["cflow.nat_quota_exceeded_event"] = "1",
                        ["cflow.max_session_entries"] = "3",
                    });
                }
            }
            Assert.Equal(expected.Count, flows.Count);
            for (int i = 0; i < expected.Count; i++)
            {
                Assert.Equal(expected[i], flows[i]);
            }

            // Message headers: version 10, our domain, the template set in the first message, and
            // sequence numbers counting the data records sent before each message.
            Assert.Contains(headers[0].EnumerateObject(), p => p.Name.Contains("[id=2]", StringComparison.Ordinal));
            uint records = 0;
            for (int i = 0; i < datagrams.Count; i++)
            {
                Assert.Equal("10", headers[i].GetProperty("cflow.version").GetString());
                Assert.Equal("7", headers[i].GetProperty("cflow.od_id").GetString());
                Assert.Equal(records, BinaryPrimitives.ReadUInt32BigEndian(datagrams[i].AsSpan(8)));
                Assert.Equal(records.ToString(CultureInfo.InvariantCulture), headers[i].GetProperty("cflow.sequence").GetString());
                records += (uint)headers[i].EnumerateObject().Where(p => p.Name.StartsWith("Set ", StringComparison.Ordinal))
                    .Sum(s => s.Value.EnumerateObject().Count(f => f.Name.StartsWith("Flow ", StringComparison.Ordinal)));
            }
            Assert.Equal(7, stats.IpfixWritten);
            Assert.Equal(0, stats.IpfixErrors);
        }
        finally
        {
            File.Delete(pcap);
        }
    }

    [Fact]
    public void Messages_stay_within_the_size_bound_and_carry_every_record()
    {
        var enc = new IpfixEncoder(1, 100);
        var messages = new List<byte[]>();
        enc.Begin(true);
        var e = new NatEvent { Type = NatEventType.SessionCreated, Protocol = 6, InsideAddress = 0x0200000a, InsidePort = 1, ExternalAddress = 0x016433c6, ExternalPort = 2 };
        for (int i = 0; i < 500; i++)
        {
            e.InsidePort = (ushort)i;
            if (!enc.TryAppend(in e, 1000 + i))
            {
                messages.Add(enc.Complete(0).ToArray());
                enc.Begin(false);
                Assert.True(enc.TryAppend(in e, 1000 + i));
            }
        }
        messages.Add(enc.Complete(0).ToArray());
        Assert.True(messages.Count > 1);
        int total = 0;
        foreach (var m in messages)
        {
            Assert.True(m.Length <= 1400, $"message of {m.Length} bytes");
            Assert.Equal(m.Length, BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(2)));
            Assert.Equal((uint)total, BinaryPrimitives.ReadUInt32BigEndian(m.AsSpan(8)));
            // Walk the sets: their lengths must add up to the message.
            int o = 16;
            while (o < m.Length)
            {
                ushort id = BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(o));
                ushort len = BinaryPrimitives.ReadUInt16BigEndian(m.AsSpan(o + 2));
                if (id == IpfixEncoder.SessionTemplateId)
                {
                    Assert.Equal(0, (len - 4) % IpfixEncoder.SessionRecordBytes);
                    total += (len - 4) / IpfixEncoder.SessionRecordBytes;
                }
                o += len;
            }
            Assert.Equal(m.Length, o);
        }
        Assert.Equal(500, total);
    }
}

using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Logging;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Logging;

/// <summary>
/// The carrier-grade NAT events (port blocks, subscriber limits, pool threshold, pairing spill) in
/// every sink: JSON lines, RFC 5424 syslog and IPFIX with RFC 8158's records, the IPFIX decoded by tshark.
/// </summary>
public sealed class CgnEventLogTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private const string Subscriber = "10.64.0.7";
    private const string External = "198.51.100.9";
    private const string Spilled = "198.51.100.10";
    private const long T0 = LoggingTestSupport.EpochOffsetMs + 3_723_456; // 2026-11-21T01:02:03.456Z

    private readonly string _dir = Directory.CreateTempSubdirectory("natd-cgn-events-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static NatEvent Block(NatEventType type, ushort low, ushort high, byte step, byte protocol = 0) => new()
    {
        Type = type, Protocol = protocol, InsideAddress = Ipv4.Parse(Subscriber), ExternalAddress = Ipv4.Parse(External),
        ExternalPort = low, PortHigh = high, PortStep = step,
    };

    private static NatEvent Limit(NatLimitKind kind) => new()
    {
        Type = NatEventType.SubscriberLimit, InsideAddress = Ipv4.Parse(Subscriber), Detail = (byte)kind,
    };

    private static readonly NatEvent s_threshold = new() { Type = NatEventType.PoolThreshold, ExternalAddress = Ipv4.Parse(External), Detail = 90 };

    private static readonly NatEvent s_spill = new()
    {
        Type = NatEventType.PairingSpill, InsideAddress = Ipv4.Parse(Subscriber), ExternalAddress = Ipv4.Parse(Spilled),
    };

    private static readonly NatEvent s_move = new()
    {
        Type = NatEventType.PairingMoved, InsideAddress = Ipv4.Parse(Subscriber), ExternalAddress = Ipv4.Parse(Spilled),
    };

    /// <summary>One of each carrier-grade event: blocks of 512 ports (every second port with 2 shards), each limit, a threshold, a spill, a move off a draining address.</summary>
    private static NatEvent[] AllEvents() =>
    [
        Block(NatEventType.PortBlockAllocated, 2048, 3070, 2),
        Block(NatEventType.PortBlockInterim, 2048, 3070, 2),
        Block(NatEventType.PortBlockReleased, 2048, 3070, 2),
        Block(NatEventType.PortBlockAllocated, 4096, 4607, 1, IpProtocol.Udp),
        Limit(NatLimitKind.Sessions),
        Limit(NatLimitKind.Ports),
        Limit(NatLimitKind.Rate),
        Limit(NatLimitKind.Blocks),
        s_threshold,
        s_spill,
        s_move,
    ];

    private static Dictionary<string, string> Fields(JsonElement o)
        => o.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ValueKind == JsonValueKind.Number ? p.Value.GetRawText() : p.Value.GetString()!);

    [Fact]
    public void Json_lines_name_the_subscriber_the_external_address_and_the_port_range()
    {
        string path = Path.Combine(_dir, "events.jsonl");
        var stats = new EventLogStats();
        using (var sink = new JsonLinesFileSink(new FileSinkSettings(path, 1 << 20, 1), stats, NullLogger.Instance))
        {
            foreach (var e in AllEvents())
            {
                sink.Write(in e, T0);
            }
        }
        string[] lines = File.ReadAllLines(path);
        const string time = "2026-11-21T01:02:03.456Z";
        var expected = new Dictionary<string, string>[]
        {
            new() { ["time"] = time, ["event"] = "port-block-allocate", ["inside"] = Subscriber, ["external"] = External, ["port-low"] = "2048", ["port-high"] = "3070", ["port-step"] = "2" },
            new() { ["time"] = time, ["event"] = "port-block-interim", ["inside"] = Subscriber, ["external"] = External, ["port-low"] = "2048", ["port-high"] = "3070", ["port-step"] = "2" },
            new() { ["time"] = time, ["event"] = "port-block-release", ["inside"] = Subscriber, ["external"] = External, ["port-low"] = "2048", ["port-high"] = "3070", ["port-step"] = "2" },
            new() { ["time"] = time, ["event"] = "port-block-allocate", ["protocol"] = "udp", ["inside"] = Subscriber, ["external"] = External, ["port-low"] = "4096", ["port-high"] = "4607" },
            new() { ["time"] = time, ["event"] = "subscriber-limit", ["inside"] = Subscriber, ["limit"] = "sessions" },
            new() { ["time"] = time, ["event"] = "subscriber-limit", ["inside"] = Subscriber, ["limit"] = "ports" },
            new() { ["time"] = time, ["event"] = "subscriber-limit", ["inside"] = Subscriber, ["limit"] = "rate" },
            new() { ["time"] = time, ["event"] = "subscriber-limit", ["inside"] = Subscriber, ["limit"] = "blocks" },
            new() { ["time"] = time, ["event"] = "pool-threshold", ["external"] = External, ["percent"] = "90" },
            new() { ["time"] = time, ["event"] = "pairing-spill", ["inside"] = Subscriber, ["external"] = Spilled },
            new() { ["time"] = time, ["event"] = "pairing-move", ["inside"] = Subscriber, ["external"] = Spilled },
        };
        Assert.Equal(expected.Length, lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            using var doc = JsonDocument.Parse(lines[i]);
            Assert.Equal(expected[i], Fields(doc.RootElement));
        }
        // Ports are JSON numbers, so a collector compares them without parsing text.
        using (var first = JsonDocument.Parse(lines[0]))
        {
            Assert.Equal(JsonValueKind.Number, first.RootElement.GetProperty("port-low").ValueKind);
        }
        Assert.Equal(lines.Length, stats.FileWritten);
    }

    // RFC 5424 section 6, as in SyslogTests: HEADER SP [SD-ID PARAMs] SP MSG.
    private static readonly Regex s_rfc5424 = new(
        @"^<(?<pri>\d{1,3})>1 (?<ts>\S+) (?<host>[!-~]{1,255}) natd - NATEVENT \[(?<sdid>[!-~-[=\] ""]]{1,32})(?<params>( [!-~-[=\] ""]]{1,32}=""([^""\\\]]|\\.)*"")*)\] (?<msg>.*)$",
        RegexOptions.CultureInvariant);

    private static readonly Regex s_param = new(@" (?<name>[^=]+)=""(?<value>[^""]*)""", RegexOptions.CultureInvariant);

    [Fact]
    public void Syslog_messages_carry_the_same_fields_as_structured_data()
    {
        var expected = new (Dictionary<string, string> Params, string Msg)[]
        {
            (new() { ["event"] = "port-block-allocate", ["inside"] = Subscriber, ["external"] = External, ["port-low"] = "2048", ["port-high"] = "3070", ["port-step"] = "2" },
                $"port-block-allocate {Subscriber} {External}:2048-3070"),
            (new() { ["event"] = "port-block-interim", ["inside"] = Subscriber, ["external"] = External, ["port-low"] = "2048", ["port-high"] = "3070", ["port-step"] = "2" },
                $"port-block-interim {Subscriber} {External}:2048-3070"),
            (new() { ["event"] = "port-block-release", ["inside"] = Subscriber, ["external"] = External, ["port-low"] = "2048", ["port-high"] = "3070", ["port-step"] = "2" },
                $"port-block-release {Subscriber} {External}:2048-3070"),
            (new() { ["event"] = "port-block-allocate", ["proto"] = "udp", ["inside"] = Subscriber, ["external"] = External, ["port-low"] = "4096", ["port-high"] = "4607" },
                $"port-block-allocate {Subscriber} {External}:4096-4607"),
            (new() { ["event"] = "subscriber-limit", ["inside"] = Subscriber, ["limit"] = "sessions" }, $"subscriber-limit {Subscriber} sessions"),
            (new() { ["event"] = "subscriber-limit", ["inside"] = Subscriber, ["limit"] = "ports" }, $"subscriber-limit {Subscriber} ports"),
            (new() { ["event"] = "subscriber-limit", ["inside"] = Subscriber, ["limit"] = "rate" }, $"subscriber-limit {Subscriber} rate"),
            (new() { ["event"] = "subscriber-limit", ["inside"] = Subscriber, ["limit"] = "blocks" }, $"subscriber-limit {Subscriber} blocks"),
            (new() { ["event"] = "pool-threshold", ["external"] = External, ["percent"] = "90" }, $"pool-threshold {External} 90%"),
            (new() { ["event"] = "pairing-spill", ["inside"] = Subscriber, ["external"] = Spilled }, $"pairing-spill {Subscriber} {Spilled}"),
            (new() { ["event"] = "pairing-move", ["inside"] = Subscriber, ["external"] = Spilled }, $"pairing-move {Subscriber} {Spilled}"),
        };
        var events = AllEvents();
        var buf = new byte[1024];
        for (int i = 0; i < events.Length; i++)
        {
            int n = SyslogSink.Format(buf, in events[i], T0, SyslogSinkSettings.Local0 * 8 + SyslogSink.Severity, "cgn-1");
            string line = Encoding.ASCII.GetString(buf, 0, n);
            var m = s_rfc5424.Match(line);
            Assert.True(m.Success, $"not RFC 5424: {line}");
            Assert.Equal("134", m.Groups["pri"].Value);
            Assert.Equal("2026-11-21T01:02:03.456Z", m.Groups["ts"].Value);
            Assert.Equal(SyslogSink.SdId, m.Groups["sdid"].Value);
            var p = s_param.Matches(m.Groups["params"].Value).ToDictionary(x => x.Groups["name"].Value, x => x.Groups["value"].Value);
            Assert.Equal(expected[i].Params, p);
            Assert.Equal(expected[i].Msg, m.Groups["msg"].Value);
        }
    }

    [Fact]
    public void Every_event_maps_to_its_natEvent_in_the_IANA_registry_as_tshark_names_it()
    {
        // Wireshark's value table for cflow.nat_event is the IANA "NAT Event Type" registry (RFC 8158).
        var names = new Dictionary<int, string>();
        foreach (var line in LoggingTestSupport.Tshark("-G", "values").Split('\n'))
        {
            var cols = line.Split('\t');
            if (cols.Length >= 4 && cols[0] == "V" && cols[1] == "cflow.nat_event")
            {
                names[int.Parse(cols[2], CultureInfo.InvariantCulture)] = cols[3].Trim();
            }
        }
        var expected = new Dictionary<NatEventType, string>
        {
            [NatEventType.SessionCreated] = "NAT44 session create",
            [NatEventType.SessionDeleted] = "NAT44 session delete",
            [NatEventType.PortExhausted] = "NAT ports exhausted",
            [NatEventType.SessionLimit] = "Quota Exceeded",
            [NatEventType.PortBlockAllocated] = "Port block allocation",
            [NatEventType.PortBlockInterim] = "Port block allocation",
            [NatEventType.PortBlockReleased] = "Port block de-allocation",
            [NatEventType.SubscriberLimit] = "Quota Exceeded",
            [NatEventType.PoolThreshold] = "Threshold Reached",
            [NatEventType.PairingSpill] = "Address binding create",
            [NatEventType.PairingMoved] = "Address binding create",
            [NatEventType.PcpMappingCreated] = "NAT44 BIB create",
            [NatEventType.PcpMappingRefreshed] = "NAT44 BIB create",
            [NatEventType.PcpMappingDeleted] = "NAT44 BIB delete",
        };
        Assert.Equal(Enum.GetValues<NatEventType>().Length, expected.Count);
        foreach (var (type, name) in expected)
        {
            Assert.Equal(name, names[IpfixEncoder.NatEventCode(type)]);
        }
    }

    [Fact]
    public void Port_block_quota_threshold_and_binding_records_decoded_by_tshark()
    {
        using var collector = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var stats = new EventLogStats();
        var cgnat = new CgnatSettings
        {
            PortBlock = new PortBlockSettings(512, 4),
            Limits = new SubscriberLimits(Sessions: 2000, Ports: 1500, NewSessionsPerSecond: 50),
        };
        var events = AllEvents();
        using (var sink = new IpfixSink(new IpfixSinkSettings((IPEndPoint)collector.Client.LocalEndPoint!, 9, 60), 1000, stats,
            NullLogger.Instance, TimeProvider.System, () => cgnat))
        {
            for (int i = 0; i < events.Length; i++)
            {
                sink.Write(in events[i], T0 + i);
            }
            sink.Flush();
        }
        var datagrams = LoggingTestSupport.ReceiveAll(collector, TimeSpan.FromMilliseconds(300));
        Assert.Equal(events.Length, stats.IpfixWritten);

        string pcap = Path.Combine(_dir, "cgn.pcap");
        LoggingTestSupport.WritePcap(pcap, datagrams, 4739);
        using var doc = JsonDocument.Parse(LoggingTestSupport.Tshark("-r", pcap, "-d", "udp.port==4739,cflow", "-T", "json"));
        var flows = IpfixTests.DecodedFlows(doc.RootElement, out _);

        string At(int i) => IpfixTests.TsharkTime(T0 + i);
        Dictionary<string, string> PortBlock(int i, string natEvent, string protocol, string low, string high, string step, string count) => new()
        {
            ["cflow.observation_time_milliseconds"] = At(i),
            ["cflow.nat_event"] = natEvent,
            ["cflow.protocol"] = protocol,
            ["cflow.srcaddr"] = Subscriber,
            ["cflow.post_natsource_ipv4_address"] = External,
            ["cflow.port_range_start"] = low,
            ["cflow.port_range_end"] = high,
            ["cflow.port_range_step_size"] = step,
            ["cflow.port_range_num_ports"] = count,
        };
        Dictionary<string, string> Quota(int i, string limit) => new()
        {
            ["cflow.observation_time_milliseconds"] = At(i),
            ["cflow.nat_event"] = "13",
            ["cflow.nat_quota_exceeded_event"] = "3",
            ["cflow.max_entries_per_user"] = limit,
            ["cflow.srcaddr"] = Subscriber,
        };
        var expected = new List<Dictionary<string, string>>
        {
            PortBlock(0, "16", "0", "2048", "3070", "2", "512"),
            PortBlock(1, "16", "0", "2048", "3070", "2", "512"),
            PortBlock(2, "17", "0", "2048", "3070", "2", "512"),
            PortBlock(3, "16", "17", "4096", "4607", "1", "512"),
            Quota(4, "2000"),
            Quota(5, "1500"),
            Quota(6, "50"),
            Quota(7, "2048"), // 4 blocks of 512 ports
            new()
            {
                ["cflow.observation_time_milliseconds"] = At(8),
                ["cflow.nat_event"] = "18",
                ["cflow.nat_threshold_event"] = "3",
                ["cflow.post_natsource_ipv4_address"] = External,
                ["cflow.addressport_mapping_highthreshold"] = "90",
            },
            new()
            {
                ["cflow.observation_time_milliseconds"] = At(9),
                ["cflow.nat_event"] = "14",
                ["cflow.srcaddr"] = Subscriber,
                ["cflow.post_natsource_ipv4_address"] = Spilled,
            },
            new()
            {
                ["cflow.observation_time_milliseconds"] = At(10),
                ["cflow.nat_event"] = "14",
                ["cflow.srcaddr"] = Subscriber,
                ["cflow.post_natsource_ipv4_address"] = Spilled,
            },
        };
        Assert.Equal(expected.Count, flows.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i], flows[i]);
        }

        // The verbose decode names the RFC 8158 events and the templates' fields as a person reads them.
        string text = LoggingTestSupport.Tshark("-r", pcap, "-d", "udp.port==4739,cflow", "-V");
        output.WriteLine(text); // the decode, for a reader of the test log
        foreach (string s in new[]
        {
            "Nat Event: Port block allocation (16)", "Nat Event: Port block de-allocation (17)", "Nat Event: Quota Exceeded (13)",
            "Nat Event: Threshold Reached (18)", "Nat Event: Address binding create (14)",
            "Maximum entries per user (3)", "Address and port mapping high threshold event (3)",
            "Port Range Start: 2048", "Port Range End: 3070", "Port Range Step Size: 2", "Port Range Num Ports: 512",
        })
        {
            Assert.Contains(s, text, StringComparison.Ordinal);
        }
        Assert.DoesNotContain("no template found", text, StringComparison.OrdinalIgnoreCase);
    }
}

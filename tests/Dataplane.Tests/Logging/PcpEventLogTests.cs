using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Logging;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Logging;

/// <summary>
/// PCP and NAT-PMP mapping events (create, refresh, delete with its cause) in every sink: JSON
/// lines, RFC 5424 syslog, and IPFIX as NAT44 BIB create/delete (natEvent 8 and 9) on the session
/// template, decoded by tshark.
/// </summary>
public sealed class PcpEventLogTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private const string Inside = "10.0.0.2";
    private const string External = "198.51.100.1";
    private const long T0 = LoggingTestSupport.EpochOffsetMs + 3_723_456; // 2026-11-21T01:02:03.456Z
    private const string Time = "2026-11-21T01:02:03.456Z";

    private readonly string _dir = Directory.CreateTempSubdirectory("natd-pcp-events-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static NatEvent Mapping(NatEventType type, byte protocol, uint lifetime = 0, PcpDeleteCause cause = PcpDeleteCause.Client) => new()
    {
        Type = type, Protocol = protocol, InsideAddress = Ipv4.Parse(Inside), InsidePort = 8080, ExternalAddress = Ipv4.Parse(External),
        ExternalPort = 18080, Lifetime = lifetime, Detail = type == NatEventType.PcpMappingDeleted ? (byte)cause : (byte)0,
    };

    private static NatEvent[] AllEvents() =>
    [
        Mapping(NatEventType.PcpMappingCreated, IpProtocol.Tcp, 600),
        Mapping(NatEventType.PcpMappingRefreshed, IpProtocol.Tcp, 900),
        Mapping(NatEventType.PcpMappingDeleted, IpProtocol.Tcp, cause: PcpDeleteCause.Client),
        Mapping(NatEventType.PcpMappingDeleted, IpProtocol.Udp, cause: PcpDeleteCause.Expired),
        Mapping(NatEventType.PcpMappingDeleted, IpProtocol.Udp, cause: PcpDeleteCause.Operator),
        Mapping(NatEventType.PcpMappingDeleted, IpProtocol.Udp, cause: PcpDeleteCause.Reload),
    ];

    [Fact]
    public void Json_lines_carry_the_endpoints_and_the_lifetime_or_the_cause()
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
        Dictionary<string, string> Row(string ev, string proto, string extraKey, string extra) => new()
        {
            ["time"] = Time, ["event"] = ev, ["protocol"] = proto, ["inside"] = Inside + ":8080", ["external"] = External + ":18080", [extraKey] = extra,
        };
        var expected = new[]
        {
            Row("pcp-mapping-create", "tcp", "lifetime", "600"),
            Row("pcp-mapping-refresh", "tcp", "lifetime", "900"),
            Row("pcp-mapping-delete", "tcp", "cause", "client"),
            Row("pcp-mapping-delete", "udp", "cause", "expired"),
            Row("pcp-mapping-delete", "udp", "cause", "operator"),
            Row("pcp-mapping-delete", "udp", "cause", "reload"),
        };
        string[] lines = File.ReadAllLines(path);
        Assert.Equal(expected.Length, lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            using var doc = JsonDocument.Parse(lines[i]);
            var fields = doc.RootElement.EnumerateObject()
                .ToDictionary(p => p.Name, p => p.Value.ValueKind == JsonValueKind.Number ? p.Value.GetRawText() : p.Value.GetString()!);
            Assert.Equal(expected[i], fields);
        }
        using (var first = JsonDocument.Parse(lines[0]))
        {
            Assert.Equal(JsonValueKind.Number, first.RootElement.GetProperty("lifetime").ValueKind); // seconds, a number
        }
    }

    private static readonly Regex s_param = new(@" (?<name>[^=]+)=""(?<value>[^""]*)""", RegexOptions.CultureInvariant);

    [Fact]
    public void Syslog_messages_carry_the_same_fields()
    {
        var expected = new (string Params, string Msg)[]
        {
            ("event=pcp-mapping-create proto=tcp inside=10.0.0.2:8080 external=198.51.100.1:18080 lifetime=600",
                "pcp-mapping-create tcp 10.0.0.2:8080 198.51.100.1:18080 600s"),
            ("event=pcp-mapping-refresh proto=tcp inside=10.0.0.2:8080 external=198.51.100.1:18080 lifetime=900",
                "pcp-mapping-refresh tcp 10.0.0.2:8080 198.51.100.1:18080 900s"),
            ("event=pcp-mapping-delete proto=tcp inside=10.0.0.2:8080 external=198.51.100.1:18080 cause=client",
                "pcp-mapping-delete tcp 10.0.0.2:8080 198.51.100.1:18080 client"),
            ("event=pcp-mapping-delete proto=udp inside=10.0.0.2:8080 external=198.51.100.1:18080 cause=expired",
                "pcp-mapping-delete udp 10.0.0.2:8080 198.51.100.1:18080 expired"),
            ("event=pcp-mapping-delete proto=udp inside=10.0.0.2:8080 external=198.51.100.1:18080 cause=operator",
                "pcp-mapping-delete udp 10.0.0.2:8080 198.51.100.1:18080 operator"),
            ("event=pcp-mapping-delete proto=udp inside=10.0.0.2:8080 external=198.51.100.1:18080 cause=reload",
                "pcp-mapping-delete udp 10.0.0.2:8080 198.51.100.1:18080 reload"),
        };
        var events = AllEvents();
        var buf = new byte[1024];
        for (int i = 0; i < events.Length; i++)
        {
            int n = SyslogSink.Format(buf, in events[i], T0, SyslogSinkSettings.Local0 * 8 + SyslogSink.Severity, "cgn-1");
            string line = Encoding.ASCII.GetString(buf, 0, n);
            Assert.StartsWith($"<134>1 {Time} cgn-1 natd - NATEVENT [{SyslogSink.SdId} ", line, StringComparison.Ordinal);
            int close = line.IndexOf("] ", StringComparison.Ordinal);
            string sd = line[(line.IndexOf(' ', line.IndexOf('[', StringComparison.Ordinal)))..close];
            string parameters = string.Join(' ', s_param.Matches(sd).Select(m => $"{m.Groups["name"].Value}={m.Groups["value"].Value}"));
            Assert.Equal(expected[i].Params, parameters);
            Assert.Equal(expected[i].Msg, line[(close + 2)..]);
        }
    }

    [Fact]
    public void Ipfix_records_are_NAT44_BIB_create_and_delete_as_tshark_decodes_them()
    {
        Assert.Equal(8, IpfixEncoder.NatEventCode(NatEventType.PcpMappingCreated));
        Assert.Equal(8, IpfixEncoder.NatEventCode(NatEventType.PcpMappingRefreshed));
        Assert.Equal(9, IpfixEncoder.NatEventCode(NatEventType.PcpMappingDeleted));

        using var collector = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var stats = new EventLogStats();
        var events = AllEvents()[..3];
        using (var sink = new IpfixSink(new IpfixSinkSettings((IPEndPoint)collector.Client.LocalEndPoint!, 9, 60), 1000, stats,
            NullLogger.Instance, TimeProvider.System))
        {
            for (int i = 0; i < events.Length; i++)
            {
                sink.Write(in events[i], T0 + i);
            }
            sink.Flush();
        }
        var datagrams = LoggingTestSupport.ReceiveAll(collector, TimeSpan.FromMilliseconds(300));
        Assert.Equal(events.Length, stats.IpfixWritten);
        string pcap = Path.Combine(_dir, "pcp.pcap");
        LoggingTestSupport.WritePcap(pcap, datagrams, 4739);
        using var doc = JsonDocument.Parse(LoggingTestSupport.Tshark("-r", pcap, "-d", "udp.port==4739,cflow", "-T", "json"));
        var flows = IpfixTests.DecodedFlows(doc.RootElement, out _);
        Dictionary<string, string> Bib(int i, string natEvent) => new()
        {
            ["cflow.observation_time_milliseconds"] = IpfixTests.TsharkTime(T0 + i),
            ["cflow.nat_event"] = natEvent,
            ["cflow.protocol"] = "6",
            ["cflow.srcaddr"] = Inside,
            ["cflow.srcport"] = "8080",
            ["cflow.post_natsource_ipv4_address"] = External,
            ["cflow.post_naptsource_transport_port"] = "18080",
        };
        Assert.Equal([Bib(0, "8"), Bib(1, "8"), Bib(2, "9")], flows);
        string text = LoggingTestSupport.Tshark("-r", pcap, "-d", "udp.port==4739,cflow", "-V");
        output.WriteLine(text);
        Assert.Contains("Nat Event: NAT44 BIB create (8)", text, StringComparison.Ordinal);
        Assert.Contains("Nat Event: NAT44 BIB delete (9)", text, StringComparison.Ordinal);
    }
}

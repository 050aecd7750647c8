using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using Natd.Control.Logging;
using Akka.Actor;
using Natd.Dataplane.Nat;
using Natd.Tests.Support;
using static Natd.Tests.Support.Frames;
using Natd.Dataplane.Sessions;

namespace Natd.Tests.Logging;

public class SyslogTests
{
    // RFC 5424 section 6: HEADER SP STRUCTURED-DATA [SP MSG]; one SD-ELEMENT with quoted PARAM-VALUEs.
    private static readonly Regex s_rfc5424 = new(
        @"^<(?<pri>\d{1,3})>1 (?<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)) (?<host>[!-~]{1,255}) (?<app>[!-~]{1,48}) (?<procid>[!-~]{1,128}) (?<msgid>[!-~]{1,32}) \[(?<sdid>[!-~-[=\] ""]]{1,32})(?<params>( [!-~-[=\] ""]]{1,32}=""([^""\\\]]|\\.)*"")*)\]( (?<msg>.*))?$",
        RegexOptions.CultureInvariant);

    private static readonly Regex s_param = new(@" (?<name>[^=]+)=""(?<value>[^""]*)""", RegexOptions.CultureInvariant);

    [Fact]
    public async Task Each_event_is_one_RFC5424_datagram_with_local0_info_priority_and_the_endpoints()
    {
        using var collector = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        var h = new EngineHarness(s => s with { PortMin = 6000, PortMax = 6000 }) { Now = 5_000_789 };
        var stats = new EventLogStats();
        var settings = new EventLogSettings
        {
            Queue = 64,
            Syslog = new SyslogSinkSettings((IPEndPoint)collector.Client.LocalEndPoint!, SyslogSinkSettings.Local0, "natd-test"),
        };
        NatEventLogger.AttachRing(h.Engine.Table, settings.Queue); // as the daemon does, before the engine runs
        await using var system = AkkaSystem.Create("syslog");
        IReadOnlyList<SessionTable> tables = [h.Engine.Table];
        var logger = system.ActorOf(Props.Create(() => new NatEventLogger(settings, tables, stats, NullLogger.Instance,
            new EventLoggerOptions { EpochOffsetMs = LoggingTestSupport.EpochOffsetMs })), "event-log");

        byte[] o = h.Out(Udp(EngineHarness.InsideHost, 40000, EngineHarness.OutsideHost, 53));
        h.Run(Udp(EngineHarness.InsideHost, 40001, EngineHarness.OutsideHost, 53), Side.Inside, out _); // the only port is taken: exhausted
        await logger.Ask<NatEventLogger.Flushed>(NatEventLogger.Flush.Instance, TimeSpan.FromSeconds(10));
        var lines = LoggingTestSupport.ReceiveAll(collector, TimeSpan.FromMilliseconds(300)).Select(d => Encoding.ASCII.GetString(d)).ToList();

        Assert.Equal(2, lines.Count);
        var expected = new[]
        {
            ("session-create", "udp", "10.0.0.2:40000", (string?)$"{Src(o)}:{SrcPort(o)}"),
            ("port-exhausted", "udp", "10.0.0.2:40001", (string?)$"{EngineHarness.External}:0"),
        };
        string time = DateTime.UnixEpoch.AddMilliseconds(h.Now + LoggingTestSupport.EpochOffsetMs)
            .ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        for (int i = 0; i < lines.Count; i++)
        {
            var m = s_rfc5424.Match(lines[i]);
            Assert.True(m.Success, $"not RFC 5424: {lines[i]}");
            Assert.Equal("134", m.Groups["pri"].Value); // local0 (16) * 8 + informational (6)
            Assert.Equal(time, m.Groups["ts"].Value);
            Assert.Equal("natd-test", m.Groups["host"].Value);
            Assert.Equal("natd", m.Groups["app"].Value);
            Assert.Equal("NATEVENT", m.Groups["msgid"].Value);
            Assert.Equal("nat@32473", m.Groups["sdid"].Value);
            var p = s_param.Matches(m.Groups["params"].Value).ToDictionary(x => x.Groups["name"].Value, x => x.Groups["value"].Value);
            var (ev, proto, inside, external) = expected[i];
            Assert.Equal(ev, p["event"]);
            Assert.Equal(proto, p["proto"]);
            Assert.Equal(inside, p["inside"]);
            Assert.Equal(external, p["external"]);
        }
        Assert.Equal(2, stats.SyslogWritten);
    }

    [Fact]
    public void Priority_follows_the_configured_facility()
    {
        var e = new NatEvent { Type = NatEventType.SessionDeleted, Protocol = 1, InsideAddress = 0x0200000a, InsidePort = 7 };
        var buf = new byte[1024];
        int n = SyslogSink.Format(buf, in e, 0, 23 * 8 + SyslogSink.Severity, "h");
        string line = Encoding.ASCII.GetString(buf, 0, n);
        Assert.StartsWith("<190>1 1970-01-01T00:00:00.000Z h natd - NATEVENT [nat@32473 event=\"session-delete\" proto=\"icmp\" inside=\"10.0.0.2:7\"]", line);
        Assert.Matches(s_rfc5424, line);
    }
}

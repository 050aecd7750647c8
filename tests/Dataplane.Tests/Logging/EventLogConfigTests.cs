using System.Net;
using Natd.Control.Config;
using Natd.Control.Logging;

namespace Natd.Tests.Logging;

public class EventLogConfigTests
{
    [Fact]
    public void Absent_section_means_no_event_log()
    {
        Assert.Null(ConfigLoader.Parse("log:\n  level: debug\n", "t.yaml").Events);
        Assert.Null(ConfigLoader.Default().Events);
    }

    [Fact]
    public void Full_section_is_parsed()
    {
        const string yaml = """
            log:
              level: information
              events:
                queue: 1000
                file: { path: /var/log/natd/events.jsonl, max-bytes: 104857600, keep: 5 }
                syslog: { server: 127.0.0.1:514, facility: local3, hostname: natd }
                ipfix: { collector: 192.0.2.9:4739, domain: 42, template-interval: 30 }
            """;
        var ev = ConfigLoader.Parse(yaml, "t.yaml").Events;
        Assert.NotNull(ev);
        Assert.Equal(1000, ev.Queue);
        Assert.Equal(new FileSinkSettings("/var/log/natd/events.jsonl", 104857600, 5), ev.File);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 514), ev.Syslog!.Server);
        Assert.Equal(19, ev.Syslog.Facility);
        Assert.Equal("natd", ev.Syslog.Hostname);
        Assert.Equal(new IpfixSinkSettings(new IPEndPoint(IPAddress.Parse("192.0.2.9"), 4739), 42, 30), ev.Ipfix);
    }

    [Fact]
    public void Defaults_apply_inside_a_present_section()
    {
        var ev = ConfigLoader.Parse("log:\n  events:\n    syslog: { server: localhost:1514 }\n", "t.yaml").Events;
        Assert.NotNull(ev);
        Assert.Equal(EventLogSettings.DefaultQueue, ev.Queue);
        Assert.Null(ev.File);
        Assert.Null(ev.Ipfix);
        Assert.Equal(SyslogSinkSettings.Local0, ev.Syslog!.Facility);
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 1514), ev.Syslog.Server);
        Assert.False(string.IsNullOrEmpty(ev.Syslog.Hostname));
    }

    [Theory]
    [InlineData("    queue: 1\n", 3, "log.events.queue")]
    [InlineData("    colour: red\n", 3, "log.events.colour")]
    [InlineData("    file: { keep: 2 }\n", 3, "log.events.file.path")]
    [InlineData("    file:\n      path: /tmp/e.jsonl\n      max-bytes: 10\n", 5, "log.events.file.max-bytes")]
    [InlineData("    syslog:\n      server: nowhere\n", 4, "log.events.syslog.server")]
    [InlineData("    syslog: { server: 127.0.0.1:514, facility: local9 }\n", 3, "log.events.syslog.facility")]
    [InlineData("    syslog: { server: 127.0.0.1:514, hostname: 'two words' }\n", 3, "log.events.syslog.hostname")]
    [InlineData("    ipfix: { domain: 1 }\n", 3, "log.events.ipfix.collector")]
    [InlineData("    ipfix:\n      collector: 127.0.0.1:4739\n      template-interval: 0\n", 5, "log.events.ipfix.template-interval")]
    public void Errors_name_the_key_and_line(string body, int line, string key)
    {
        string yaml = "log:\n  events:\n" + body;
        var ex = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(yaml, "t.yaml"));
        var d = Assert.Single(ex.Errors);
        Assert.Equal(key, d.Path);
        Assert.Equal(line, d.Line);
        Assert.Equal("t.yaml", d.Source);
    }

    [Fact]
    public void The_key_reference_still_parses_to_the_defaults()
    {
        Assert.Contains("events:", ConfigLoader.Describe(), StringComparison.Ordinal);
        Assert.Null(ConfigLoader.Parse(ConfigLoader.Describe(), "describe").Events);
    }
}

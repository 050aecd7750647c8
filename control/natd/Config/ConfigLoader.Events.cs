using System.Globalization;
using System.Net;
using Natd.Control.Logging;

namespace Natd.Control.Config;

// The log.events section: the NAT event log and its sinks (file, syslog, IPFIX).
public static partial class ConfigLoader
{
    internal const int MaxEventQueue = 1 << 24;
    internal const long MinEventFileBytes = 256;
    internal const long MaxEventFileBytes = 1L << 40;
    internal const int MaxEventFileKeep = 100;
    internal const int MaxTemplateInterval = 86_400;

    private static readonly string[] EventsKeys = ["queue", "file", "syslog", "ipfix"];
    private static readonly string[] EventFileKeys = ["path", "max-bytes", "keep"];
    private static readonly string[] EventSyslogKeys = ["server", "facility", "hostname"];
    private static readonly string[] EventIpfixKeys = ["collector", "domain", "template-interval"];

    private sealed partial class Validator
    {
        /// <summary>log.events; null when absent (nothing is queued or logged).</summary>
        private EventLogSettings? EventLog(YNode? node)
        {
            const string path = "log.events";
            if (node is null)
            {
                return null;
            }
            YMapping? m = Mapping(node, path);
            if (m is null)
            {
                return null;
            }
            Keys(m, path, EventsKeys);
            return new EventLogSettings
            {
                Queue = (int)Integer(m.Get("queue"), path + ".queue", EventLogSettings.DefaultQueue, 2, MaxEventQueue, "events"),
                File = EventFile(m.Get("file"), path + ".file"),
                Syslog = EventSyslog(m.Get("syslog"), path + ".syslog"),
                Ipfix = EventIpfix(m.Get("ipfix"), path + ".ipfix"),
            };
        }

        private FileSinkSettings? EventFile(YNode? node, string path)
        {
            YMapping? m = Mapping(node, path);
            if (m is null)
            {
                return null;
            }
            Keys(m, path, EventFileKeys);
            long maxBytes = Integer(m.Get("max-bytes"), path + ".max-bytes", FileSinkSettings.DefaultMaxBytes, MinEventFileBytes, MaxEventFileBytes, "bytes");
            int keep = (int)Integer(m.Get("keep"), path + ".keep", FileSinkSettings.DefaultKeep, 0, MaxEventFileKeep, "files");
            YNode? pathNode = m.Get("path");
            if (pathNode is null)
            {
                Error(m, path + ".path", "is required: the file the events are written to, e.g. /var/log/natd/events.jsonl");
                return null;
            }
            if (Text(pathNode, path + ".path") is not { } file)
            {
                return null;
            }
            if (file.Length == 0 || file.IndexOf('\0') >= 0 || file.EndsWith('/'))
            {
                Error(pathNode, path + ".path", $"'{file}' is not a file path");
                return null;
            }
            return new FileSinkSettings(file, maxBytes, keep);
        }

        private SyslogSinkSettings? EventSyslog(YNode? node, string path)
        {
            YMapping? m = Mapping(node, path);
            if (m is null)
            {
                return null;
            }
            Keys(m, path, EventSyslogKeys);
            int facility = Word(m.Get("facility"), path + ".facility", SyslogSinkSettings.FacilityNames, SyslogSinkSettings.Local0);
            string host = SyslogHostname(Environment.MachineName);
            YNode? hostNode = m.Get("hostname");
            if (Text(hostNode, path + ".hostname") is { } h)
            {
                if (h.Length is 0 or > 255 || SyslogHostname(h) != h)
                {
                    Error(hostNode!, path + ".hostname", $"'{h}' is not a syslog HOSTNAME (1 to 255 printable ASCII characters, no spaces; RFC 5424 section 6.2.4)");
                }
                else
                {
                    host = h;
                }
            }
            IPEndPoint? server = UdpEndpoint(m, "server", path, "514");
            return server is null ? null : new SyslogSinkSettings(server, facility, host);
        }

        private IpfixSinkSettings? EventIpfix(YNode? node, string path)
        {
            YMapping? m = Mapping(node, path);
            if (m is null)
            {
                return null;
            }
            Keys(m, path, EventIpfixKeys);
            uint domain = (uint)Integer(m.Get("domain"), path + ".domain", 1, 0, uint.MaxValue, "(observation domain id)");
            int interval = (int)Integer(m.Get("template-interval"), path + ".template-interval", IpfixSinkSettings.DefaultTemplateInterval, 1, MaxTemplateInterval, "seconds");
            IPEndPoint? collector = UdpEndpoint(m, "collector", path, "4739");
            return collector is null ? null : new IpfixSinkSettings(collector, domain, interval);
        }

        /// <summary>A required "address:port" destination; localhost means 127.0.0.1.</summary>
        private IPEndPoint? UdpEndpoint(YMapping m, string key, string path, string examplePort)
        {
            string keyPath = path + "." + key;
            YNode? node = m.Get(key);
            if (node is null)
            {
                Error(m, keyPath, $"is required: the collector's address:port, e.g. 127.0.0.1:{examplePort}");
                return null;
            }
            if (Text(node, keyPath) is not { } t)
            {
                return null;
            }
            if (ListenEndpoint.TryParse(t, out var ep) && ep.Port != 0)
            {
                return new IPEndPoint(ep.Address ?? IPAddress.Loopback, ep.Port);
            }
            Error(node, keyPath, string.Create(CultureInfo.InvariantCulture,
                $"'{t}' is not address:port (expected an IPv4 address, [IPv6 address] or localhost, then ':' and a port 1..65535, e.g. 127.0.0.1:{examplePort})"));
            return null;
        }

        /// <summary>The name with anything outside RFC 5424's PRINTUSASCII (33..126) replaced by '-'.</summary>
        private static string SyslogHostname(string name)
        {
            if (name.Length == 0)
            {
                return "-";
            }
            var chars = name.ToCharArray();
            for (int i = 0; i < chars.Length; i++)
            {
                if (chars[i] is < '!' or > '~')
                {
                    chars[i] = '-';
                }
            }
            return new string(chars, 0, Math.Min(chars.Length, 255));
        }
    }
}

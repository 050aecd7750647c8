using System.Net;

namespace Natd.Control.Logging;

/// <summary>
/// The NAT event log (config key <c>log.events</c>): how many events each poller may queue and which
/// sinks receive them. Absent from the file means no event is queued or written. Every sink is
/// optional; with none configured the events are still drained and counted (useful for sizing).
/// </summary>
public sealed record EventLogSettings
{
    /// <summary>Default events per poller ring.</summary>
    public const int DefaultQueue = 65536;

    /// <summary>Events each poller's ring holds (rounded up to a power of two, 2..16777216); a full ring drops and counts.</summary>
    public int Queue { get; init; } = DefaultQueue;

    /// <summary>JSON lines file sink, or null.</summary>
    public FileSinkSettings? File { get; init; }

    /// <summary>RFC 5424 syslog over UDP sink, or null.</summary>
    public SyslogSinkSettings? Syslog { get; init; }

    /// <summary>IPFIX (RFC 7011, RFC 8158 NAT information elements) over UDP sink, or null.</summary>
    public IpfixSinkSettings? Ipfix { get; init; }
}

/// <summary>The JSON lines file: one object per event, rotated by size.</summary>
/// <param name="Path">File written; rotated copies are Path.1 (newest) to Path.Keep (oldest).</param>
/// <param name="MaxBytes">Size (bytes) the file may reach; a line that would pass it first rotates the file.</param>
/// <param name="Keep">Rotated copies kept (0: the full file is simply truncated).</param>
public sealed record FileSinkSettings(string Path, long MaxBytes, int Keep)
{
    /// <summary>Default rotation size, 100 MiB.</summary>
    public const long DefaultMaxBytes = 100L * 1024 * 1024;

    /// <summary>Default rotated copies kept.</summary>
    public const int DefaultKeep = 5;
}

/// <summary>Syslog over UDP (RFC 5424 message format, RFC 5426 transport), one event per datagram.</summary>
/// <param name="Server">Collector address and UDP port.</param>
/// <param name="Facility">Facility code 0..23 (local0 = 16); severity is always informational (6).</param>
/// <param name="Hostname">HOSTNAME field (printable US-ASCII, no spaces, 1..255 characters).</param>
public sealed record SyslogSinkSettings(IPEndPoint Server, int Facility, string Hostname)
{
    /// <summary>Facility names in code order (RFC 5424 section 6.2.1, table 1), as accepted in the config.</summary>
    public static readonly string[] FacilityNames =
    [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
        "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    ];

    /// <summary>Facility code of local0, the default.</summary>
    public const int Local0 = 16;
}

/// <summary>IPFIX export over UDP (RFC 7011 section 10.3 rules for templates over UDP).</summary>
/// <param name="Collector">Collector address and UDP port (IANA port 4739).</param>
/// <param name="Domain">Observation Domain ID written in every message header.</param>
/// <param name="TemplateIntervalSeconds">Seconds between template re-sends (RFC 7011 section 10.3.6), 1..86400.</param>
public sealed record IpfixSinkSettings(IPEndPoint Collector, uint Domain, int TemplateIntervalSeconds)
{
    /// <summary>Default template re-send interval in seconds.</summary>
    public const int DefaultTemplateInterval = 60;
}

namespace Natd.Control.Logging;

/// <summary>
/// Counters of the NAT event log, for /metrics. Each field has one writer, the event logger's
/// actor thread; readers on other threads use <c>Volatile.Read</c>. For each sink,
/// written plus errors is the number of events handed to it (events in an IPFIX message not yet
/// sent are in neither).
/// </summary>
public sealed class EventLogStats
{
    /// <summary>Events taken from the pollers' rings.</summary>
    public long Drained;

    /// <summary>Events lost because a poller's ring was full (sum of every table's EventsDropped).</summary>
    public long Dropped;

    /// <summary>Events written to the JSON lines file (counted when flushed to the file).</summary>
    public long FileWritten;

    /// <summary>Events the file sink failed to write (file unwritable, disk full...).</summary>
    public long FileErrors;

    /// <summary>Times the JSON lines file was rotated.</summary>
    public long FileRotations;

    /// <summary>Events sent as syslog datagrams.</summary>
    public long SyslogWritten;

    /// <summary>Events whose syslog datagram could not be sent.</summary>
    public long SyslogErrors;

    /// <summary>Data records sent in IPFIX messages.</summary>
    public long IpfixWritten;

    /// <summary>Data records in IPFIX messages that could not be sent.</summary>
    public long IpfixErrors;

    /// <summary>IPFIX messages sent (data and template-only).</summary>
    public long IpfixMessages;

    /// <summary>
    /// The sinks' counters as <c>StatsSnapshot.EventLog</c> carries them, keyed "sink/outcome":
    /// file/written, file/errors, file/rotations, syslog/written, syslog/errors, ipfix/written,
    /// ipfix/errors (records), ipfix/messages. Read from another thread than the logger's: each
    /// value is one aligned 64-bit read, current to within the logger's last flush.
    /// </summary>
    public Dictionary<string, long> Snapshot() => new(StringComparer.Ordinal)
    {
        ["file/written"] = Volatile.Read(ref FileWritten),
        ["file/errors"] = Volatile.Read(ref FileErrors),
        ["file/rotations"] = Volatile.Read(ref FileRotations),
        ["syslog/written"] = Volatile.Read(ref SyslogWritten),
        ["syslog/errors"] = Volatile.Read(ref SyslogErrors),
        ["ipfix/written"] = Volatile.Read(ref IpfixWritten),
        ["ipfix/errors"] = Volatile.Read(ref IpfixErrors),
        ["ipfix/messages"] = Volatile.Read(ref IpfixMessages),
    };
}

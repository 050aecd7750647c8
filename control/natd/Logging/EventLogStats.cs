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
}

using Natd.Dataplane.Nat;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Logging;

/// <summary>
/// One destination of NAT events (file, syslog, IPFIX). Used only from the event logger's actor
/// thread. A sink handles its own I/O failures (counts them in <see cref="EventLogStats"/> and logs
/// them) and never throws for them; anything it does throw restarts the logger.
/// </summary>
internal interface INatEventSink : IDisposable
{
    /// <summary>Short name for logs ("file", "syslog", "ipfix").</summary>
    string Name { get; }

    /// <summary>Writes (or buffers) one event.</summary>
    /// <param name="e">The event.</param>
    /// <param name="unixMs">Its wall-clock time, milliseconds since 1970-01-01 UTC.</param>
    void Write(in NatEvent e, long unixMs);

    /// <summary>Pushes buffered events out; called at the end of each drain.</summary>
    void Flush();
}

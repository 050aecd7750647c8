using Microsoft.Extensions.Logging;
using Akka.Actor;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Rings;
using Natd.Dataplane.Sessions;
using Natd.Dataplane.Workers;

namespace Natd.Control.Logging;

/// <summary>Tunables of the <see cref="NatEventLogger"/>, mostly for tests.</summary>
public sealed record EventLoggerOptions
{
    /// <summary>
    /// Milliseconds added to an event's engine time to get Unix time (ms since 1970-01-01 UTC); null
    /// captures <c>UtcNow - Environment.TickCount64</c> at start, right for the live engine clock.
    /// </summary>
    public long? EpochOffsetMs { get; init; }

    /// <summary>Events taken from one ring per drain; the rest wait for a follow-up drain, so one drain stays bounded.</summary>
    public int MaxEventsPerDrain { get; init; } = 65536;

    /// <summary>Session table capacity, exported as maxSessionEntries (IPFIX IE 471) in quota-exceeded records.</summary>
    public uint MaxSessions { get; init; }

    /// <summary>
    /// The carrier-grade settings in force, read when a per-subscriber quota record is exported (its
    /// maxEntriesPerUser is the limit that was hit); null: the defaults (no limits).
    /// </summary>
    public Func<CgnatSettings>? Cgnat { get; init; }

    /// <summary>Wall clock for IPFIX export times and template intervals.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>
/// The NAT event logger (docs/architecture.md, "Actors"): drains every poller's event ring on its own actor
/// thread, stamps wall-clock time and writes each event to every configured sink (JSON lines file,
/// RFC 5424 syslog, IPFIX). Pollers only ever do a non-blocking enqueue, so a slow or dead sink can
/// fill the rings (losses counted in SessionTable.EventsDropped) but never stall forwarding. Sink
/// I/O failures are counted and logged by the sink; any other exception fails the actor and its
/// supervisor restarts it (sinks reopened, rings kept: they belong to the session tables).
/// Messages: <see cref="Drain"/> (the periodic tick) and <see cref="Flush"/> (drain now and reply).
/// </summary>
public sealed class NatEventLogger : UntypedActor
{
    /// <summary>How often the daemon tells <see cref="Drain"/>.</summary>
    public static readonly TimeSpan DrainInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>Drain the rings (bounded per ring) and flush the sinks; no reply.</summary>
    public sealed record Drain
    {
        /// <summary>The shared instance.</summary>
        public static readonly Drain Instance = new();
    }

    /// <summary>Drain everything queued now, flush the sinks, then reply <see cref="Flushed"/>.</summary>
    public sealed record Flush
    {
        /// <summary>The shared instance.</summary>
        public static readonly Flush Instance = new();
    }

    /// <summary>Reply to <see cref="Flush"/>.</summary>
    /// <param name="Drained">Events drained since start (all instances of the logger).</param>
    public sealed record Flushed(long Drained);

    private readonly IReadOnlyList<SessionTable> _tables;
    private readonly Func<IReadOnlyList<INatEventSink>> _sinkFactory;
    private readonly EventLogStats _stats;
    private readonly ILogger _logger;
    private readonly EventLoggerOptions _options;
    private readonly int _queue;
    private SpscRing<NatEvent>[] _rings = [];
    private IReadOnlyList<INatEventSink> _sinks = [];
    private long _offsetMs;
    private long _droppedReported;
    private long _droppedReportedAt = long.MinValue;
    private bool _followUpQueued;

    /// <summary>Creates the logger for the given session tables (one per poller) with the sinks of <paramref name="settings"/>.</summary>
    /// <param name="settings">Queue size and sinks.</param>
    /// <param name="tables">Each poller's session table; a table without a ring gets one at start (see <see cref="AttachRing"/>).</param>
    /// <param name="stats">Counters, shared with /metrics.</param>
    /// <param name="logger">Where sink failures and drops are reported.</param>
    /// <param name="options">Clock offset, drain bound, IPFIX details; null for the defaults.</param>
    public NatEventLogger(EventLogSettings settings, IReadOnlyList<SessionTable> tables, EventLogStats stats, ILogger logger, EventLoggerOptions? options = null)
        : this(tables, () => CreateSinks(settings, stats, logger, options ?? new EventLoggerOptions()), stats, logger, options, settings.Queue)
    {
    }

    /// <summary>Creates the logger with sinks from a factory (called at start and on every restart).</summary>
    internal NatEventLogger(IReadOnlyList<SessionTable> tables, Func<IReadOnlyList<INatEventSink>> sinks, EventLogStats stats,
        ILogger logger, EventLoggerOptions? options, int queue)
    {
        _tables = tables;
        _sinkFactory = sinks;
        _stats = stats;
        _logger = logger;
        _options = options ?? new EventLoggerOptions();
        _queue = queue;
    }

    /// <summary>
    /// Gives a session table its event ring (turns event logging on) unless it has one; returns the
    /// table's ring. Call before the owning poller starts: the table's Events property is then
    /// published to the poller thread by the thread start itself.
    /// </summary>
    /// <param name="table">The poller's session table.</param>
    /// <param name="capacity">Ring slots (rounded up to a power of two), 2..2^24.</param>
    /// <exception cref="ArgumentOutOfRangeException">capacity out of range.</exception>
    public static SpscRing<NatEvent> AttachRing(SessionTable table, int capacity)
    {
        ArgumentNullException.ThrowIfNull(table);
        return table.Events ??= new SpscRing<NatEvent>(capacity);
    }

    /// <inheritdoc />
    protected override void PreStart()
    {
        _offsetMs = _options.EpochOffsetMs ?? DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - Environment.TickCount64;
        var rings = new SpscRing<NatEvent>[_tables.Count];
        for (int i = 0; i < rings.Length; i++)
        {
            // Normally attached by the daemon before the poller started. Attaching here while the poller
            // runs is also safe: the field only goes from null to a ring, and a poller that still sees
            // null just skips logging that event.
            rings[i] = AttachRing(_tables[i], _queue);
        }
        _rings = rings;
        _sinks = _sinkFactory();
        EventLogLog.Started(_logger, rings.Length, rings.Length > 0 ? rings[0].Capacity : _queue,
            _sinks.Count == 0 ? "none" : string.Join(", ", _sinks.Select(s => s.Name)));
    }

    /// <inheritdoc />
    protected override void PostStop()
    {
        // Final drain: events queued before shutdown still reach the sinks.
        try
        {
            DrainRings(0);
        }
        finally
        {
            foreach (var sink in _sinks)
            {
                sink.Dispose();
            }
            _sinks = [];
        }
    }

    /// <inheritdoc />
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Drain:
                _followUpQueued = false;
                if (DrainRings(_options.MaxEventsPerDrain) && !_followUpQueued)
                {
                    // More is waiting: continue after whatever else is in the mailbox, not in one unbounded run.
                    _followUpQueued = true;
                    Self.Tell(Drain.Instance);
                }
                break;
            case Flush:
                DrainRings(0);
                Sender.Tell(new Flushed(Volatile.Read(ref _stats.Drained)));
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    /// <summary>
    /// Takes up to <paramref name="budget"/> events from each ring (0: what each ring holds now, so a
    /// busy producer cannot keep it running) to every sink; true when a ring still holds events.
    /// </summary>
    private bool DrainRings(int budget)
    {
        long n = 0;
        bool more = false;
        var sinks = _sinks;
        foreach (var ring in _rings)
        {
            int taken = 0;
            int limit = budget > 0 ? budget : ring.Count;
            while (taken < limit && ring.TryDequeue(out NatEvent e))
            {
                long unixMs = e.TimeMs + _offsetMs;
                for (int s = 0; s < sinks.Count; s++)
                {
                    sinks[s].Write(in e, unixMs);
                }
                taken++;
            }
            n += taken;
            more |= taken == limit && ring.Count > 0;
        }
        for (int s = 0; s < sinks.Count; s++)
        {
            sinks[s].Flush();
        }
        Volatile.Write(ref _stats.Drained, _stats.Drained + n);
        ReportDrops();
        return more;
    }

    private void ReportDrops()
    {
        long total = 0;
        foreach (var t in _tables)
        {
            total += t.EventsDropped;
        }
        Volatile.Write(ref _stats.Dropped, total);
        long now = Environment.TickCount64;
        if (total > _droppedReported && now - _droppedReportedAt >= 10_000)
        {
            EventLogLog.Dropped(_logger, total - _droppedReported, total);
            _droppedReported = total;
            _droppedReportedAt = now;
        }
    }

    private static List<INatEventSink> CreateSinks(EventLogSettings settings, EventLogStats stats, ILogger logger, EventLoggerOptions options)
    {
        var sinks = new List<INatEventSink>(3);
        if (settings.File is { } f)
        {
            sinks.Add(new JsonLinesFileSink(f, stats, logger));
        }
        if (settings.Syslog is { } s)
        {
            sinks.Add(new SyslogSink(s, stats, logger));
        }
        if (settings.Ipfix is { } i)
        {
            sinks.Add(new IpfixSink(i, options.MaxSessions, stats, logger, options.Time, options.Cgnat));
        }
        return sinks;
    }
}

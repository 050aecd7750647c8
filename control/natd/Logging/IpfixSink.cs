using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Logging;

/// <summary>
/// Exports events as IPFIX over UDP (RFC 7011 section 10). Records are packed into messages of at
/// most 1400 bytes; a message goes out when full and at the end of every drain. Over UDP the
/// collector learns templates only from the exporter's resends, so the template set is carried in
/// the first message and again in the first message after each template interval (RFC 7011
/// section 10.3.6); a drain with no events still sends a template-only message when one is due.
/// </summary>
internal sealed class IpfixSink : INatEventSink
{
    private readonly IpfixSinkSettings _settings;
    private readonly EventLogStats _stats;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly IpfixEncoder _encoder;
    private Socket? _socket;
    private long? _templatesSentMs; // null until the first template set has gone out
    private bool _reported;

    /// <summary>Creates the sink; nothing is sent until the first <see cref="Write"/> or <see cref="Flush"/>.</summary>
    /// <param name="settings">Collector, domain, template interval.</param>
    /// <param name="maxSessions">maxSessionEntries of session-table quota records.</param>
    /// <param name="stats">Counters.</param>
    /// <param name="logger">Where send failures are reported.</param>
    /// <param name="time">Wall clock for export times and template intervals.</param>
    /// <param name="cgnat">The carrier-grade settings in force (per-subscriber quota values); null: the defaults.</param>
    public IpfixSink(IpfixSinkSettings settings, uint maxSessions, EventLogStats stats, ILogger logger, TimeProvider time, Func<CgnatSettings>? cgnat = null)
    {
        _settings = settings;
        _stats = stats;
        _logger = logger;
        _time = time;
        _encoder = new IpfixEncoder(settings.Domain, maxSessions, cgnat: cgnat);
    }

    public string Name => "ipfix";

    public void Write(in NatEvent e, long unixMs)
    {
        if (!_encoder.IsOpen)
        {
            _encoder.Begin(TemplatesDue());
        }
        if (!_encoder.TryAppend(in e, unixMs))
        {
            Send();
            _encoder.Begin(TemplatesDue());
            _encoder.TryAppend(in e, unixMs);
        }
    }

    public void Flush()
    {
        if (!_encoder.IsOpen && TemplatesDue())
        {
            _encoder.Begin(true);
        }
        if (_encoder.IsOpen)
        {
            Send();
        }
    }

    public void Dispose()
    {
        if (_encoder.IsOpen && _encoder.Records > 0)
        {
            Send();
        }
        _socket?.Dispose();
    }

    private bool TemplatesDue()
        => _templatesSentMs is not { } sent || _time.GetUtcNow().ToUnixTimeMilliseconds() - sent >= _settings.TemplateIntervalSeconds * 1000L;

    private void Send()
    {
        long nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        bool templates = _encoder.HasTemplates;
        int records = _encoder.Records;
        ReadOnlySpan<byte> message = _encoder.Complete(nowMs / 1000);
        try
        {
            _socket ??= new Socket(_settings.Collector.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            _socket.SendTo(message, SocketFlags.None, _settings.Collector);
            _stats.IpfixWritten += records;
            _stats.IpfixMessages++;
            if (templates)
            {
                _templatesSentMs = nowMs;
            }
            if (_reported)
            {
                _reported = false;
                EventLogLog.SinkRecovered(_logger, Name);
            }
        }
        catch (SocketException ex)
        {
            _stats.IpfixErrors += records;
            if (!_reported)
            {
                _reported = true;
                EventLogLog.SinkFailed(_logger, Name, _settings.Collector.ToString(), ex.Message);
            }
        }
    }
}

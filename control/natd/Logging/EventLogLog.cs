using Microsoft.Extensions.Logging;

namespace Natd.Control.Logging;

/// <summary>The event log's own diagnostics, with fixed event ids (400-409).</summary>
internal static partial class EventLogLog
{
    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "NAT event log started: {Rings} poller ring(s) of {Queue} events, sinks: {Sinks}")]
    public static partial void Started(ILogger logger, int rings, int queue, string sinks);

    [LoggerMessage(EventId = 401, Level = LogLevel.Error, Message = "NAT event sink {Sink} ({Target}) failed: {Reason}; its events are counted as errors until it works again")]
    public static partial void SinkFailed(ILogger logger, string sink, string target, string reason);

    [LoggerMessage(EventId = 402, Level = LogLevel.Information, Message = "NAT event sink {Sink} works again")]
    public static partial void SinkRecovered(ILogger logger, string sink);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "NAT event queue full: {New} events dropped since the last report ({Total} in all); raise log.events.queue or check the sinks")]
    public static partial void Dropped(ILogger logger, long @new, long total);
}

using Microsoft.Extensions.Logging;
using Akka.Actor;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;
using Natd.Dataplane.Workers;

namespace Natd.Control.Daemon;

/// <summary>
/// Drives expiry: on each tick asks every poller to expire a bounded slice of its shard (so expiry
/// never stalls forwarding, whatever the table size) and logs what happened since the last check:
/// port and session exhaustion, one line per reason, and transmit kicks that failed
/// (<see cref="TransmitKickWatch"/>), one line per interface; it checks once a second.
/// </summary>
internal sealed partial class SweeperActor(IReadOnlyList<PollerHandle> pollers, int budget, ILogger logger) : UntypedActor
{
    /// <summary>
    /// Sessions one poller expires per slice: 128 at the 0.3 to 0.55 microseconds a deletion costs (perf/,
    /// SweepBenchmarks) keeps a slice under the 100-microsecond stall budget; expiry also happens on
    /// lookup and two at a time on every session creation, so slices only tidy idle tables.
    /// </summary>
    public const int SliceBudget = 128;

    /// <summary>Time between slices.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    /// <summary>The periodic tick message.</summary>
    public sealed record Tick
    {
        public static readonly Tick Instance = new();
    }

    private readonly TransmitKickWatch _kicks = new(pollers);
    private int _ticks;
    private long _portExhausted;
    private long _sessionLimit;

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case Tick:
                foreach (var p in pollers)
                {
                    p.Actor.Tell(new SweepSlice(budget), Self);
                }
                if (++_ticks % 10 == 0)
                {
                    CheckExhaustion(); // once a second: one log line per second at most
                    CheckPoolThreshold();
                    DrainRuleLog();
                    _kicks.Check(logger);
                }
                break;
            case int:
                break; // a slice's deleted count; the shard counted it (sessions swept) in its own table
            default:
                Unhandled(message);
                break;
        }
    }

    private void CheckExhaustion()
    {
        long ports = 0, sessions = 0;
        foreach (var p in pollers)
        {
            ports += p.View.Counters[NatCounters.DropBase + (int)DropReason.PortExhausted];
            sessions += p.View.Counters[NatCounters.DropBase + (int)DropReason.SessionLimit];
        }
        if (ports > _portExhausted)
        {
            LogPortExhausted(logger, ports - _portExhausted, ports);
            _portExhausted = ports;
        }
        if (sessions > _sessionLimit)
        {
            LogSessionLimit(logger, sessions - _sessionLimit, sessions);
            _sessionLimit = sessions;
        }
    }

    // Per poller, the pool addresses it last reported past nat.pool-threshold.
    private readonly Dictionary<(int Shard, uint Address), bool> _aboveThreshold = [];

    /// <summary>
    /// Logs an address passing nat.pool-threshold in a shard (the shard emitted the PoolThreshold
    /// event to the NAT event log already) and its falling back below the re-arm level: one line per
    /// change, never one per second while it stays there.
    /// </summary>
    private void CheckPoolThreshold()
    {
        for (int shard = 0; shard < pollers.Count; shard++)
        {
            var view = pollers[shard].View;
            var pool = view.Pool;
            for (int a = 0; a < pool.Count; a++)
            {
                bool above = view.AboveThreshold(a);
                if (_aboveThreshold.GetValueOrDefault((shard, pool[a])) == above)
                {
                    continue;
                }
                _aboveThreshold[(shard, pool[a])] = above;
                if (above)
                {
                    LogPoolThreshold(logger, Ipv4.Format(pool[a]), shard);
                }
                else
                {
                    LogPoolBelowThreshold(logger, Ipv4.Format(pool[a]), shard);
                }
            }
        }
    }

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "external address {Address} passed nat.pool-threshold in shard {Shard} (ports, or port blocks, in use)")]
    private static partial void LogPoolThreshold(ILogger logger, string address, int shard);

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "external address {Address} fell back below nat.pool-threshold in shard {Shard}")]
    private static partial void LogPoolBelowThreshold(ILogger logger, string address, int shard);

    /// <summary>Logs packets that matched rules marked <c>log: true</c> (the engine rate-limits them, ipfwadm -o style).</summary>
    private void DrainRuleLog()
    {
        foreach (var p in pollers)
        {
            var names = p.View.RuleHits.Names;
            while (p.View.RuleLog.TryDequeue(out var r))
            {
                string rule = r.Rule < names.Length ? names[r.Rule] : $"#{r.Rule}";
                LogRuleMatch(logger, rule, r.Action.ToString().ToLowerInvariant(), r.Protocol,
                    $"{Ipv4.Format(r.Source)}:{r.SourcePort}", $"{Ipv4.Format(r.Destination)}:{r.DestinationPort}");
            }
        }
    }

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "rule {Rule} {Action}: proto {Protocol} {Source} -> {Destination}")]
    private static partial void LogRuleMatch(ILogger logger, string rule, string action, byte protocol, string source, string destination);

    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "external ports exhausted: {New} new flows refused since the last sweep ({Total} in all); existing sessions unaffected")]
    private static partial void LogPortExhausted(ILogger logger, long @new, long total);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "session table full: {New} new flows refused since the last sweep ({Total} in all); existing sessions unaffected")]
    private static partial void LogSessionLimit(ILogger logger, long @new, long total);
}

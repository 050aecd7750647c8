using Microsoft.Extensions.Logging;
using Natd.Control.Api;
using Natd.Control.Config;
using Akka.Actor;
using Natd.Dataplane.Workers;

namespace Natd.Control.Daemon;

/// <summary>
/// Owns the configuration: validates a new file whole and, only when it is valid, publishes the
/// immutable snapshot to every poller. A bad file is rejected with its file/line/key messages and
/// the running configuration stays in force. <c>applied</c>, when given, is told each configuration
/// that comes into force (on this actor's thread), for readers outside the actor system.
/// Every poller must answer each phase within <c>answerTimeout</c> (default
/// <see cref="DefaultAnswerTimeout"/>): a poller that is dead or stuck fails the reload with its name
/// ("poller-1 did not answer within 5 s") instead of holding every later reload.
/// </summary>
internal sealed partial class ConfigActor(NatdConfig initial, IReadOnlyList<PollerHandle> pollers, ILogger logger,
    Action<NatdConfig>? applied = null, TimeSpan? answerTimeout = null) : UntypedActor, IWithTimers
{
    /// <summary>How long a reload waits for every poller's answer (both phases together).</summary>
    public static readonly TimeSpan DefaultAnswerTimeout = TimeSpan.FromSeconds(5);

    private readonly TimeSpan _answerTimeout = answerTimeout ?? DefaultAnswerTimeout;

    /// <inheritdoc />
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>The pending reload's deadline passed (<paramref name="Id"/>: which reload, so a late timer of an old one is ignored).</summary>
    private sealed record AnswerDeadline(long Id);

    /// <summary>Reload the file at <paramref name="Path"/> (null: the file the daemon started with). Reply: <see cref="ReloadResult"/>.</summary>
    public sealed record Reload(string? Path);

    /// <summary>Outcome of a reload.</summary>
    public sealed record ReloadResult(bool Ok, IReadOnlyList<string> Messages);

    /// <summary>
    /// Change some timeouts of the configuration in force (natctl timeouts set), applied to every
    /// poller like a reload; reply: <see cref="ReloadResult"/>. Not written to the file.
    /// </summary>
    public sealed record ChangeTimeouts(TimeoutsChange Change);

    /// <summary>Ask for the configuration in force; reply: <see cref="NatdConfig"/>.</summary>
    public sealed record GetConfig
    {
        public static readonly GetConfig Instance = new();
    }

    private NatdConfig _current = initial;
    private PendingReload? _pending;
    private long _reloads;

    /// <summary>A validated configuration waiting for every poller's answer.</summary>
    private sealed class PendingReload(long id, NatdConfig next, IActorRef requester, string path)
    {
        public long Id { get; } = id;
        public NatdConfig Next { get; } = next;
        public IActorRef Requester { get; } = requester;
        /// <summary>Pollers (by index) that have not answered the current phase.</summary>
        public HashSet<int> Waiting { get; } = [];
        public string Path { get; } = path;
        public List<string> Refusals { get; } = [];
        public List<string> Notes { get; init; } = [];
        /// <summary>True while the pollers answer the check (first phase), false once they apply.</summary>
        public bool Checking { get; set; } = true;

        /// <summary>The timeout as the error message gives it ("5 s", "0.5 s").</summary>
        public string Timeout(TimeSpan t) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{t.TotalSeconds:0.###} s");
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case GetConfig:
                Sender.Tell(_current);
                break;
            case Reload r when _pending is not null:
                Sender.Tell(new ReloadResult(false, ["a reload is already in progress"]));
                break;
            case Reload r:
                StartReload(r.Path ?? _current.SourcePath, Sender);
                break;
            case ChangeTimeouts when _pending is not null:
                Sender.Tell(new ReloadResult(false, ["a reload is already in progress"]));
                break;
            case ChangeTimeouts c:
                var timeouts = c.Change.ApplyTo(_current.Nat.Timeouts);
                StartApply(_current with { Nat = _current.Nat with { Timeouts = timeouts } }, Sender,
                    $"timeouts {timeouts.TcpEstablished}/{timeouts.TcpTransitory}/{timeouts.Udp}/{timeouts.Icmp} s (tcp-established/tcp-transitory/udp/icmp)");
                break;
            case ApplyResult res when _pending is not null && res.Id == _pending.Id && _pending.Waiting.Remove(IndexOf(Sender)):
                if (!res.Applied)
                {
                    _pending.Refusals.Add(res.Reason ?? "refused");
                }
                if (_pending.Waiting.Count == 0)
                {
                    if (_pending.Checking && _pending.Refusals.Count == 0)
                    {
                        // Every shard can take it: apply everywhere (second phase).
                        _pending.Checking = false;
                        AskAll(_pending, id => new ApplySettings(_pending.Next.Nat, id));
                        break;
                    }
                    Timers.Cancel(AnswerTimer);
                    FinishReload(_pending);
                    _pending = null;
                }
                break;
            case ApplyResult:
                break; // an answer to a reload that already timed out
            case AnswerDeadline d when _pending is not null && d.Id == _pending.Id:
                TimedOut(_pending);
                _pending = null;
                break;
            case AnswerDeadline:
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void StartReload(string? path, IActorRef requester)
    {
        NatdConfig next;
        try
        {
            next = path is null ? ConfigLoader.Default() : ConfigLoader.LoadFile(path);
        }
        catch (ConfigException e)
        {
            foreach (var err in e.Errors)
            {
                LogRejected(logger, err.ToString());
            }
            requester.Tell(new ReloadResult(false, [.. e.Errors.Select(x => x.ToString())]));
            return;
        }
        var (kept, notes) = KeepRestartOnly(_current, next);
        foreach (var n in notes)
        {
            LogRestartOnly(logger, n);
        }
        StartApply(kept, requester, path ?? "(built-in defaults)", notes);
    }

    /// <summary>
    /// Sections the daemon reads only at start (the control listener, the event log sinks, the
    /// batch size, workers, the AF_XDP fill ring, drivers): a reload applies everything else and
    /// keeps these as they run, with a note saying they take effect at the next restart.
    /// </summary>
    private static (NatdConfig Kept, List<string> Notes) KeepRestartOnly(NatdConfig cur, NatdConfig next)
    {
        var notes = new List<string>();
        if (cur.ControlListen != next.ControlListen && IsFromFile(cur))
        {
            notes.Add("control.listen changed: takes effect at the next restart");
        }
        if (!Equals(cur.Events, next.Events))
        {
            notes.Add("log.events changed: takes effect at the next restart");
        }
        if (cur.BatchSize != next.BatchSize || cur.Workers != next.Workers || cur.XdpFillRing != next.XdpFillRing
            || cur.InsideDriver != next.InsideDriver || cur.OutsideDriver != next.OutsideDriver)
        {
            notes.Add("dataplane.batch, dataplane.workers, dataplane.xdp-fill-ring or an interface driver changed: takes effect at the next restart");
        }
        var kept = next with
        {
            ControlListen = cur.ControlListen, Events = cur.Events, BatchSize = cur.BatchSize, Workers = cur.Workers,
            XdpFillRing = cur.XdpFillRing, InsideDriver = cur.InsideDriver, OutsideDriver = cur.OutsideDriver,
        };
        return (kept, notes);
    }

    // A listener overridden at start (tests, the lab) is not a change the file made.
    private static bool IsFromFile(NatdConfig cur) => !cur.ControlListen.EndsWith(":0", StringComparison.Ordinal);

    private void StartApply(NatdConfig next, IActorRef requester, string description, List<string>? notes = null)
    {
        // Two phases: every poller first checks the swap against its own live state (port blocks
        // and mappings differ per shard), and only when none refuses do they all apply it, so one
        // shard's refusal never leaves the others on the new configuration. A flow between the two
        // phases may still make a shard refuse the apply (it then says so like any refusal).
        _pending = new PendingReload(++_reloads, next, requester, description) { Notes = notes ?? [] };
        if (pollers.Count == 0)
        {
            FinishReload(_pending);
            _pending = null;
            return;
        }
        Timers.StartSingleTimer(AnswerTimer, new AnswerDeadline(_pending.Id), _answerTimeout);
        AskAll(_pending, id => new CheckSettings(next.Nat, id));
    }

    private const string AnswerTimer = "answers";

    private void AskAll(PendingReload p, Func<long, object> message)
    {
        for (int i = 0; i < pollers.Count; i++)
        {
            p.Waiting.Add(i);
            pollers[i].Actor.Tell(message(p.Id), Self);
        }
    }

    private int IndexOf(IActorRef poller)
    {
        for (int i = 0; i < pollers.Count; i++)
        {
            if (pollers[i].Actor.Equals(poller))
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>
    /// A poller did not answer in time: the reload fails with the silent pollers' names. Nothing
    /// changed when it was the check phase; in the apply phase the pollers that answered run the new
    /// settings, and the message says which.
    /// </summary>
    private void TimedOut(PendingReload p)
    {
        var silent = new List<string>();
        foreach (int i in p.Waiting)
        {
            silent.Add(pollers[i].Actor.Path.Name);
        }
        silent.Sort(StringComparer.Ordinal);
        string error = $"{string.Join(", ", silent)} did not answer within {p.Timeout(_answerTimeout)}";
        if (p.Checking)
        {
            error += "; nothing was applied, the running configuration stays";
        }
        else
        {
            var applied = new List<string>();
            for (int i = 0; i < pollers.Count; i++)
            {
                if (!p.Waiting.Contains(i))
                {
                    applied.Add(pollers[i].Actor.Path.Name);
                }
            }
            error += applied.Count > 0
                ? $"; {string.Join(", ", applied)} already applied it, the others may not have"
                : "; no poller confirmed the apply";
        }
        LogRejected(logger, error);
        p.Requester.Tell(new ReloadResult(false, [error]));
    }

    private void FinishReload(PendingReload p)
    {
        if (p.Refusals.Count > 0)
        {
            foreach (var r in p.Refusals)
            {
                LogRejected(logger, r);
            }
            p.Requester.Tell(new ReloadResult(false, p.Refusals));
            return;
        }
        _current = p.Next;
        applied?.Invoke(p.Next);
        LogApplied(logger, p.Path);
        p.Requester.Tell(new ReloadResult(true, [.. p.Next.Warnings.Select(w => w.ToString()), .. p.Notes]));
    }

    [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "reload: {Note}")]
    private static partial void LogRestartOnly(ILogger logger, string note);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "configuration {Path} applied")]
    private static partial void LogApplied(ILogger logger, string path);

    [LoggerMessage(EventId = 11, Level = LogLevel.Error, Message = "configuration rejected, the running configuration stays: {Error}")]
    private static partial void LogRejected(ILogger logger, string error);
}

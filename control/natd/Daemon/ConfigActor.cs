using Microsoft.Extensions.Logging;
using Natd.Control.Config;
using Natd.Dataplane.Actors;
using Natd.Dataplane.Workers;

namespace Natd.Control.Daemon;

/// <summary>
/// Owns the configuration: validates a new file whole and, only when it is valid, publishes the
/// immutable snapshot to every poller. A bad file is rejected with its file/line/key messages and
/// the running configuration stays in force.
/// </summary>
internal sealed partial class ConfigActor(NatdConfig initial, IReadOnlyList<PollerHandle> pollers, ILogger logger) : ActorBase
{
    /// <summary>Reload the file at <paramref name="Path"/> (null: the file the daemon started with). Reply: <see cref="ReloadResult"/>.</summary>
    public sealed record Reload(string? Path);

    /// <summary>Outcome of a reload.</summary>
    public sealed record ReloadResult(bool Ok, IReadOnlyList<string> Messages);

    /// <summary>Ask for the configuration in force; reply: <see cref="NatdConfig"/>.</summary>
    public sealed record GetConfig
    {
        public static readonly GetConfig Instance = new();
    }

    private NatdConfig _current = initial;

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case GetConfig:
                Sender.Tell(_current);
                break;
            case Reload r:
                Sender.Tell(DoReload(r.Path ?? _current.SourcePath));
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private ReloadResult DoReload(string? path)
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
            return new ReloadResult(false, [.. e.Errors.Select(x => x.ToString())]);
        }
        var messages = new List<string>();
        foreach (var p in pollers)
        {
            var res = p.Actor.Ask<ApplyResult>(new ApplySettings(next.Nat), TimeSpan.FromSeconds(5)).GetAwaiter().GetResult();
            if (!res.Applied)
            {
                messages.Add(res.Reason ?? "refused");
                LogRejected(logger, res.Reason ?? "refused");
                return new ReloadResult(false, messages);
            }
        }
        _current = next;
        LogApplied(logger, path ?? "(built-in defaults)");
        return new ReloadResult(true, [.. next.Warnings.Select(w => w.ToString())]);
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "configuration {Path} applied")]
    private static partial void LogApplied(ILogger logger, string path);

    [LoggerMessage(EventId = 11, Level = LogLevel.Error, Message = "configuration rejected, the running configuration stays: {Error}")]
    private static partial void LogRejected(ILogger logger, string error);
}

using Natd.Control.Api;
using Natd.Control.Config;
using Akka.Actor;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Workers;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Daemon;

/// <summary>
/// The control API's write side over the actor tree: session deletions go to every poller (each
/// owns its shard and answers with its count), configuration changes go through the ConfigActor,
/// which validates, applies to every poller and only then makes the change current.
/// </summary>
internal sealed class ControlOperations(IReadOnlyList<PollerHandle> pollers, IActorRef configActor) : IControlOperations
{
    private static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Reloads wait for every poller to answer between batches; a longer bound than a query.</summary>
    private static readonly TimeSpan ReloadTimeout = TimeSpan.FromSeconds(10);

    public async Task<long> FlushAsync(uint external = 0, CancellationToken cancellationToken = default)
    {
        var message = external == 0 ? FlushSessions.Instance : new FlushSessions(external);
        long n = 0;
        foreach (var p in pollers)
        {
            n += await p.Actor.Ask<int>(message, AskTimeout, cancellationToken).ConfigureAwait(false);
        }
        return n;
    }

    public async Task<long> DeleteSessionsAsync(SessionSelector selector, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(selector);
        var message = new DeleteSession(selector.Protocol, selector.InsideAddress, selector.InsidePort, selector.RemoteAddress, selector.RemotePort);
        long n = 0;
        foreach (var p in pollers)
        {
            n += await p.Actor.Ask<int>(message, AskTimeout, cancellationToken).ConfigureAwait(false);
        }
        return n;
    }

    public async Task<long> DeletePcpMappingAsync(MappingSelector selector, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(selector);
        // Every poller is asked: the owner of an internal endpoint is the shard map's, of an external one the arrival's; the others answer 0.
        var message = new DeletePcpMapping(selector.Protocol, selector.Address, selector.Port, selector.External);
        long n = 0;
        foreach (var p in pollers)
        {
            n += await p.Actor.Ask<int>(message, AskTimeout, cancellationToken).ConfigureAwait(false);
        }
        return n;
    }

    public async Task<OperationResult> ReloadAsync(CancellationToken cancellationToken = default)
    {
        var r = await configActor.Ask<ConfigActor.ReloadResult>(new ConfigActor.Reload(null), ReloadTimeout, cancellationToken).ConfigureAwait(false);
        return new OperationResult(r.Ok, r.Messages);
    }

    public async Task<Timeouts> GetTimeoutsAsync(CancellationToken cancellationToken = default)
    {
        var config = await configActor.Ask<NatdConfig>(ConfigActor.GetConfig.Instance, AskTimeout, cancellationToken).ConfigureAwait(false);
        return config.Nat.Timeouts;
    }

    public async Task<NatSettings> GetNatSettingsAsync(CancellationToken cancellationToken = default)
    {
        var config = await configActor.Ask<NatdConfig>(ConfigActor.GetConfig.Instance, AskTimeout, cancellationToken).ConfigureAwait(false);
        return config.Nat;
    }

    public async Task<OperationResult> SetTimeoutsAsync(TimeoutsChange change, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(change);
        var r = await configActor.Ask<ConfigActor.ReloadResult>(new ConfigActor.ChangeTimeouts(change), ReloadTimeout, cancellationToken).ConfigureAwait(false);
        // On success the actor's messages are the file's warnings, not about this change; the API adds its own.
        return new OperationResult(r.Ok, r.Ok ? [] : r.Messages);
    }
}

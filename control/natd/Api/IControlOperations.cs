using Natd.Dataplane.Nat;
using Natd.Dataplane.Sessions;

namespace Natd.Control.Api;

/// <summary>
/// The operations the control API performs on a running natd beyond reading it (POST /flush,
/// POST /sessions/delete, POST /reload, GET and PUT /timeouts, GET /lookup, POST /mappings/delete). Implementations marshal each request
/// to the actors that own the state: sessions to their pollers, the configuration to the ConfigActor.
/// </summary>
public interface IControlOperations
{
    /// <summary>Deletes every session of every poller, or with <paramref name="external"/> those on that external address.</summary>
    /// <param name="external">External (pool) address, network order; 0 for every session.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>Sessions deleted.</returns>
    Task<long> FlushAsync(uint external = 0, CancellationToken cancellationToken = default);

    /// <summary>Deletes the sessions <paramref name="selector"/> picks, on every poller.</summary>
    /// <returns>Sessions deleted.</returns>
    Task<long> DeleteSessionsAsync(SessionSelector selector, CancellationToken cancellationToken = default);

    /// <summary>Re-reads the configuration file; validated whole and applied only when every poller accepts it.</summary>
    /// <returns>Ok with the warnings, or not ok with every error (the running configuration stays).</returns>
    Task<OperationResult> ReloadAsync(CancellationToken cancellationToken = default);

    /// <summary>The idle timeouts in force (seconds).</summary>
    Task<Timeouts> GetTimeoutsAsync(CancellationToken cancellationToken = default);

    /// <summary>The NAT settings in force (the running configuration, e.g. for GET /lookup's deterministic map).</summary>
    Task<NatSettings> GetNatSettingsAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Changes some timeouts live (the others stay). Not written to the file: a reload or restart
    /// returns to the file's values, as `ipfwadm -M -s` changes did.
    /// </summary>
    /// <returns>Ok, or not ok with why (the timeouts in force stay).</returns>
    Task<OperationResult> SetTimeoutsAsync(TimeoutsChange change, CancellationToken cancellationToken = default);

    /// <summary>
    /// Deletes the PCP or NAT-PMP mapping <paramref name="selector"/> names, on whichever poller holds
    /// it (the operator's delete: no nonce; sessions in progress go on, RFC 6887 section 15).
    /// </summary>
    /// <returns>Mappings deleted (0 or 1).</returns>
    Task<long> DeletePcpMappingAsync(MappingSelector selector, CancellationToken cancellationToken = default) => Task.FromResult(0L);
}

/// <summary>One PCP or NAT-PMP mapping, named by its internal or its external endpoint.</summary>
/// <param name="Protocol">IP protocol number (6 tcp, 17 udp).</param>
/// <param name="Address">Internal address, or external when <paramref name="External"/>; network order.</param>
/// <param name="Port">The endpoint's port, host order.</param>
/// <param name="External">True when the endpoint is the mapping's external one.</param>
public sealed record MappingSelector(byte Protocol, uint Address, ushort Port, bool External);

/// <summary>The sessions of one inside endpoint, optionally narrowed to one remote endpoint.</summary>
/// <param name="Protocol">IP protocol number (6 tcp, 17 udp, 1 icmp).</param>
/// <param name="InsideAddress">Inside address, network order.</param>
/// <param name="InsidePort">Inside port or ICMP identifier, host order.</param>
/// <param name="RemoteAddress">Remote address, network order; 0 for any.</param>
/// <param name="RemotePort">Remote port, host order; 0 for any.</param>
public sealed record SessionSelector(byte Protocol, uint InsideAddress, ushort InsidePort, uint RemoteAddress, ushort RemotePort);

/// <summary>A partial timeout change in seconds; null leaves that timeout as it is.</summary>
/// <param name="TcpEstablished">TCP established idle timeout.</param>
/// <param name="TcpTransitory">TCP transitory (SYN only, after FIN, after RST) idle timeout.</param>
/// <param name="Udp">UDP idle timeout.</param>
/// <param name="Icmp">ICMP query idle timeout.</param>
public sealed record TimeoutsChange(int? TcpEstablished = null, int? TcpTransitory = null, int? Udp = null, int? Icmp = null)
{
    /// <summary><paramref name="current"/> with the given values replaced.</summary>
    public Timeouts ApplyTo(Timeouts current)
    {
        ArgumentNullException.ThrowIfNull(current);
        return current with
        {
            TcpEstablished = TcpEstablished ?? current.TcpEstablished,
            TcpTransitory = TcpTransitory ?? current.TcpTransitory,
            Udp = Udp ?? current.Udp,
            Icmp = Icmp ?? current.Icmp,
        }; // the well-known ports' UDP timers (timeouts.udp-ports) stay as configured
    }
}

/// <summary>Outcome of a reload or a live change.</summary>
/// <param name="Ok">True when the change is in force.</param>
/// <param name="Messages">Warnings when ok; every reason it was refused otherwise.</param>
public sealed record OperationResult(bool Ok, IReadOnlyList<string> Messages);

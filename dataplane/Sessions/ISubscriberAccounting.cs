namespace Natd.Dataplane.Sessions;

/// <summary>
/// What the session table tells the subscriber state (carrier-grade NAT, docs/architecture.md
/// "Subscribers, port blocks and limits") about every session and mapping it adds or removes, so
/// what a subscriber holds is counted in one place. Implemented in the NAT layer (which owns the
/// policy: pairing, blocks, limits); the table only reports. Owner's thread only; slow path.
/// </summary>
public interface ISubscriberAccounting
{
    /// <summary>A session of inside host <paramref name="inside"/> (network order) was added at <paramref name="nowMs"/> (engine clock, ms).</summary>
    void SessionAdded(uint inside, long nowMs);

    /// <summary>A session of inside host <paramref name="inside"/> (network order) ended.</summary>
    void SessionRemoved(uint inside);

    /// <summary>
    /// Takes an external port (host order) of protocol class <paramref name="protocolClass"/> for
    /// <paramref name="inside"/>: on its paired address, inside its blocks with port blocks.
    /// </summary>
    /// <returns>The port and its <paramref name="poolIndex"/>, or -1 (refused: a limit, or nothing free).</returns>
    int Allocate(uint inside, int protocolClass, bool privileged, long nowMs, out int poolIndex);

    /// <summary>
    /// Gives back port <paramref name="port"/> (host order) of <paramref name="inside"/> on pool
    /// address <paramref name="poolIndex"/>; <paramref name="quarantine"/> rests it for
    /// <c>nat.port-reuse-delay</c> first (a mapping that carried traffic), else it is free at once.
    /// </summary>
    void Free(uint inside, int poolIndex, int protocolClass, int port, bool quarantine, long nowMs);
}

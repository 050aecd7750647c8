using Natd.Control.Daemon;
using Natd.Dataplane.Io;
using Natd.Dataplane.Workers;

namespace Natd.Control.Modes;

/// <summary>
/// Follows the MTUs of natd's two links while it runs: an MTU changed with <c>ip link set ... mtu</c>
/// (or by a PPPoE client renegotiating) is read on the next <see cref="Check"/> and sent to every
/// poller (<see cref="ApplyLinkMtus"/>), whose engine's egress MTU follows it where the
/// configuration names none (<c>interfaces.*.mtu</c>). Each change is logged once. Not thread-safe:
/// one watcher loop calls it.
/// </summary>
internal sealed class LinkMtuWatch
{
    private readonly string _inside;
    private readonly string _outside;
    private readonly NatDaemon _daemon;
    private readonly TextWriter _log;
    private int _insideMtu;
    private int _outsideMtu;

    /// <summary>Starts from the MTUs the ports read when they opened.</summary>
    public LinkMtuWatch(OpenedPorts ports, NatDaemon daemon, TextWriter log)
    {
        var (inside, outside) = ports.Pairs[0];
        _inside = inside.Name;
        _outside = outside.Name;
        _insideMtu = inside.LinkMtu;
        _outsideMtu = outside.LinkMtu;
        _daemon = daemon;
        _log = log;
    }

    /// <summary>Reads both links' MTUs (SIOCGIFMTU) and tells the pollers when one changed; an interface that cannot be read is left as it was.</summary>
    public void Check()
    {
        int inside = Read(_inside, _insideMtu);
        int outside = Read(_outside, _outsideMtu);
        if (inside == _insideMtu && outside == _outsideMtu)
        {
            return;
        }
        _insideMtu = inside;
        _outsideMtu = outside;
        var message = new ApplyLinkMtus(inside, outside);
        foreach (var poller in _daemon.Pollers)
        {
            poller.Actor.Tell(message, Akka.Actor.ActorRefs.NoSender);
        }
    }

    private int Read(string name, int was)
    {
        int now = LinkSettings.MtuOrZero(name);
        if (now == 0 || now == was)
        {
            return was;
        }
        _log.WriteLine($"natd: {name}: MTU changed from {was} to {now}; natd's egress MTU there follows it unless interfaces.*.mtu names one");
        _log.Flush();
        return now;
    }
}

using Natd.Dataplane.Packets;
using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Alg;

/// <summary>One ALG's switch and the server ports it watches.</summary>
/// <param name="Enabled">Whether flows to <paramref name="Ports"/> get this ALG.</param>
/// <param name="Ports">Server ports, host order (TCP for FTP, IRC, PPTP; UDP for TFTP).</param>
public sealed record AlgPorts(bool Enabled, IReadOnlyList<ushort> Ports)
{
    /// <summary>Equal when both switch and ports (in order) are (a reload compares configurations by value).</summary>
    public bool Equals(AlgPorts? other) => other is not null && Enabled == other.Enabled && Ports.SequenceEqual(other.Ports);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Enabled, Ports.Count);
}

/// <summary>
/// IPsec masquerading as the VPN Masquerade HOWTO section 6 describes (ESP keyed by SPI and remote
/// host; ISAKMP routed by cookies).
/// </summary>
/// <param name="Enabled">Masquerade ESP (IP protocol 50) and keep ISAKMP (UDP 500) on source port 500.</param>
/// <param name="InitTimeout">Seconds an outbound SPI waits for its inbound SPI to be associated (serialised per remote host).</param>
/// <param name="InitRetries">Outbound packets of a second host that are dropped while a remote host is serialised before that host is refused (counted).</param>
/// <param name="Parallel">Allow several inside hosts ESP sessions to one remote host at once (off by default, as the HOWTO's patch).</param>
/// <param name="EspTimeout">Idle timeout of an ESP association, seconds.</param>
/// <param name="IsakmpTimeout">Idle timeout of an ISAKMP entry, seconds; at least the IKE rekey interval.</param>
public sealed record IpsecSettings(
    bool Enabled = true,
    int InitTimeout = 10,
    int InitRetries = 30,
    bool Parallel = false,
    int EspTimeout = 1800,
    int IsakmpTimeout = 28800);

/// <summary>
/// A port trigger (what <c>ipautofw -A -r udp 6970 7170 -c tcp 7070</c> did): an outbound
/// connection to <see cref="TriggerPorts"/> opens <see cref="OpenPorts"/> on the external address
/// to the triggering host, for as long as the triggering session lives.
/// </summary>
/// <param name="Name">Name (a preset's name, or the operator's).</param>
/// <param name="TriggerProtocol">IP protocol of the triggering connection.</param>
/// <param name="TriggerPorts">Destination ports that trigger, host order, inclusive.</param>
/// <param name="OpenProtocol">IP protocol of the opened range.</param>
/// <param name="OpenPorts">Ports opened inbound (same number outside and inside), host order, inclusive.</param>
public sealed record PortTrigger(string Name, byte TriggerProtocol, PortRange TriggerPorts, byte OpenProtocol, PortRange OpenPorts);

/// <summary>The ALG section of the configuration (natd.yaml <c>algs:</c> and <c>triggers:</c>).</summary>
public sealed record AlgSettings
{
    /// <summary>FTP on TCP 21 by default.</summary>
    public AlgPorts Ftp { get; init; } = new(true, [21]);

    /// <summary>IRC DCC on TCP 6667; off by default, because a DCC offer opens a port to any remote host.</summary>
    public AlgPorts Irc { get; init; } = new(false, [6667]);

    /// <summary>TFTP on UDP 69.</summary>
    public AlgPorts Tftp { get; init; } = new(true, [69]);

    /// <summary>PPTP on TCP 1723.</summary>
    public AlgPorts Pptp { get; init; } = new(true, [1723]);

    /// <summary>IPsec ESP and ISAKMP.</summary>
    public IpsecSettings Ipsec { get; init; } = new();

    /// <summary>Seconds an expectation (a pinhole for a related connection) waits for its connection.</summary>
    public int ExpectationTimeout { get; init; } = 60;

    /// <summary>Port triggers, in order.</summary>
    public IReadOnlyList<PortTrigger> Triggers { get; init; } = [];

    /// <summary>Equal when every part is, the triggers in order (a reload compares configurations by value).</summary>
    public bool Equals(AlgSettings? other)
        => other is not null && Ftp == other.Ftp && Irc == other.Irc && Tftp == other.Tftp && Pptp == other.Pptp && Ipsec == other.Ipsec
           && ExpectationTimeout == other.ExpectationTimeout && Triggers.SequenceEqual(other.Triggers);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Ftp, Irc, Tftp, Pptp, Ipsec, ExpectationTimeout, Triggers.Count);

    /// <summary>The ALG that owns a new flow to <paramref name="serverPort"/> (host order), or <see cref="AlgKind.None"/>.</summary>
    public AlgKind Classify(byte protocol, ushort serverPort)
    {
        if (protocol == Packets.IpProtocol.Tcp)
        {
            if (Ftp.Enabled && Has(Ftp.Ports, serverPort))
            {
                return AlgKind.Ftp;
            }
            if (Irc.Enabled && Has(Irc.Ports, serverPort))
            {
                return AlgKind.Irc;
            }
            if (Pptp.Enabled && Has(Pptp.Ports, serverPort))
            {
                return AlgKind.Pptp;
            }
        }
        else if (protocol == Packets.IpProtocol.Udp && Tftp.Enabled && Has(Tftp.Ports, serverPort))
        {
            return AlgKind.Tftp;
        }
        return AlgKind.None;
    }

    private static bool Has(IReadOnlyList<ushort> ports, ushort port)
    {
        for (int i = 0; i < ports.Count; i++)
        {
            if (ports[i] == port)
            {
                return true;
            }
        }
        return false;
    }
}

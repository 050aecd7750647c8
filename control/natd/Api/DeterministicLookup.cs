using System.Globalization;
using Natd.Contracts;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Control.Api;

/// <summary>
/// Deterministic NAT lookups (RFC 7422) from a configuration's <see cref="DeterministicMap"/>: who
/// held an external address and port, and which address and range an inside host gets. One answer
/// for both callers: <c>natd lookup</c> (offline, from the config file: the legal-request case) and
/// GET /lookup (the running configuration, for <c>natctl lookup</c>).
/// </summary>
internal static class DeterministicLookup
{
    /// <summary>What a lookup found.</summary>
    public enum Outcome
    {
        /// <summary>A subscriber and its range.</summary>
        Found,
        /// <summary>The address or port belongs to no subscriber.</summary>
        NotFound,
        /// <summary>The question is malformed, or the configuration is not deterministic.</summary>
        Usage,
    }

    /// <summary>The answer when <c>nat.allocation</c> is not deterministic.</summary>
    public const string NotDeterministic = "deterministic lookup needs nat.allocation: deterministic";

    /// <summary>The map of <paramref name="settings"/>, or null with <see cref="NotDeterministic"/> in <paramref name="why"/>.</summary>
    public static DeterministicMap? MapOf(NatSettings settings, out string? why)
    {
        var map = DeterministicMap.For(settings);
        why = map is null ? string.Create(CultureInfo.InvariantCulture,
            $"{NotDeterministic} (this configuration has nat.allocation: {Word(settings.Cgnat.Allocation)})") : null;
        return map;
    }

    /// <summary>The range of the subscriber inside address <paramref name="text"/> (a.b.c.d) belongs to.</summary>
    public static Outcome Inside(DeterministicMap map, string text, out LookupRow? row, out string message)
    {
        row = null;
        if (!Ipv4.TryParse(text, out uint inside))
        {
            message = $"'{text}' is not an IPv4 address (expected a.b.c.d)";
            return Outcome.Usage;
        }
        if (!map.TryForward(inside, out DeterministicRange r))
        {
            message = $"{text} is in no nat.deterministic.inside prefix";
            return Outcome.NotFound;
        }
        row = Row(r);
        message = "";
        return Outcome.Found;
    }

    /// <summary>The subscriber holding external <paramref name="text"/> (a.b.c.d:port).</summary>
    public static Outcome External(DeterministicMap map, string text, out LookupRow? row, out string message)
    {
        row = null;
        int colon = text.LastIndexOf(':');
        if (colon < 0 || !Ipv4.TryParse(text[..colon], out uint external)
            || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
        {
            message = $"'{text}' is not an external address and port (expected a.b.c.d:port, port 1-65535)";
            return Outcome.Usage;
        }
        if (!map.TryReverse(external, port, out DeterministicRange r))
        {
            message = $"no subscriber holds {text}: {WhyNot(map, external, port)}";
            return Outcome.NotFound;
        }
        row = Row(r);
        message = "";
        return Outcome.Found;
    }

    /// <summary>The wire form of a range.</summary>
    public static LookupRow Row(in DeterministicRange r)
        => new() { Inside = r.InsideText, External = Ipv4.Format(r.External), PortLow = r.Low, PortHigh = r.High };

    private static string WhyNot(DeterministicMap map, uint external, int port)
    {
        if (!map.TryReverse(external, map.FirstPort, out long _))
        {
            return $"{Ipv4.Format(external)} is not a pool address holding subscribers";
        }
        if (port < map.FirstPort || port > map.LastPort)
        {
            return string.Create(CultureInfo.InvariantCulture, $"ranges use ports {map.FirstPort}-{map.LastPort}");
        }
        return string.Create(CultureInfo.InvariantCulture,
            $"port {port} is in no subscriber's range ({map.SubscribersPerAddress} ranges of {map.PortsPerSubscriber} ports from {map.FirstPort} per address)");
    }

    private static string Word(PortAllocation a) => a switch
    {
        PortAllocation.PortBlock => "port-block",
        PortAllocation.Deterministic => "deterministic",
        _ => "dynamic",
    };
}

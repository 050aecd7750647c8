using System.Globalization;
using Natd.Dataplane.Alg;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Control.Config;

// The `algs` and `triggers` sections: which application-level gateways run on which ports (the
// `insmod ip_masq_ftp ports=21,2121` of old), IPsec masquerading, and ipautofw-style port triggers.
public static partial class ConfigLoader
{
    private static readonly string[] AlgsKeys = ["ftp", "irc", "tftp", "pptp", "ipsec", "expectation-timeout"];
    private static readonly string[] AlgPortKeys = ["enabled", "ports"];
    private static readonly string[] IpsecKeys = ["enabled", "init-timeout", "init-retries", "parallel", "esp-timeout", "isakmp-timeout"];
    private static readonly string[] TriggerKeys = ["preset", "name", "protocol", "ports", "open"];
    private static readonly string[] TriggerOpenKeys = ["protocol", "ports"];

    /// <summary>
    /// Shipped port triggers, by name: the applications ipautofw was written for, with the ports the
    /// Linux IP Masquerade HOWTO of the time lists (control connection out, media back in).
    /// </summary>
    public static IReadOnlyList<PortTrigger> TriggerPresets { get; } =
    [
        new("realaudio", IpProtocol.Tcp, new PortRange(7070, 7070), IpProtocol.Udp, new PortRange(6970, 7170)),
        new("quake", IpProtocol.Udp, new PortRange(26000, 26000), IpProtocol.Udp, new PortRange(26001, 26010)),
        new("cuseeme", IpProtocol.Udp, new PortRange(7648, 7648), IpProtocol.Udp, new PortRange(7649, 7652)),
        new("vdolive", IpProtocol.Tcp, new PortRange(7000, 7000), IpProtocol.Udp, new PortRange(7001, 7010)),
    ];

    private sealed partial class Validator
    {
        /// <summary>Reads `algs` and `triggers` into <paramref name="settings"/>.</summary>
        private NatSettings Algs(YMapping? top, NatSettings settings)
        {
            var defaults = new AlgSettings();
            YMapping? algs = Mapping(top?.Get("algs"), "algs");
            Keys(algs, "algs", AlgsKeys);
            var ftp = AlgPorts(algs?.Get("ftp"), "algs.ftp", defaults.Ftp);
            var irc = AlgPorts(algs?.Get("irc"), "algs.irc", defaults.Irc);
            var tftp = AlgPorts(algs?.Get("tftp"), "algs.tftp", defaults.Tftp);
            var pptp = AlgPorts(algs?.Get("pptp"), "algs.pptp", defaults.Pptp);
            CheckPortClash(algs, [("ftp", ftp, IpProtocol.Tcp), ("irc", irc, IpProtocol.Tcp), ("pptp", pptp, IpProtocol.Tcp), ("tftp", tftp, IpProtocol.Udp)]);

            var ipsecDefaults = defaults.Ipsec;
            YMapping? ipsecNode = Mapping(algs?.Get("ipsec"), "algs.ipsec");
            Keys(ipsecNode, "algs.ipsec", IpsecKeys);
            var ipsec = new IpsecSettings(
                Boolean(ipsecNode?.Get("enabled"), "algs.ipsec.enabled", ipsecDefaults.Enabled),
                (int)Integer(ipsecNode?.Get("init-timeout"), "algs.ipsec.init-timeout", ipsecDefaults.InitTimeout, 1, 300, "seconds"),
                (int)Integer(ipsecNode?.Get("init-retries"), "algs.ipsec.init-retries", ipsecDefaults.InitRetries, 0, 10_000, "packets"),
                Boolean(ipsecNode?.Get("parallel"), "algs.ipsec.parallel", ipsecDefaults.Parallel),
                (int)Integer(ipsecNode?.Get("esp-timeout"), "algs.ipsec.esp-timeout", ipsecDefaults.EspTimeout, 10, 7 * 86_400, "seconds"),
                (int)Integer(ipsecNode?.Get("isakmp-timeout"), "algs.ipsec.isakmp-timeout", ipsecDefaults.IsakmpTimeout, 10, 7 * 86_400, "seconds"));
            int expectation = (int)Integer(algs?.Get("expectation-timeout"), "algs.expectation-timeout", defaults.ExpectationTimeout, 1, 3600, "seconds");

            var triggers = Triggers(top?.Get("triggers"), settings);
            return settings with
            {
                Algs = new AlgSettings
                {
                    Ftp = ftp,
                    Irc = irc,
                    Tftp = tftp,
                    Pptp = pptp,
                    Ipsec = ipsec,
                    ExpectationTimeout = expectation,
                    Triggers = triggers,
                },
            };
        }

        /// <summary>`{ enabled: bool, ports: [..] }`; a bare boolean switches the ALG on its default ports.</summary>
        private AlgPorts AlgPorts(YNode? node, string path, AlgPorts defaults)
        {
            if (node is YScalar { IsNull: false })
            {
                return defaults with { Enabled = Boolean(node, path, defaults.Enabled) };
            }
            YMapping? m = Mapping(node, path);
            if (m is null)
            {
                return defaults;
            }
            Keys(m, path, AlgPortKeys);
            bool enabled = Boolean(m.Get("enabled"), path + ".enabled", true);
            YNode? portsNode = m.Get("ports");
            if (portsNode is null)
            {
                return new AlgPorts(enabled, defaults.Ports);
            }
            var ports = new List<ushort>();
            foreach (var (item, itemPath) in Items(portsNode, path + ".ports"))
            {
                if (Text(item, itemPath) is not { } t)
                {
                    continue;
                }
                if (!ushort.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out ushort p) || p == 0)
                {
                    Error(item, itemPath, $"'{t}' is not a port (expected 1..65535)");
                }
                else if (ports.Contains(p))
                {
                    Error(item, itemPath, string.Create(CultureInfo.InvariantCulture, $"port {p} is listed twice"));
                }
                else
                {
                    ports.Add(p);
                }
            }
            if (ports.Count == 0 && enabled)
            {
                Error(portsNode, path + ".ports", "an enabled ALG needs at least one port (or set enabled: false)");
            }
            return new AlgPorts(enabled, ports);
        }

        /// <summary>Two ALGs cannot own one server port: which helper would see the connection?</summary>
        private void CheckPortClash(YMapping? algs, (string Name, AlgPorts Ports, byte Protocol)[] list)
        {
            for (int i = 0; i < list.Length; i++)
            {
                for (int j = i + 1; j < list.Length; j++)
                {
                    if (!list[i].Ports.Enabled || !list[j].Ports.Enabled || list[i].Protocol != list[j].Protocol)
                    {
                        continue;
                    }
                    foreach (ushort p in list[j].Ports.Ports)
                    {
                        if (list[i].Ports.Ports.Contains(p))
                        {
                            YNode at = algs?.Get(list[j].Name) ?? algs!;
                            Error(at, $"algs.{list[j].Name}.ports", string.Create(CultureInfo.InvariantCulture,
                                $"port {p} is already algs.{list[i].Name}'s; one connection can have only one ALG"));
                        }
                    }
                }
            }
        }

        private List<PortTrigger> Triggers(YNode? node, NatSettings settings)
        {
            const string path = "triggers";
            var list = new List<PortTrigger>();
            foreach (var (m, itemPath, i, _) in MappingItems(node, path, TriggerKeys))
            {
                PortTrigger? t;
                if (m.Get("preset") is { } presetNode)
                {
                    t = Preset(presetNode, itemPath, m);
                }
                else
                {
                    t = OwnTrigger(m, itemPath, i);
                }
                if (t is null)
                {
                    continue;
                }
                bool ok = true;
                foreach (var other in list)
                {
                    if (other.OpenProtocol == t.OpenProtocol && Overlaps(other.OpenPorts, t.OpenPorts))
                    {
                        Error(m, itemPath + ".open.ports", $"{ProtocolName(t.OpenProtocol)} {t.OpenPorts} overlaps trigger '{other.Name}' ({other.OpenPorts}): one port can open to only one host");
                        ok = false;
                    }
                }
                foreach (var f in settings.Forwards)
                {
                    if (f.Protocol == t.OpenProtocol && Overlaps(f.ExternalPorts, t.OpenPorts))
                    {
                        Error(m, itemPath + ".open.ports", $"{ProtocolName(t.OpenProtocol)} {t.OpenPorts} overlaps the forward of {f.ExternalPorts}; a port is either forwarded or triggered");
                        ok = false;
                    }
                }
                if (t.OpenPorts.Low < settings.PortMin || t.OpenPorts.High > settings.PortMax)
                {
                    Error(m, itemPath + ".open.ports", string.Create(CultureInfo.InvariantCulture,
                        $"{t.OpenPorts} is outside nat.ports ({settings.PortMin}-{settings.PortMax}); the opened ports come from that range"));
                    ok = false;
                }
                if (ok)
                {
                    list.Add(t);
                }
            }
            return list;
        }

        private static bool Overlaps(PortRange a, PortRange b) => a.Low <= b.High && b.Low <= a.High;

        private PortTrigger? Preset(YNode presetNode, string itemPath, YMapping m)
        {
            if (Text(presetNode, itemPath + ".preset") is not { } name)
            {
                return null;
            }
            foreach (var key in new[] { "protocol", "ports", "open" })
            {
                if (m.Get(key) is { } extra)
                {
                    Error(extra, $"{itemPath}.{key}", "a preset sets its own ports; use either preset or protocol/ports/open");
                    return null;
                }
            }
            foreach (var p in TriggerPresets)
            {
                if (string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
                {
                    return Text(m.Get("name"), itemPath + ".name") is { } own ? p with { Name = own } : p;
                }
            }
            Error(presetNode, itemPath + ".preset", $"unknown preset '{name}' (accepted: {string.Join(", ", TriggerPresets.Select(p => p.Name))})");
            return null;
        }

        private PortTrigger? OwnTrigger(YMapping m, string itemPath, int index)
        {
            bool ok = true;
            string name = Text(m.Get("name"), itemPath + ".name") ?? string.Create(CultureInfo.InvariantCulture, $"trigger-{index + 1}");
            (byte proto, PortRange ports, bool good) = ProtocolAndRange(m, itemPath, "trigger");
            ok &= good;
            YMapping? open = Mapping(m.Get("open"), itemPath + ".open");
            if (open is null)
            {
                Error(m, itemPath + ".open", "a trigger needs what it opens: open: { protocol: udp, ports: LOW-HIGH }");
                return null;
            }
            Keys(open, itemPath + ".open", TriggerOpenKeys);
            (byte openProto, PortRange openPorts, bool goodOpen) = ProtocolAndRange(open, itemPath + ".open", "opened range");
            ok &= goodOpen;
            return ok ? new PortTrigger(name, proto, ports, openProto, openPorts) : null;
        }

        private (byte Protocol, PortRange Ports, bool Ok) ProtocolAndRange(YMapping m, string path, string what)
        {
            bool ok = true;
            byte proto = 0;
            YNode? protocolNode = m.Get("protocol");
            if (protocolNode is null)
            {
                Error(m, path + ".protocol", $"the {what} needs a protocol (tcp or udp)");
                ok = false;
            }
            else if (Protocol(protocolNode, path + ".protocol", out _) is { } p)
            {
                if (p is not (6 or 17))
                {
                    Error(protocolNode, path + ".protocol", $"the {what} needs tcp or udp (ports), not {ProtocolName(p)}");
                    ok = false;
                }
                proto = p;
            }
            else
            {
                ok = false;
            }
            PortRange range = default;
            YNode? portsNode = m.Get("ports");
            if (portsNode is null)
            {
                Error(m, path + ".ports", $"the {what} needs ports (N or LOW-HIGH)");
                ok = false;
            }
            else if (Text(portsNode, path + ".ports") is { } t)
            {
                if (!TryPortRange(t, out range))
                {
                    Error(portsNode, path + ".ports", $"'{t}' is not a port or port range (expected N or LOW-HIGH with 1 <= LOW <= HIGH <= 65535)");
                    ok = false;
                }
                else if (range.Count > 1024)
                {
                    Error(portsNode, path + ".ports", string.Create(CultureInfo.InvariantCulture, $"{range} is {range.Count} ports; a trigger opens at most 1024"));
                    ok = false;
                }
            }
            else
            {
                ok = false;
            }
            return (proto, range, ok);
        }
    }
}

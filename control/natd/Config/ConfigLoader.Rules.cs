using System.Globalization;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Control.Config;

// The `rules`, `forwards` and `protocol-forwards` sections: the ipchains-style forward rules,
// ipportfw-style port forwards and ipfwd-style protocol forwards, validated into NatSettings.
public static partial class ConfigLoader
{
    private static readonly string[] RulesKeys = ["policy", "list"];
    private static readonly string[] RuleKeys =
        ["name", "source", "destination", "protocol", "source-ports", "destination-ports", "in", "out", "action", "log"];
    private static readonly string[] ForwardKeys = ["protocol", "external", "backends", "balance"];
    private static readonly string[] ProtocolForwardKeys = ["protocol", "external", "to"];

    /// <summary>Rule actions and the default policy, in <see cref="RuleAction"/> order.</summary>
    private static readonly string[] ActionWords = ["masquerade", "accept", "deny", "reject"];

    /// <summary>Interface words, in <see cref="RuleInterface"/> order.</summary>
    private static readonly string[] InterfaceWords = ["any", "inside", "outside"];

    private static readonly string[] BalanceWords = ["source-hash", "round-robin"];

    /// <summary>Protocol names accepted where a protocol is expected, with their IANA numbers.</summary>
    private static readonly (string Name, byte Number)[] ProtocolNames =
        [("icmp", 1), ("tcp", 6), ("udp", 17), ("gre", 47), ("esp", 50), ("ah", 51)];

    /// <summary>Longest rule name; names become metric label values and log fields.</summary>
    internal const int MaxRuleNameLength = 63;

    private sealed partial class Validator
    {
        /// <summary>
        /// Reads the three sections into <paramref name="settings"/>. An absent `rules` section leaves
        /// <see cref="NatSettings.Rules"/> null (the built-in masquerade of the inside networks).
        /// </summary>
        private NatSettings RulesAndForwards(YMapping? top, NatSettings settings)
        {
            IReadOnlyList<ForwardRule>? rules = null;
            RuleAction policy = RuleAction.Deny;
            YMapping? rulesNode = Mapping(top?.Get("rules"), "rules");
            if (rulesNode is not null)
            {
                Keys(rulesNode, "rules", RulesKeys);
                policy = (RuleAction)Word(rulesNode.Get("policy"), "rules.policy", ActionWords, (int)RuleAction.Deny);
                rules = RuleList(rulesNode.Get("list"));
            }
            var forwards = Forwards(top?.Get("forwards"), settings);
            var protocolForwards = ProtocolForwards(top?.Get("protocol-forwards"), settings);
            // Absent sections keep the settings' own empty lists, so a file without them equals the defaults.
            return settings with
            {
                Rules = rules,
                DefaultPolicy = policy,
                Forwards = forwards.Count == 0 ? settings.Forwards : forwards,
                ProtocolForwards = protocolForwards.Count == 0 ? settings.ProtocolForwards : protocolForwards,
            };
        }

        private List<ForwardRule> RuleList(YNode? node)
        {
            const string path = "rules.list";
            var rules = new List<ForwardRule>();
            var names = new Dictionary<string, YNode>(StringComparer.Ordinal);
            foreach (var (m, itemPath, i, _) in MappingItems(node, path, RuleKeys))
            {

                string name = string.Create(CultureInfo.InvariantCulture, $"rule-{i + 1}");
                YNode nameAt = m;
                YNode? nameNode = m.Get("name");
                if (Text(nameNode, itemPath + ".name") is { } n)
                {
                    nameAt = nameNode!;
                    if (IsRuleName(n))
                    {
                        name = n;
                    }
                    else
                    {
                        Error(nameNode!, itemPath + ".name",
                            $"'{n}' is not a rule name (1 to {MaxRuleNameLength} letters, digits, '-', '_' or '.')");
                    }
                }
                if (names.TryGetValue(name, out var first))
                {
                    Error(nameAt, itemPath + ".name",
                        $"rule name '{name}' is already used by the rule at line {first.Start.Line} (unnamed rules are called rule-N, N their position from 1)");
                }
                else
                {
                    names.Add(name, nameAt);
                }

                var sources = PrefixList(m.Get("source"), itemPath + ".source");
                var destinations = PrefixList(m.Get("destination"), itemPath + ".destination");
                YNode? protocolNode = m.Get("protocol");
                byte? protocol = Protocol(protocolNode, itemPath + ".protocol", out _);
                var sourcePorts = PortList(m.Get("source-ports"), itemPath + ".source-ports", protocol, protocolNode);
                var destinationPorts = PortList(m.Get("destination-ports"), itemPath + ".destination-ports", protocol, protocolNode);
                var inIf = (RuleInterface)Word(m.Get("in"), itemPath + ".in", InterfaceWords, 0);
                var outIf = (RuleInterface)Word(m.Get("out"), itemPath + ".out", InterfaceWords, 0);
                YNode? actionNode = m.Get("action");
                RuleAction action = RuleAction.Deny;
                if (actionNode is null)
                {
                    Error(m, itemPath + ".action", $"every rule needs an action ({string.Join(", ", ActionWords)})");
                }
                else
                {
                    action = (RuleAction)Word(actionNode, itemPath + ".action", ActionWords, (int)RuleAction.Deny);
                }
                bool log = Boolean(m.Get("log"), itemPath + ".log", false);

                rules.Add(new ForwardRule
                {
                    Name = name,
                    Sources = sources,
                    Destinations = destinations,
                    Protocol = protocol,
                    SourcePorts = sourcePorts,
                    DestinationPorts = destinationPorts,
                    In = inIf,
                    Out = outIf,
                    Action = action,
                    Log = log,
                });
            }
            return rules;
        }

        private static bool IsRuleName(string n)
        {
            if (n.Length is 0 or > MaxRuleNameLength)
            {
                return false;
            }
            foreach (char c in n)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                {
                    return false;
                }
            }
            return true;
        }

        /// <summary>A list of prefixes (a single value is accepted as a list of one); a bare address is a /32. Empty: any.</summary>
        private List<Ipv4Prefix> PrefixList(YNode? node, string path)
        {
            var list = new List<Ipv4Prefix>();
            foreach (var (item, itemPath) in Items(node, path))
            {
                if (Text(item, itemPath) is not { } t)
                {
                    continue;
                }
                if (!Ipv4Prefix.TryParse(t, out var p))
                {
                    Error(item, itemPath, $"'{t}' is not an address or network (expected a.b.c.d or a.b.c.d/len with len 0..32)");
                }
                else if ((p.Address & ~p.Mask) != 0)
                {
                    Error(item, itemPath, $"'{t}' has host bits set (did you mean {new Ipv4Prefix(p.Address & p.Mask, p.Length)}?)");
                }
                else
                {
                    list.Add(p);
                }
            }
            return list;
        }

        /// <summary>Ports or "LOW-HIGH" ranges, 1..65535; only with protocol tcp or udp.</summary>
        private List<PortRange> PortList(YNode? node, string path, byte? protocol, YNode? protocolNode)
        {
            var list = new List<PortRange>();
            if (node is null)
            {
                return list;
            }
            if (protocolNode is null)
            {
                Error(node, path, "ports need the rule's protocol to be tcp or udp (add protocol: tcp or protocol: udp)");
                return list;
            }
            if (protocol is null)
            {
                return list; // the protocol itself is wrong and already reported
            }
            if (protocol is not (6 or 17))
            {
                Error(node, path, "ports apply only to protocol tcp or udp");
                return list;
            }
            foreach (var (item, itemPath) in Items(node, path))
            {
                if (Text(item, itemPath) is not { } t)
                {
                    continue;
                }
                if (TryPortRange(t, out var r))
                {
                    list.Add(r);
                }
                else
                {
                    Error(item, itemPath, $"'{t}' is not a port or port range (expected N or LOW-HIGH with 1 <= LOW <= HIGH <= 65535)");
                }
            }
            return list;
        }

        /// <summary>
        /// The entries of a list of mappings (rules, forwards, protocol forwards): each with its path
        /// (e.g. forwards[2]), index and line, keys already checked against <paramref name="keys"/>;
        /// an entry that is not a mapping is reported and left out.
        /// </summary>
        private List<(YMapping Map, string Path, int Index, long Line)> MappingItems(YNode? node, string path, string[] keys)
        {
            var items = new List<(YMapping, string, int, long)>();
            if (Sequence(node, path) is not { } seq)
            {
                return items;
            }
            for (int i = 0; i < seq.Items.Count; i++)
            {
                string itemPath = string.Create(CultureInfo.InvariantCulture, $"{path}[{i}]");
                if (Mapping(seq.Items[i], itemPath) is { } m)
                {
                    Keys(m, itemPath, keys);
                    items.Add((m, itemPath, i, seq.Items[i].Start.Line));
                }
            }
            return items;
        }

        /// <summary>The elements of a list, or the node itself when it is a single value.</summary>
        private List<(YNode Item, string Path)> Items(YNode? node, string path)
        {
            var items = new List<(YNode, string)>();
            if (node is null)
            {
                return items;
            }
            if (node is YScalar { IsNull: false })
            {
                items.Add((node, path));
                return items;
            }
            if (Sequence(node, path) is { } seq)
            {
                for (int i = 0; i < seq.Items.Count; i++)
                {
                    items.Add((seq.Items[i], string.Create(CultureInfo.InvariantCulture, $"{path}[{i}]")));
                }
            }
            return items;
        }

        /// <summary>A protocol name or number 0..255; null when absent or bad (bad is an error, <paramref name="bad"/> true).</summary>
        private byte? Protocol(YNode? node, string path, out bool bad)
        {
            bad = false;
            if (Text(node, path) is not { } t)
            {
                bad = node is not null;
                return null;
            }
            foreach (var (name, number) in ProtocolNames)
            {
                if (string.Equals(name, t, StringComparison.OrdinalIgnoreCase))
                {
                    return number;
                }
            }
            if (int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n <= 255)
            {
                return (byte)n;
            }
            Error(node!, path, $"'{t}' is not a protocol (accepted: tcp, udp, icmp, gre, esp, ah, or a number 0..255)");
            bad = true;
            return null;
        }

        private List<PortForward> Forwards(YNode? node, NatSettings settings)
        {
            const string path = "forwards";
            var forwards = new List<PortForward>();
            var lines = new List<long>();
            foreach (var (m, itemPath, _, line) in MappingItems(node, path, ForwardKeys))
            {
                bool ok = true;

                YNode? protocolNode = m.Get("protocol");
                byte protocol = 6;
                if (protocolNode is null)
                {
                    Error(m, itemPath + ".protocol", "a forward needs a protocol (tcp or udp)");
                    ok = false;
                }
                else if (Protocol(protocolNode, itemPath + ".protocol", out bool bad) is { } p)
                {
                    if (p is 6 or 17)
                    {
                        protocol = p;
                    }
                    else
                    {
                        Error(protocolNode, itemPath + ".protocol",
                            $"a port forward is tcp or udp; for other protocols use protocol-forwards");
                        ok = false;
                    }
                }
                else
                {
                    ok &= !bad;
                }

                uint external = 0;
                PortRange ports = default;
                YNode? externalNode = m.Get("external");
                if (externalNode is null)
                {
                    Error(m, itemPath + ".external", "a forward needs an external address and port (a.b.c.d:PORT or a.b.c.d:LOW-HIGH)");
                    ok = false;
                }
                else if (Text(externalNode, itemPath + ".external") is { } et)
                {
                    if (!TryEndpoint(et, allowRange: true, out external, out ports) || ports.Low == 0)
                    {
                        Error(externalNode, itemPath + ".external",
                            $"'{et}' is not an external endpoint (expected a.b.c.d:PORT or a.b.c.d:LOW-HIGH, ports 1..65535)");
                        ok = false;
                    }
                    else if (!IsExternalAddress(external, settings))
                    {
                        Error(externalNode, itemPath + ".external", NotExternalMessage(external, settings));
                        ok = false;
                    }
                }
                else
                {
                    ok = false;
                }

                var backends = new List<KeyValuePair<uint, ushort>>();
                YNode? backendsNode = m.Get("backends");
                if (backendsNode is null)
                {
                    Error(m, itemPath + ".backends", "a forward needs at least one backend (a.b.c.d or a.b.c.d:PORT)");
                    ok = false;
                }
                else
                {
                    var items = Items(backendsNode, itemPath + ".backends");
                    if (items.Count == 0)
                    {
                        Error(backendsNode, itemPath + ".backends", "a forward needs at least one backend (a.b.c.d or a.b.c.d:PORT)");
                        ok = false;
                    }
                    foreach (var (item, bPath) in items)
                    {
                        if (Text(item, bPath) is not { } bt)
                        {
                            ok = false;
                            continue;
                        }
                        if (!TryEndpoint(bt, allowRange: false, out uint ba, out var bp))
                        {
                            Error(item, bPath, $"'{bt}' is not a backend (expected a.b.c.d or a.b.c.d:PORT, port 1..65535)");
                            ok = false;
                            continue;
                        }
                        if (!InNetworks(ba, settings.Inside.Networks))
                        {
                            Error(item, bPath,
                                $"backend {Ipv4.Format(ba)} is not in the inside networks ({string.Join(", ", settings.Inside.Networks)})");
                            ok = false;
                            continue;
                        }
                        if (bp.Low != 0 && ports.Count > 1)
                        {
                            Error(item, bPath,
                                $"the forward covers the port range {ports}; a range forward keeps the port, so omit the backend port (write {Ipv4.Format(ba)})");
                            ok = false;
                            continue;
                        }
                        var entry = new KeyValuePair<uint, ushort>(ba, bp.Low);
                        if (backends.Contains(entry))
                        {
                            Error(item, bPath, $"backend {bt} is listed twice");
                            ok = false;
                            continue;
                        }
                        backends.Add(entry);
                    }
                }

                var balance = (Balance)Word(m.Get("balance"), itemPath + ".balance", BalanceWords, 0);
                if (!ok)
                {
                    continue;
                }
                for (int k = 0; k < forwards.Count; k++)
                {
                    var other = forwards[k];
                    if (other.Protocol == protocol && other.ExternalAddress == external
                        && other.ExternalPorts.Low <= ports.High && ports.Low <= other.ExternalPorts.High)
                    {
                        Error(externalNode!, itemPath + ".external", string.Create(CultureInfo.InvariantCulture,
                            $"{ProtocolName(protocol)} {Ipv4.Format(external)}:{ports} overlaps the forward at line {lines[k]} ({Ipv4.Format(other.ExternalAddress)}:{other.ExternalPorts})"));
                        ok = false;
                        break;
                    }
                }
                if (!ok)
                {
                    continue;
                }
                forwards.Add(new PortForward
                {
                    Protocol = protocol,
                    ExternalAddress = external,
                    ExternalPorts = ports,
                    Backends = backends,
                    Balance = balance,
                });
                lines.Add(line);
            }
            return forwards;
        }

        private List<ProtocolForward> ProtocolForwards(YNode? node, NatSettings settings)
        {
            const string path = "protocol-forwards";
            var list = new List<ProtocolForward>();
            var lines = new List<long>();
            foreach (var (m, itemPath, _, line) in MappingItems(node, path, ProtocolForwardKeys))
            {
                bool ok = true;

                byte protocol = 0;
                YNode? protocolNode = m.Get("protocol");
                if (protocolNode is null)
                {
                    Error(m, itemPath + ".protocol", "a protocol forward needs a protocol (e.g. gre, esp or a number)");
                    ok = false;
                }
                else if (Protocol(protocolNode, itemPath + ".protocol", out _) is { } p)
                {
                    if (p is 1 or 6 or 17)
                    {
                        Error(protocolNode, itemPath + ".protocol",
                            $"{ProtocolName(p)} has ports or identifiers that natd translates; forward it with forwards (tcp, udp), not protocol-forwards");
                        ok = false;
                    }
                    protocol = p;
                }
                else
                {
                    ok = false;
                }

                uint external = 0;
                YNode? externalNode = m.Get("external");
                if (externalNode is null)
                {
                    Error(m, itemPath + ".external", "a protocol forward needs an external address (a.b.c.d)");
                    ok = false;
                }
                else if (Text(externalNode, itemPath + ".external") is { } et)
                {
                    if (!Ipv4.TryParse(et, out external))
                    {
                        Error(externalNode, itemPath + ".external", $"'{et}' is not an IPv4 address (expected a.b.c.d)");
                        ok = false;
                    }
                    else if (!IsExternalAddress(external, settings))
                    {
                        Error(externalNode, itemPath + ".external", NotExternalMessage(external, settings));
                        ok = false;
                    }
                }
                else
                {
                    ok = false;
                }

                uint to = 0;
                YNode? toNode = m.Get("to");
                if (toNode is null)
                {
                    Error(m, itemPath + ".to", "a protocol forward needs the inside server's address (to: a.b.c.d)");
                    ok = false;
                }
                else if (Text(toNode, itemPath + ".to") is { } tt)
                {
                    if (!Ipv4.TryParse(tt, out to))
                    {
                        Error(toNode, itemPath + ".to", $"'{tt}' is not an IPv4 address (expected a.b.c.d)");
                        ok = false;
                    }
                    else if (!InNetworks(to, settings.Inside.Networks))
                    {
                        Error(toNode, itemPath + ".to",
                            $"{tt} is not in the inside networks ({string.Join(", ", settings.Inside.Networks)})");
                        ok = false;
                    }
                }
                else
                {
                    ok = false;
                }

                if (!ok)
                {
                    continue;
                }
                int dup = list.FindIndex(f => f.Protocol == protocol && f.ExternalAddress == external);
                if (dup >= 0)
                {
                    Error(externalNode!, itemPath + ".external", string.Create(CultureInfo.InvariantCulture,
                        $"protocol {ProtocolName(protocol)} to {Ipv4.Format(external)} is already forwarded by the entry at line {lines[dup]}"));
                    continue;
                }
                list.Add(new ProtocolForward(protocol, external, to));
                lines.Add(line);
            }
            return list;
        }

        private static bool IsExternalAddress(uint address, NatSettings settings)
        {
            if (address == settings.Outside.Address.Address)
            {
                return true;
            }
            foreach (uint a in settings.Pool)
            {
                if (a == address)
                {
                    return true;
                }
            }
            return false;
        }

        private static string NotExternalMessage(uint address, NatSettings settings)
        {
            var addresses = new List<string>();
            foreach (uint a in settings.Pool)
            {
                addresses.Add(Ipv4.Format(a));
            }
            if (!settings.Pool.Contains(settings.Outside.Address.Address))
            {
                addresses.Add(Ipv4.Format(settings.Outside.Address.Address));
            }
            return $"{Ipv4.Format(address)} is not an external address of natd (nat.pool or the outside address: {string.Join(", ", addresses)})";
        }

        private static bool InNetworks(uint address, IReadOnlyList<Ipv4Prefix> networks)
        {
            foreach (var n in networks)
            {
                if (n.Contains(address))
                {
                    return true;
                }
            }
            return false;
        }

        private static string ProtocolName(byte protocol)
        {
            foreach (var (name, number) in ProtocolNames)
            {
                if (number == protocol)
                {
                    return name;
                }
            }
            return protocol.ToString(CultureInfo.InvariantCulture);
        }
    }

    /// <summary>"N" or "LOW-HIGH" with 1 &lt;= LOW &lt;= HIGH &lt;= 65535.</summary>
    internal static bool TryPortRange(string text, out PortRange range)
    {
        range = default;
        int dash = text.IndexOf('-', StringComparison.Ordinal);
        ReadOnlySpan<char> lowText = dash < 0 ? text.AsSpan() : text.AsSpan(0, dash);
        ReadOnlySpan<char> highText = dash < 0 ? text.AsSpan() : text.AsSpan(dash + 1);
        if (int.TryParse(lowText.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int low)
            && int.TryParse(highText.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int high)
            && low >= 1 && low <= high && high <= 65535)
        {
            range = new PortRange((ushort)low, (ushort)high);
            return true;
        }
        return false;
    }

    /// <summary>
    /// "a.b.c.d", "a.b.c.d:PORT" or (when <paramref name="allowRange"/>) "a.b.c.d:LOW-HIGH". An
    /// omitted port gives the range 0-0.
    /// </summary>
    internal static bool TryEndpoint(string text, bool allowRange, out uint address, out PortRange ports)
    {
        ports = default;
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (!Ipv4.TryParse(colon < 0 ? text : text[..colon], out address))
        {
            return false;
        }
        if (colon < 0)
        {
            return true;
        }
        return TryPortRange(text[(colon + 1)..], out ports) && (allowRange || ports.Count == 1);
    }
}

using System.Buffers.Binary;
using Natd.Control.Config;
using Natd.Dataplane.Nat;
using Natd.Dataplane.Packets;

namespace Natd.Fuzzing.Targets;

/// <summary>
/// Fuzz target "cgn": the carrier-grade NAT (RFC 6888) under hostile traffic. Byte 0 picks one of
/// <see cref="Profiles"/> (its low two bits) and one shard or two (bit 2: two engines, frames routed
/// by <see cref="ShardMap"/> as natd's pollers route them) and, with bit 3, small egress MTUs (1000
/// inside, 600 outside) and MSS clamping, a configuration as an operator writes it (parsed and
/// validated by <see cref="ConfigLoader"/>): port blocks with strict pairing, /31 subscribers and
/// every per-subscriber limit; port blocks with spill over a small port range and a third, draining
/// address that nothing may leave from; deterministic NAT
/// (RFC 7422); dynamic allocation with spill and limits. Each has fragments with small bounds and
/// the PCP server on; the first and the last give DNS (and TFTP) UDP timers of 1-2 s of their own
/// (RFC 4787 REQ-5a), so sessions of two expiry classes die under the clock's steps. The rest of the input is <see cref="FrameRunner"/>'s records, with its
/// invariants; on top of them, after every frame:
/// <list type="bullet">
/// <item>no subscriber holds more sessions, ports or blocks than its limits allow (RFC 6888 REQ-3,
/// REQ-4), and the subscribers' sessions add up to the session table's;</item>
/// <item>held blocks never overlap, each lies in <c>nat.ports</c> and has the configured size;</item>
/// <item>an in2out TCP or UDP datagram (not a fragment, not privileged with port blocks) leaves
/// from an external port its subscriber owns: inside one of its blocks on its paired address
/// (port blocks, strict pairing), inside its RFC 7422 range (deterministic, the range computed
/// from the configuration by <see cref="DeterministicMap"/>), or inside <c>nat.ports</c>.</item>
/// </list>
/// </summary>
public static class CgnTarget
{
    private const string Common = """
        interfaces:
          inside: { name: natin, address: 10.0.0.1/24, networks: [10.0.0.0/24] }
          outside: { name: natout, address: 198.51.100.1/24, gateway: 198.51.100.254 }
        fragments: { max-datagrams: 4, max-per-datagram: 6, timeout: 2 }
        algs: { irc: true }

        """;

    /// <summary>The configurations byte 0 chooses from (its low two bits), as YAML.</summary>
    public static readonly string[] Profiles =
    [
        Common + """
            nat:
              pool: [198.51.100.1, 198.51.100.7]
              subscriber-prefix: 31
              allocation: port-block
              port-block: { size: 16, per-subscriber: 2, interim-log: 1 }
              pairing: strict
              port-reuse-delay: 2
            limits:
              sessions: 512
              per-subscriber: { sessions: 12, ports: 10, new-sessions-per-second: 8 }
            pcp: { enabled: true, all-ports: true, mappings-per-subscriber: 4 }
            timeouts: { udp-ports: { 53: 2, 69: 1 } }
            """,
        Common + """
            nat:
              pool: [198.51.100.1, 198.51.100.7, 198.51.100.8]
              ports: 1024-1151
              allocation: port-block
              port-block: { size: 32, per-subscriber: 3 }
              pairing: spill
              port-reuse-delay: 0
              drain: [198.51.100.8]
            limits: { sessions: 512 }
            pcp: { enabled: true }
            """,
        Common + """
            nat:
              pool: [198.51.100.1, 198.51.100.7]
              ports: 1024-5119
              allocation: deterministic
              deterministic: { inside: [10.0.0.0/26] }
            limits:
              sessions: 512
              per-subscriber: { sessions: 12 }
            pcp: { enabled: true, all-ports: true }
            """,
        Common + """
            nat:
              pool: [198.51.100.1, 198.51.100.7]
              ports: 1024-1087
              pairing: spill
              port-reuse-delay: 1
            limits:
              sessions: 512
              per-subscriber: { ports: 6, new-sessions-per-second: 3 }
            pcp: { enabled: true }
            timeouts: { udp-ports: { 53: 1 } }
            """,
    ];

    private static readonly NatSettings[] Settings = [.. Profiles.Select((yaml, i) => ConfigLoader.Parse(yaml, $"cgn-{i}.yaml").Nat)];

    /// <summary>The settings of profile <paramref name="profile"/> (0..3).</summary>
    public static NatSettings SettingsOf(int profile) => Settings[profile & 3];

    /// <summary>Runs one input; throws <see cref="FuzzInvariantException"/> when an invariant fails.</summary>
    public static void Run(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
        {
            return;
        }
        NatSettings settings = SettingsOf(input[0]);
        if ((input[0] & 8) != 0)
        {
            // Small MTUs: fragmentation and fragmentation-needed with subscribers and two shards too.
            settings = settings with
            {
                Inside = settings.Inside with { Mtu = 1000 },
                Outside = settings.Outside with { Mtu = 600 },
                MssClamp = NatSettings.MssClampAuto,
            };
        }
        new FrameRunner(settings, "cgn", new Check(settings), shards: (input[0] & 4) != 0 ? 2 : 1).Run(input[1..]);
    }

    private sealed class Check(NatSettings settings) : IFrameCheck
    {
        private readonly CgnatSettings _cgn = settings.Cgnat;
        private readonly DeterministicMap? _deterministic = DeterministicMap.For(settings);

        public void AfterFrame(FrameRunner runner, int shard, Side ingress, ReadOnlySpan<byte> input, Verdict verdict, ReadOnlySpan<byte> output)
        {
            var blocks = new List<BlockInfo>();
            var subscribers = new List<SubscriberInfo>();
            foreach (NatEngine engine in runner.Engines)
            {
                Subscribers(runner, engine, subscribers);
                blocks.AddRange(engine.Subscribers?.ListBlocks(runner.NowMs) ?? []);
            }
            Blocks(runner, blocks, subscribers);
            if (ingress == Side.Inside && verdict == Verdict.ToOutside)
            {
                Translated(runner, input, output, blocks, subscribers);
                PortlessPaired(runner, input, output, subscribers);
            }
        }

        // Port-less flows (inside host, remote, protocol) already seen leaving: only a flow's first
        // datagram is checked, as a tunnel keeps the address it was opened with.
        private readonly HashSet<(uint, uint, byte)> _portless = [];

        /// <summary>
        /// RFC 4787 REQ-2 across shards: the first datagram of a port-less flow (ESP, GRE, another
        /// protocol, ISAKMP) of a subscriber that is paired, in whichever shard holds it, leaves from
        /// the paired address, though shard 0 carries it.
        /// </summary>
        private void PortlessPaired(FrameRunner runner, ReadOnlySpan<byte> input, ReadOnlySpan<byte> output, List<SubscriberInfo> subscribers)
        {
            if (_deterministic is not null || !Addresses(input, out uint inside, out uint remote) || !Addresses(output, out uint source, out uint to)
                || to != remote || !settings.Pool.Contains(source) || (BinaryPrimitives.ReadUInt16BigEndian(output[20..]) & 0x3FFF) != 0)
            {
                return; // deterministic NAT has its own check; not a translated whole datagram to the remote
            }
            byte proto = output[23];
            int ihl = (output[14] & 15) * 4;
            bool isakmp = proto == IpProtocol.Udp && output.Length >= 14 + ihl + 4
                && BinaryPrimitives.ReadUInt16BigEndian(output[(14 + ihl)..]) == 500 && BinaryPrimitives.ReadUInt16BigEndian(output[(14 + ihl + 2)..]) == 500;
            if ((proto is IpProtocol.Tcp or IpProtocol.Udp or IpProtocol.Icmp && !isakmp) || !_portless.Add((inside, remote, proto)))
            {
                return;
            }
            uint subscriber = _cgn.SubscriberOf(inside);
            foreach (SubscriberInfo s in subscribers)
            {
                if (s.Subscriber == subscriber && s.External != 0 && s.External != source)
                {
                    throw runner.Fail($"protocol {proto} from {Ipv4.Format(inside)} to {Ipv4.Format(remote)} left from {Ipv4.Format(source)}, but its subscriber is paired with {Ipv4.Format(s.External)}");
                }
            }
        }

        /// <summary>One shard's subscribers against their limits and its session table; adds them to <paramref name="all"/>.</summary>
        private static void Subscribers(FrameRunner runner, NatEngine engine, List<SubscriberInfo> all)
        {
            if (engine.Subscribers is not { } sp)
            {
                return;
            }
            long sessions = 0;
            foreach (SubscriberInfo s in sp.List())
            {
                string who = $"subscriber {Ipv4.Format(s.Subscriber)}/{s.PrefixLength}";
                if (s.Sessions < 0 || s.Ports < 0)
                {
                    throw runner.Fail($"{who} holds {s.Sessions} sessions and {s.Ports} ports");
                }
                if (s.SessionLimit > 0 && s.Sessions > s.SessionLimit)
                {
                    throw runner.Fail($"{who} holds {s.Sessions} sessions, over limits.per-subscriber.sessions {s.SessionLimit}");
                }
                if (s.PortLimit > 0 && s.Ports > s.PortLimit)
                {
                    throw runner.Fail($"{who} holds {s.Ports} ports, over its limit {s.PortLimit}");
                }
                if (all.Find(o => o.Subscriber == s.Subscriber) is { } other)
                {
                    // Only as shard 0's hold for the port-less flows it carries (no port, no session,
                    // no block), and paired alike.
                    if (!(PortlessHold(s) || PortlessHold(other)))
                    {
                        throw runner.Fail($"{who} has state in two shards");
                    }
                    if (s.External != 0 && other.External != 0 && s.External != other.External)
                    {
                        throw runner.Fail($"{who} is paired with {Ipv4.Format(other.External)} in one shard and {Ipv4.Format(s.External)} in another");
                    }
                }
                sessions += s.Sessions;
                all.Add(s);
            }
            if (sessions != engine.Table.Count)
            {
                throw runner.Fail($"the subscribers' sessions add up to {sessions}, a shard's session table holds {engine.Table.Count}");
            }
        }

        private static bool PortlessHold(SubscriberInfo s) => s.Ports == 0 && s.Sessions == 0 && s.Blocks.Count == 0;

        /// <summary>Held blocks of every shard: each inside nat.ports with the configured size, no port in two, none past its holder's per-subscriber count.</summary>
        private void Blocks(FrameRunner runner, List<BlockInfo> blocks, List<SubscriberInfo> subscribers)
        {
            var owners = new Dictionary<(uint, int), BlockInfo>();
            foreach (BlockInfo a in blocks)
            {
                int ports = (a.High - a.Low) / a.Step + 1;
                if (a.Low < settings.PortMin || a.High > settings.PortMax || ports != _cgn.PortBlock.Size || (a.High - a.Low) % a.Step != 0)
                {
                    throw runner.Fail($"block {a.Low}-{a.High} step {a.Step} on {Ipv4.Format(a.External)}: {ports} ports, outside nat.ports {settings.PortMin}-{settings.PortMax} or not {_cgn.PortBlock.Size}");
                }
                for (int port = a.Low; port <= a.High; port += a.Step)
                {
                    if (!owners.TryAdd((a.External, port), a))
                    {
                        BlockInfo b = owners[(a.External, port)];
                        throw runner.Fail($"port {port} of {Ipv4.Format(a.External)} is in block {a.Low}-{a.High} ({Ipv4.Format(a.Subscriber)}) and block {b.Low}-{b.High} ({Ipv4.Format(b.Subscriber)})");
                    }
                }
            }
            foreach (SubscriberInfo s in subscribers)
            {
                int held = blocks.Count(b => b.Subscriber == s.Subscriber);
                if (_cgn.Allocation == PortAllocation.PortBlock && held > _cgn.PortBlock.PerSubscriber)
                {
                    throw runner.Fail($"subscriber {Ipv4.Format(s.Subscriber)} holds {held} blocks, over nat.port-block.per-subscriber {_cgn.PortBlock.PerSubscriber}");
                }
            }
        }

        private void Translated(FrameRunner runner, ReadOnlySpan<byte> input, ReadOnlySpan<byte> output, List<BlockInfo> blocks, List<SubscriberInfo> subscribers)
        {
            // Deterministic NAT: every protocol of a subscriber (ICMP, ESP, GRE, ISAKMP, fragments
            // too) leaves from the address of its range (RFC 4787 REQ-2).
            if (_deterministic is not null && Addresses(input, out uint from, out uint to) && Addresses(output, out uint source, out _)
                && settings.Pool.Contains(source) && !settings.Pool.Contains(to) && to != settings.Outside.Address.Address
                && _deterministic.TryForward(from, out DeterministicRange r) && r.External != source)
            {
                throw runner.Fail($"protocol {input[23]} from {Ipv4.Format(from)} left from {Ipv4.Format(source)}, not from the address of its RFC 7422 range {r}");
            }
            // A draining address (nat.drain, from the start here) never gets a pairing, so nothing leaves from it.
            if (_cgn.Drain.Count > 0 && Addresses(output, out uint sent, out _) && _cgn.Drain.Contains(sent))
            {
                throw runner.Fail($"protocol {input[23]} left from {Ipv4.Format(sent)}, which drains");
            }
            if (!Datagram(input, out uint inside, out byte proto, out ushort insidePort, out uint destination, out ushort destinationPort)
                || !Datagram(output, out uint external, out byte outProto, out ushort port, out _, out _)
                || outProto != proto || !settings.Pool.Contains(external) || destination == external)
            {
                return; // not a plain translated TCP/UDP datagram (fragments, ICMP, tunnels, hairpinning)
            }
            uint subscriber = _cgn.SubscriberOf(inside);
            string flow = $"{(proto == IpProtocol.Tcp ? "TCP" : "UDP")} {Ipv4.Format(inside)}:{insidePort} left as {Ipv4.Format(external)}:{port}";
            // ISAKMP keeps port 500 both ways (routed back by its cookies), whatever the allocation.
            bool isakmp = proto == IpProtocol.Udp && insidePort == 500 && destinationPort == 500 && port == 500;
            if (_deterministic is not null)
            {
                if (!_deterministic.TryForward(inside, out DeterministicRange range) || range.External != external
                    || (!isakmp && (port < range.Low || port > range.High)))
                {
                    throw runner.Fail($"{flow}, outside its RFC 7422 range {range}");
                }
                return;
            }
            if (insidePort < 1024)
            {
                return; // privileged ports keep the per-port allocation (RFC 4787 REQ-3), not the blocks
            }
            if (port < settings.PortMin || port > settings.PortMax)
            {
                throw runner.Fail($"{flow}, outside nat.ports {settings.PortMin}-{settings.PortMax}");
            }
            if (_cgn.Allocation != PortAllocation.PortBlock)
            {
                return;
            }
            bool inBlock = false;
            foreach (BlockInfo b in blocks)
            {
                inBlock |= b.Subscriber == subscriber && b.External == external && port >= b.Low && port <= b.High && (port - b.Low) % b.Step == 0;
            }
            if (!inBlock)
            {
                throw runner.Fail($"{flow}, in no block its subscriber {Ipv4.Format(subscriber)} holds");
            }
            if (_cgn.Pairing == Pairing.Strict)
            {
                foreach (SubscriberInfo s in subscribers)
                {
                    if (s.Subscriber == subscriber && s.External != external)
                    {
                        throw runner.Fail($"{flow}, but its subscriber is paired with {Ipv4.Format(s.External)} (strict pairing)");
                    }
                }
            }
        }

        /// <summary>An IPv4 frame's source and destination addresses (any protocol, fragments too).</summary>
        private static bool Addresses(ReadOnlySpan<byte> frame, out uint source, out uint destination)
        {
            bool ipv4 = frame.Length >= 34 && BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) == 0x0800 && (frame[14] >> 4) == 4;
            source = ipv4 ? BitConverter.ToUInt32(frame[26..30]) : 0;
            destination = ipv4 ? BitConverter.ToUInt32(frame[30..34]) : 0;
            return ipv4;
        }

        /// <summary>An unfragmented IPv4 TCP or UDP datagram of a frame: its source, protocol, source port, destination and destination port.</summary>
        private static bool Datagram(ReadOnlySpan<byte> frame, out uint source, out byte proto, out ushort sourcePort, out uint destination, out ushort destinationPort)
        {
            source = destination = 0;
            proto = 0;
            sourcePort = destinationPort = 0;
            if (frame.Length < 34 || BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) != 0x0800 || (frame[14] >> 4) != 4)
            {
                return false;
            }
            int ihl = (frame[14] & 15) * 4;
            ushort fragment = BinaryPrimitives.ReadUInt16BigEndian(frame[20..]);
            proto = frame[23];
            if (ihl < 20 || frame.Length < 14 + ihl + 4 || (fragment & 0x3FFF) != 0 || proto is not (IpProtocol.Tcp or IpProtocol.Udp))
            {
                return false;
            }
            source = BitConverter.ToUInt32(frame[26..30]);
            destination = BitConverter.ToUInt32(frame[30..34]);
            sourcePort = BinaryPrimitives.ReadUInt16BigEndian(frame[(14 + ihl)..]);
            destinationPort = BinaryPrimitives.ReadUInt16BigEndian(frame[(14 + ihl + 2)..]);
            return true;
        }
    }
}

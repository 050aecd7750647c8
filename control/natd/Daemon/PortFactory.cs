using System.Numerics;
using Natd.Control.Config;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;

namespace Natd.Control.Daemon;

/// <summary>The packet ports of every poller, and which driver each interface ended up with.</summary>
/// <param name="Pairs">One (inside, outside) pair per poller.</param>
/// <param name="InsideDriver">"af_xdp" or "af_packet".</param>
/// <param name="OutsideDriver">"af_xdp" or "af_packet".</param>
/// <param name="Notes">Fallbacks taken, for the log.</param>
/// <param name="SharedUmem">True when every poller's AF_XDP inside and outside sockets share a UMEM (frames forwarded without copies).</param>
/// <param name="Coalescing">Receive coalescing natd turned off on the interfaces, to turn back on when it lets them go (<see cref="PortFactory.RestoreLinks"/>).</param>
/// <param name="MacFilters">Handles that keep a MAC override's frames coming in (<see cref="LinkSettings.ReceiveUnicastFor"/>), to close when natd lets the interfaces go.</param>
/// <param name="Claims">This natd's hold on each interface (<see cref="InterfaceClaim"/>), released last.</param>
/// <param name="Indexes">Each interface's name and index when its sockets were opened (<see cref="Gone"/>).</param>
internal sealed record OpenedPorts(IReadOnlyList<(IPacketPort Inside, IPacketPort Outside)> Pairs, string InsideDriver, string OutsideDriver, IReadOnlyList<string> Notes, bool SharedUmem = false,
    IReadOnlyList<CoalescingChange>? Coalescing = null, IReadOnlyList<IDisposable>? MacFilters = null, IReadOnlyList<InterfaceClaim>? Claims = null,
    IReadOnlyList<(string Name, int Index)>? Indexes = null)
{
    /// <summary>
    /// Why natd's sockets can no longer serve an interface, or null while they can: the interface was
    /// removed (no index under its name), or removed and another took its name (a new index). Sockets
    /// stay bound to the index they were opened on, so neither comes back by itself. In the calling
    /// thread's network namespace.
    /// </summary>
    public string? Gone()
    {
        foreach (var (name, index) in Indexes ?? [])
        {
            int now = LinkSettings.IfIndex(name);
            if (now != index)
            {
                return now == 0 ? $"{name} was removed" : $"{name} was removed and another interface took its name (index {index}, now {now})";
            }
        }
        return null;
    }

    /// <summary>
    /// Gives the interfaces back, once the ports are closed: closes the MAC filters, turns receive
    /// coalescing back on, releases the claims. Returns what could not be undone, for the log.
    /// </summary>
    public List<string> Release()
    {
        foreach (var filter in MacFilters ?? [])
        {
            filter.Dispose();
        }
        List<string> errors = PortFactory.RestoreLinks(Coalescing);
        foreach (var claim in Claims ?? [])
        {
            claim.Dispose();
        }
        return errors;
    }

    /// <summary>Frames on each AF_XDP socket's fill ring (the first AF_XDP port's); 0 when neither side runs AF_XDP.</summary>
    public int XdpFillFrames => Pairs.Count == 0 ? 0
        : Pairs[0].Inside is AfXdpPort i ? i.RxFrameCount
        : Pairs[0].Outside is AfXdpPort o ? o.RxFrameCount : 0;
}

/// <summary>
/// Opens the configured driver on both interfaces for every poller. AF_XDP gives poller k queue
/// k (one socket per queue); when the device has fewer queues than pollers, or AF_XDP is refused
/// (old kernel, no CAP_BPF/CAP_NET_ADMIN), "auto" falls back to AF_PACKET with a note saying why,
/// while an explicit "af_xdp" fails. When it has more receive queues active than pollers, "auto"
/// takes AF_PACKET too and an explicit "af_xdp" is warned (<see cref="QueuesServed"/>). AF_PACKET
/// sockets of several pollers join one PACKET_FANOUT group per interface, so each frame reaches one
/// poller (which hands it to its owner).
/// </summary>
/// <remarks>
/// With AF_XDP on both sides, poller k's inside socket (queue k) and outside socket (queue k)
/// share one UMEM (<see cref="AfXdpPort.OpenPair(string, string, AfXdpOptions, AfXdpOptions)"/>): a frame is translated in the UMEM and sent
/// on the other interface without a copy. Each poller has its own UMEM, so no frame memory crosses
/// threads; the kernel allows the sharing across devices when each socket has its own fill and
/// completion ring (Linux 5.10 and later; the same device and queue would have to share the fill
/// ring instead, which never happens here). On an older kernel the pair is refused and each side is
/// opened on its own (frames copied), with a note.
/// </remarks>
internal static class PortFactory
{
    /// <summary>
    /// Frames on each AF_XDP fill ring when dataplane.xdp-fill-ring is not set and the pollers take
    /// every core the process may use (<see cref="XdpFillRing"/>).
    /// </summary>
    internal const int SharedCoreXdpFillRing = 4096;

    /// <summary>
    /// The fill ring natd opens AF_XDP sockets with: dataplane.xdp-fill-ring when set; otherwise
    /// <see cref="SharedCoreXdpFillRing"/> when <paramref name="pollers"/> >= <paramref name="cores"/>,
    /// else null (the driver's 1024 a socket of a pair, 2048 a lone socket).
    /// </summary>
    /// <remarks>
    /// Why: a poller that shares its core with the rest of the box (the control plane, softirqs,
    /// other processes) can wait a scheduler slice before it runs, and the kernel drops whatever
    /// arrives once the fill ring is used up. In the lab two workers beside the traffic generator on
    /// two cores lost 18-45% of what was offered with 1024 frames and nothing with 4096, while one
    /// worker, whose core is its own, runs 2-5% slower with 4096 (its frames are colder when
    /// reused): perf/README.md, "AF_XDP fill rings".
    /// </remarks>
    internal static int? XdpFillRing(int? setting, int pollers, int cores)
        => setting ?? (pollers >= cores ? SharedCoreXdpFillRing : null);

    /// <summary>Opens the ports; on failure closes what it opened.</summary>
    /// <exception cref="NativeIoException">A driver could not be opened (an explicit af_xdp, or AF_PACKET itself).</exception>
    public static OpenedPorts Open(NatdConfig config, int pollers) => Open(config, pollers, Environment.ProcessorCount);

    /// <summary>As <see cref="Open(NatdConfig, int)"/> on a machine of <paramref name="cores"/> usable cores.</summary>
    /// <exception cref="NativeIoException">As Open.</exception>
    internal static OpenedPorts Open(NatdConfig config, int pollers, int cores)
    {
        var notes = new List<string>();
        // First the claims: a natd already serving an interface keeps it as it set it.
        List<InterfaceClaim> claims = Claim([config.Nat.Inside.Name, config.Nat.Outside.Name]);
        List<CoalescingChange> coalescing = [];
        try
        {
            coalescing = PrepareLinks([config.Nat.Inside.Name, config.Nat.Outside.Name], notes);
            ConfiguredMtus(config, notes);
            OpenedPorts opened = OpenPorts(config, pollers, cores, notes) with { Coalescing = coalescing, Claims = claims };
            KernelSide(config, opened.InsideDriver, opened.OutsideDriver, notes);
            var indexes = new[] { config.Nat.Inside.Name, config.Nat.Outside.Name }.Select(n => (n, LinkSettings.IfIndex(n))).ToList();
            return opened with { MacFilters = AcceptOverrides(config, opened.Pairs[0], notes), Indexes = indexes };
        }
        catch
        {
            RestoreLinks(coalescing);
            claims.ForEach(c => c.Dispose());
            throw;
        }
    }

    private static OpenedPorts OpenPorts(NatdConfig config, int pollers, int cores, List<string> notes)
    {
        string? pairError = null;
        int? fillRing = XdpFillRing(config.XdpFillRing, pollers, cores);
        string insideAsked = QueuesServed(config.Nat.Inside.Name, config.InsideDriver, pollers, notes);
        string outsideAsked = QueuesServed(config.Nat.Outside.Name, config.OutsideDriver, pollers, notes);
        if (insideAsked is "auto" or "af_xdp" && outsideAsked is "auto" or "af_xdp")
        {
            var shared = OpenPairs(config.Nat.Inside.Name, config.Nat.Outside.Name, pollers, fillRing, out pairError);
            if (shared is not null)
            {
                return new OpenedPorts(shared, "af_xdp", "af_xdp", notes, SharedUmem: true);
            }
        }
        var inside = OpenSide(config.Nat.Inside.Name, insideAsked, pollers, fillRing, notes, out string insideDriver);
        IPacketPort[] outside;
        string outsideDriver;
        try
        {
            outside = OpenSide(config.Nat.Outside.Name, outsideAsked, pollers, fillRing, notes, out outsideDriver);
        }
        catch
        {
            foreach (var p in inside)
            {
                p.Dispose();
            }
            throw;
        }
        var pairs = new (IPacketPort, IPacketPort)[pollers];
        for (int i = 0; i < pollers; i++)
        {
            pairs[i] = (inside[i], outside[i]);
        }
        if (pairError is not null && insideDriver == "af_xdp" && outsideDriver == "af_xdp")
        {
            notes.Add($"af_xdp without a shared UMEM, frames are copied ({FirstLine(pairError)})");
        }
        return new OpenedPorts(pairs, insideDriver, outsideDriver, notes);
    }

    /// <summary>
    /// The driver to open <paramref name="name"/> with, given that an AF_XDP socket serves one receive
    /// queue and natd opens one a poller: with more queues active than pollers, frames the device
    /// steers to the others would go to the kernel, not natd. "auto" then takes AF_PACKET (its
    /// sockets receive from every queue, PACKET_FANOUT spreads them over the pollers); an explicit
    /// "af_xdp" stays, with a warning. A driver that does not report its queues is taken at its word.
    /// </summary>
    internal static string QueuesServed(string name, string driver, int pollers, List<string> notes)
    {
        if (driver is not ("auto" or "af_xdp"))
        {
            return driver;
        }
        int? queues;
        try
        {
            queues = LinkSettings.ReceiveQueues(name);
        }
        catch (NativeIoException)
        {
            return driver; // a missing interface: opening it says so
        }
        if (queues is not int q || q <= pollers)
        {
            return driver;
        }
        string gap = $"{name} has {q} receive queues and natd {pollers} worker(s), one AF_XDP socket each: frames on queue{(q - pollers > 1 ? "s" : "")} {(q - pollers > 1 ? $"{pollers}-{q - 1}" : $"{pollers}")} would go to the kernel";
        string fix = $"set dataplane.workers to {q}, or make {pollers} queue(s) active with ethtool -L {name}";
        if (driver == "af_xdp")
        {
            notes.Add($"warning: {gap}; {fix}");
            return driver;
        }
        notes.Add($"{name}: AF_XDP not used ({gap}); falling back to AF_PACKET, which receives from every queue ({fix} for AF_XDP)");
        return "af_packet";
    }

    /// <summary>One AF_XDP pair sharing a UMEM per poller, queue k for poller k; null (and the error) when any fails.</summary>
    private static (IPacketPort, IPacketPort)[]? OpenPairs(string inside, string outside, int pollers, int? fillRing, out string? error)
    {
        var pairs = new List<(IPacketPort, IPacketPort)>();
        try
        {
            for (int q = 0; q < pollers; q++)
            {
                // Queue 0's pair attaches the XDP programs; the other queues' sockets join them.
                (AfXdpPort, AfXdpPort)? first = q == 0 ? null : ((AfXdpPort)pairs[0].Item1, (AfXdpPort)pairs[0].Item2);
                var (i, o) = AfXdpPort.OpenPair(inside, outside, XdpOptions(q, fillRing), XdpOptions(q, fillRing), first);
                pairs.Add((i, o));
            }
            error = null;
            return [.. pairs];
        }
        catch (Exception e) when (e is NativeIoException or ArgumentException)
        {
            foreach (var (i, o) in pairs)
            {
                i.Dispose();
                o.Dispose();
            }
            error = e.Message;
            return null;
        }
    }

    /// <summary>
    /// Options of queue <paramref name="queue"/>'s socket. IPv4 and ARP only: whatever natd does not
    /// handle stays with the kernel. With dataplane.xdp-fill-ring (<paramref name="fillRing"/>) the
    /// UMEM holds four times that many frames, so that with a shared UMEM half of them stay free for
    /// transmitting, as with the default of 1024 on each of a pair's fill rings and 4096 frames.
    /// </summary>
    internal static AfXdpOptions XdpOptions(int queue, int? fillRing)
    {
        var options = AfXdpOptions.Default with { QueueId = queue, RedirectEtherTypes = [0x0800, 0x0806] };
        if (fillRing is not int fill)
        {
            return options;
        }
        int ring = Math.Max(options.RingSize, (int)BitOperations.RoundUpToPowerOf2((uint)fill));
        return options with { FillRingFrames = fill, FrameCount = 4 * fill, RingSize = ring };
    }

    private static IPacketPort[] OpenSide(string name, string driver, int pollers, int? fillRing, List<string> notes, out string used)
    {
        if (driver is "auto" or "af_xdp")
        {
            var opened = new List<IPacketPort>();
            try
            {
                for (int q = 0; q < pollers; q++)
                {
                    opened.Add(AfXdpPort.Open(name, XdpOptions(q, fillRing), q == 0 ? null : (AfXdpPort)opened[0]));
                }
                used = "af_xdp";
                return [.. opened];
            }
            catch (Exception e) when (e is NativeIoException or ArgumentException)
            {
                foreach (var p in opened)
                {
                    p.Dispose();
                }
                if (driver == "af_xdp")
                {
                    throw new NativeIoException($"{name}: af_xdp requested but not available: {e.Message}", (e as NativeIoException)?.Errno ?? 0);
                }
                notes.Add($"{name}: AF_XDP not used ({FirstLine(e.Message)}); falling back to AF_PACKET");
            }
        }
        var ports = new IPacketPort[pollers];
        int group = pollers > 1 ? Random.Shared.Next(1, 65536) : 0;
        try
        {
            for (int i = 0; i < pollers; i++)
            {
                ports[i] = AfPacketPort.Open(name, AfPacketOptions.Default with { FanoutGroup = group });
            }
        }
        catch
        {
            foreach (var p in ports)
            {
                p?.Dispose();
            }
            throw;
        }
        used = "af_packet";
        return ports;
    }

    /// <summary>Takes each interface for this natd (<see cref="InterfaceClaim"/>); all or none.</summary>
    /// <exception cref="NativeIoException">Another natd in this network namespace serves one of them.</exception>
    private static List<InterfaceClaim> Claim(IEnumerable<string> interfaces)
    {
        var claims = new List<InterfaceClaim>();
        try
        {
            foreach (string name in interfaces.Distinct(StringComparer.Ordinal))
            {
                claims.Add(InterfaceClaim.Take(name));
            }
            return claims;
        }
        catch
        {
            claims.ForEach(c => c.Dispose());
            throw;
        }
    }

    /// <summary>
    /// Before any socket opens (one opened first would take frames merged before the change): turns
    /// receive coalescing (GRO, LRO) off on each interface, names one that is down or without a
    /// carrier, and checks its MTU against the frames natd takes (<see cref="LinkSettings"/> says
    /// why) and against the other's. Notes say what changed, what natd will drop and count
    /// (natd_port_rx_oversize_total) when a change is refused or an MTU is too large, and what it
    /// does when the MTUs differ.
    /// </summary>
    internal static List<CoalescingChange> PrepareLinks(IEnumerable<string> interfaces, List<string> notes)
    {
        var changed = new List<CoalescingChange>();
        var mtus = new List<(string Name, int Mtu)>();
        foreach (string name in interfaces.Distinct(StringComparer.Ordinal))
        {
            try
            {
                CoalescingChange c = LinkSettings.TurnOffReceiveCoalescing(name, out string? refused);
                if (c.Any)
                {
                    changed.Add(c);
                    string what = c.Gro && c.Lro ? "generic-receive-offload and large-receive-offload" : c.Gro ? "generic-receive-offload" : "large-receive-offload";
                    notes.Add($"{name}: {what} turned off while natd runs (the kernel would merge frames beyond the {FrameBatch.SlotSize} bytes natd receives); turned back on at exit");
                }
                if (refused is not null)
                {
                    notes.Add($"warning: {name}: {refused}: frames it merges beyond {FrameBatch.SlotSize} bytes are dropped (natd_port_rx_oversize_total); turn it off with ethtool -K {name} gro off lro off");
                }
                var (up, running) = LinkSettings.State(name);
                if (!up)
                {
                    notes.Add($"warning: {name} is down: natd receives and sends nothing on it until it is up (ip link set dev {name} up)");
                }
                else if (!running)
                {
                    notes.Add($"warning: {name} has no carrier: natd receives and sends nothing on it until the link comes up");
                }
                int mtu = LinkSettings.Mtu(name);
                mtus.Add((name, mtu));
                if (mtu > LinkSettings.LargestMtu)
                {
                    notes.Add($"warning: {name}: MTU {mtu} is above the {LinkSettings.LargestMtu} bytes natd forwards: larger frames are dropped (natd_port_rx_oversize_total); lower it with ip link set dev {name} mtu {LinkSettings.LargestMtu}");
                }
            }
            catch (NativeIoException)
            {
                // A missing interface: opening its sockets next says so, with the driver's words.
            }
        }
        if (mtus.Count == 2 && mtus[0].Mtu != mtus[1].Mtu)
        {
            // Not a fault (a PPPoE or tunnel uplink is smaller than the LAN): natd fragments or
            // answers fragmentation-needed (EgressMtu), and MSS clamping covers paths that filter ICMP.
            var (small, large) = mtus[0].Mtu < mtus[1].Mtu ? (mtus[0], mtus[1]) : (mtus[1], mtus[0]);
            notes.Add($"{large.Name}: MTU {large.Mtu} is above {small.Name}'s {small.Mtu}: natd fragments datagrams larger than {small.Mtu} bytes from {large.Name}'s side, and answers those with don't-fragment set with fragmentation-needed (RFC 1191); nat.mss-clamp: auto keeps TCP segments within it where that ICMP is filtered");
        }
        return changed;
    }

    /// <summary>
    /// Names an <c>interfaces.*.mtu</c> above its link's MTU: natd would send datagrams up to the
    /// configured size whole, and the kernel drops those the link cannot carry. (One below the
    /// link's is the point of the key: a smaller path beyond the link.)
    /// </summary>
    internal static void ConfiguredMtus(NatdConfig config, List<string> notes)
    {
        foreach (var (side, iface) in new[] { ("inside", config.Nat.Inside), ("outside", config.Nat.Outside) })
        {
            int link = LinkSettings.MtuOrZero(iface.Name);
            if (iface.Mtu > 0 && link > 0 && iface.Mtu > link)
            {
                notes.Add($"warning: interfaces.{side}.mtu {iface.Mtu} is above {iface.Name}'s MTU {link}: the kernel drops datagrams of {link + 1} to {iface.Mtu} bytes natd sends there whole; lower it to {link} or less, or leave it out (natd then follows the link)");
            }
        }
    }

    /// <summary>
    /// Names what the kernel still does on natd's interfaces that collides with natd. With AF_XDP
    /// natd takes every IPv4 frame, so an address the kernel holds there receives nothing. With
    /// AF_PACKET the kernel receives every frame natd does: one of natd's own addresses held by the
    /// kernel too gets the kernel's answers as well (a TCP reset, an ICMP port unreachable for
    /// traffic to natd's mappings), and a kernel that forwards may route its own untranslated copy.
    /// </summary>
    internal static void KernelSide(NatdConfig config, string insideDriver, string outsideDriver, List<string> notes)
    {
        var own = new HashSet<uint>(config.Nat.Pool) { config.Nat.Inside.Address.Address, config.Nat.Outside.Address.Address };
        foreach (var (name, driver) in new[] { (config.Nat.Inside.Name, insideDriver), (config.Nat.Outside.Name, outsideDriver) })
        {
            uint[] held;
            try
            {
                held = LinkSettings.Ipv4Addresses(name);
            }
            catch (NativeIoException)
            {
                continue;
            }
            foreach (uint a in held)
            {
                string address = Ipv4.Format(a);
                if (driver == "af_xdp")
                {
                    notes.Add($"warning: {name}: the kernel holds {address} on it, but AF_XDP hands natd every IPv4 frame: nothing reaches the kernel at {address}; give the kernel another interface, or remove the address");
                }
                else if (own.Contains(a))
                {
                    notes.Add($"warning: {name}: the kernel holds {address}, natd's own address, and with AF_PACKET receives the frames natd does: it answers those to {address} too (TCP resets, ICMP port unreachable), breaking natd's mappings; remove it from the kernel (ip addr del {address}/PREFIX dev {name})");
                }
            }
            if (driver != "af_xdp" && LinkSettings.KernelForwards(name) == true)
            {
                notes.Add($"warning: {name}: the kernel forwards IPv4 received on it (net.ipv4.conf.{name}.forwarding=1), and with AF_PACKET receives the frames natd does: it may route its own untranslated copy; set net.ipv4.ip_forward=0, or run natd in its own network namespace");
            }
        }
    }

    /// <summary>
    /// For a side whose MAC natd overrides (<c>interfaces.*.mac</c>), makes the interface take frames
    /// to that MAC too: hosts address natd by the MAC its ARP answers give, and a NIC drops frames to
    /// a MAC not its own before natd could see them. A refusal is a warning; the side then receives
    /// only what reaches it anyway (a veth, a device already promiscuous).
    /// </summary>
    internal static List<IDisposable> AcceptOverrides(NatdConfig config, (IPacketPort Inside, IPacketPort Outside) ports, List<string> notes)
    {
        var held = new List<IDisposable>();
        foreach (var (side, port) in new[] { (config.Nat.Inside, ports.Inside), (config.Nat.Outside, ports.Outside) })
        {
            if (side.Mac is not MacAddress mac || mac == port.Mac)
            {
                continue;
            }
            try
            {
                held.Add(LinkSettings.ReceiveUnicastFor(side.Name, mac));
            }
            catch (NativeIoException e)
            {
                notes.Add($"warning: {side.Name}: frames to the MAC override {mac} may not be received: {FirstLine(e.Message)}");
            }
        }
        return held;
    }

    /// <summary>Turns back on the receive coalescing <see cref="Open(NatdConfig, int)"/> turned off; returns why any could not be (best effort).</summary>
    internal static List<string> RestoreLinks(IEnumerable<CoalescingChange>? changes)
    {
        var errors = new List<string>();
        foreach (var c in changes ?? [])
        {
            if (LinkSettings.Restore(c) is { } why)
            {
                errors.Add(why);
            }
        }
        return errors;
    }

    /// <summary>The failing call and errno of a driver error, without the long hint that follows.</summary>
    private static string FirstLine(string s)
    {
        string line = s.Split('\n')[0];
        int failed = line.IndexOf("failed: ", StringComparison.Ordinal);
        int end = failed < 0 ? -1 : line.IndexOf(')', failed);
        return end > 0 ? line[..(end + 1)] : line;
    }
}

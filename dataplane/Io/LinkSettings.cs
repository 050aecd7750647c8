using Natd.Dataplane.Io.Native;
using Natd.Dataplane.Packets;
using Tmds.Linux;
using static Natd.Dataplane.Io.Native.Constants;
using static Tmds.Linux.LibC;

namespace Natd.Dataplane.Io;

/// <summary>
/// Receive coalescing natd turned off on an interface (<see cref="LinkSettings.TurnOffReceiveCoalescing"/>),
/// to be turned back on when natd lets the interface go (<see cref="LinkSettings.Restore"/>).
/// </summary>
/// <param name="Interface">Interface name.</param>
/// <param name="Gro">Generic receive offload was on and natd turned it off.</param>
/// <param name="Lro">Large receive offload was on and natd turned it off.</param>
public readonly record struct CoalescingChange(string Interface, bool Gro, bool Lro)
{
    /// <summary>True when natd changed anything.</summary>
    public bool Any => Gro || Lro;
}

/// <summary>
/// The link settings natd reads and sets on the interfaces it takes over, through ioctls on a
/// short-lived packet socket in the calling thread's network namespace (SIOCGIFFLAGS, SIOCGIFMTU,
/// SIOCETHTOOL, SIOCGIFCONF): its state, the MTU, the receive queues, receive coalescing, and the
/// kernel's own use of the interface (its addresses, its forwarding).
/// </summary>
/// <remarks>
/// Why receive coalescing goes off: GRO and LRO merge a TCP stream's segments into one frame of up
/// to 64 KiB before any packet socket sees it (and before generic XDP runs). natd receives a frame
/// into one slot of <see cref="FrameBatch.SlotSize"/> bytes and forwards frames no larger than the
/// link's MTU, so a merged frame would be dropped (<c>natd_port_rx_oversize_total</c>) and the
/// stream would crawl on retransmissions. The kernel turns LRO off itself on a device it forwards
/// from (dev_disable_lro), and packet-socket engines such as Snort ask for both to be off. A NIC's
/// hardware GRO (rx-gro-hw) has no legacy ethtool command and is left as it is: with AF_PACKET on
/// such a NIC, turn it off by hand (<c>natd_port_rx_oversize_total</c> shows it at work).
/// </remarks>
public static unsafe class LinkSettings
{
    /// <summary>The largest IP MTU whose frames fit one slot: <see cref="FrameBatch.SlotSize"/> less an Ethernet header and an 802.1Q tag (bytes).</summary>
    public const int LargestMtu = FrameBatch.SlotSize - 14 - 4;

    /// <summary>The interface's MTU (bytes, <see cref="Mtu"/>), or 0 when it cannot be read (no such interface).</summary>
    public static int MtuOrZero(string interfaceName)
    {
        try
        {
            return Mtu(interfaceName);
        }
        catch (NativeIoException)
        {
            return 0;
        }
    }

    /// <summary>The interface's MTU (bytes of IP datagram, SIOCGIFMTU).</summary>
    /// <exception cref="NativeIoException">No such interface, or the socket could not be opened.</exception>
    public static int Mtu(string interfaceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        int s = OpenSocket(interfaceName, "SIOCGIFMTU");
        try
        {
            IfReq req = Request(interfaceName);
            if (LibC.ioctl(s, SIOCGIFMTU, &req) != 0)
            {
                Errno.ThrowLast($"SIOCGIFMTU on '{interfaceName}'");
            }
            return req.Mtu;
        }
        finally
        {
            LibC.close(s);
        }
    }

    /// <summary>
    /// The interface's index in the calling thread's network namespace (if_nametoindex), 0 when no
    /// interface has that name. An index that changes under one name is another interface: the one
    /// natd opened was removed and a new one took its name.
    /// </summary>
    public static int IfIndex(string interfaceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        return (int)NatdLibC.IfNameToIndex(interfaceName);
    }

    /// <summary>
    /// Whether the interface is up (IFF_UP, administratively) and running (IFF_RUNNING: up with a
    /// carrier), through SIOCGIFFLAGS.
    /// </summary>
    /// <exception cref="NativeIoException">No such interface, or the socket could not be opened.</exception>
    public static (bool Up, bool Running) State(string interfaceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        int s = OpenSocket(interfaceName, "SIOCGIFFLAGS");
        try
        {
            IfReq req = Request(interfaceName);
            if (LibC.ioctl(s, SIOCGIFFLAGS, &req) != 0)
            {
                Errno.ThrowLast($"SIOCGIFFLAGS on '{interfaceName}'");
            }
            return ((req.Flags & IFF_UP) != 0, (req.Flags & IFF_RUNNING) != 0);
        }
        finally
        {
            LibC.close(s);
        }
    }

    /// <summary>
    /// Makes <paramref name="interfaceName"/> receive unicast frames addressed to <paramref name="mac"/>
    /// besides its own address (a MAC override), for as long as the returned handle stays open:
    /// PACKET_ADD_MEMBERSHIP with PACKET_MR_UNICAST adds it to the device's unicast filter, or makes
    /// the device promiscuous when it has none. A NIC otherwise drops such frames in hardware,
    /// before any socket or XDP program sees them. Closing the handle removes it again.
    /// </summary>
    /// <exception cref="NativeIoException">No such interface, or the kernel refused the membership (CAP_NET_RAW).</exception>
    public static IDisposable ReceiveUnicastFor(string interfaceName, MacAddress mac)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        int s = OpenSocket(interfaceName, "PACKET_ADD_MEMBERSHIP");
        try
        {
            uint ifIndex = NatdLibC.IfNameToIndex(interfaceName);
            if (ifIndex == 0)
            {
                int e = LibC.errno;
                Errno.Throw($"interface lookup (if_nametoindex) of '{interfaceName}'", e == 0 ? ENODEV : e);
            }
            packet_mreq mreq = default;
            mreq.mr_ifindex = (int)ifIndex;
            mreq.mr_type = (ushort)PACKET_MR_UNICAST;
            mreq.mr_alen = 6;
            mac.Write(new Span<byte>(mreq.mr_address, 6));
            if (LibC.setsockopt(s, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, (uint)sizeof(packet_mreq)) != 0)
            {
                Errno.ThrowLast($"PACKET_ADD_MEMBERSHIP (PACKET_MR_UNICAST {mac}) on '{interfaceName}'");
            }
            return new Membership(s);
        }
        catch
        {
            LibC.close(s);
            throw;
        }
    }

    // The socket holds the membership: the kernel drops it when the socket closes.
    private sealed class Membership(int fd) : IDisposable
    {
        private int _fd = fd;

        public void Dispose()
        {
            int fd = Interlocked.Exchange(ref _fd, -1);
            if (fd >= 0)
            {
                LibC.close(fd);
            }
        }
    }

    /// <summary>
    /// The IPv4 addresses the kernel holds on the interface (network order; SIOCGIFCONF, which lists
    /// each address under its label: the interface's name, or name:alias), none when it holds none.
    /// </summary>
    /// <exception cref="NativeIoException">The socket could not be opened, or SIOCGIFCONF failed.</exception>
    public static uint[] Ipv4Addresses(string interfaceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        int s = OpenSocket(interfaceName, "SIOCGIFCONF");
        try
        {
            for (int slots = 64; ; slots *= 4)
            {
                var reqs = new IfReq[slots];
                fixed (IfReq* buffer = reqs)
                {
                    IfConf conf = new() { Length = slots * sizeof(IfReq), Buffer = buffer };
                    if (LibC.ioctl(s, SIOCGIFCONF, &conf) != 0)
                    {
                        Errno.ThrowLast($"SIOCGIFCONF for '{interfaceName}'");
                    }
                    int n = conf.Length / sizeof(IfReq);
                    if (n == slots && slots < 1 << 16)
                    {
                        continue; // maybe cut short: ask again with room to spare
                    }
                    var found = new List<uint>();
                    for (int i = 0; i < n; i++)
                    {
                        string label = new((sbyte*)buffer[i].Name);
                        if (label == interfaceName || label.StartsWith(interfaceName + ":", StringComparison.Ordinal))
                        {
                            found.Add(buffer[i].Ipv4Address);
                        }
                    }
                    return [.. found];
                }
            }
        }
        finally
        {
            LibC.close(s);
        }
    }

    /// <summary>
    /// Whether the kernel forwards IPv4 received on the interface
    /// (<c>/proc/sys/net/ipv4/conf/NAME/forwarding</c>, read in the calling thread's namespace); null
    /// when it cannot be read.
    /// </summary>
    public static bool? KernelForwards(string interfaceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        try
        {
            return File.ReadAllText($"/proc/sys/net/ipv4/conf/{interfaceName}/forwarding").Trim() == "1";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Receive queues active on the interface (ETHTOOL_GCHANNELS: RX-only plus combined channels), or
    /// null when its driver does not say (no get_channels: a single-queue device, often).
    /// </summary>
    /// <exception cref="NativeIoException">No such interface, or the socket could not be opened.</exception>
    public static int? ReceiveQueues(string interfaceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        int s = OpenSocket(interfaceName, "SIOCETHTOOL");
        try
        {
            EthtoolChannels ch = new() { Cmd = ETHTOOL_GCHANNELS };
            IfReq req = Request(interfaceName);
            req.Data = &ch;
            if (LibC.ioctl(s, SIOCETHTOOL, &req) == 0)
            {
                return (int)(ch.RxCount + ch.CombinedCount);
            }
            int e = LibC.errno;
            if (e == ENODEV)
            {
                Errno.Throw($"ETHTOOL_GCHANNELS on '{interfaceName}'", e);
            }
            return null;
        }
        finally
        {
            LibC.close(s);
        }
    }

    /// <summary>
    /// Turns generic and large receive offload off on <paramref name="interfaceName"/> where they are
    /// on (ETHTOOL_SGRO, ETHTOOL_SFLAGS without ETH_FLAG_LRO). Returns what it turned off; a
    /// feature the driver will not let go (or a missing CAP_NET_ADMIN) is left as it is and
    /// described in <paramref name="refused"/> (null when nothing was refused).
    /// </summary>
    /// <exception cref="NativeIoException">No such interface, or the socket could not be opened.</exception>
    public static CoalescingChange TurnOffReceiveCoalescing(string interfaceName, out string? refused)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        refused = null;
        int s = OpenSocket(interfaceName, "SIOCETHTOOL");
        try
        {
            bool gro = false, lro = false;
            if (Get(s, interfaceName, ETHTOOL_GGRO, out uint groOn) == 0 && groOn != 0)
            {
                int e = Set(s, interfaceName, ETHTOOL_SGRO, 0);
                gro = e == 0;
                refused = e == 0 ? null : $"generic-receive-offload stays on: ETHTOOL_SGRO failed: {Errno.Describe(e)}";
            }
            if (Get(s, interfaceName, ETHTOOL_GFLAGS, out uint flags) == 0 && (flags & ETH_FLAG_LRO) != 0)
            {
                int e = Set(s, interfaceName, ETHTOOL_SFLAGS, flags & ~ETH_FLAG_LRO);
                lro = e == 0;
                if (e != 0)
                {
                    string why = $"large-receive-offload stays on: ETHTOOL_SFLAGS failed: {Errno.Describe(e)}";
                    refused = refused is null ? why : refused + "; " + why;
                }
            }
            return new CoalescingChange(interfaceName, gro, lro);
        }
        finally
        {
            LibC.close(s);
        }
    }

    /// <summary>
    /// Turns back on what <see cref="TurnOffReceiveCoalescing"/> turned off. Best effort: returns
    /// null (also when the interface is gone), or why a feature could not be turned back on.
    /// </summary>
    public static string? Restore(CoalescingChange change)
    {
        if (!change.Any)
        {
            return null;
        }
        int s = LibC.socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
        {
            return $"'{change.Interface}': socket for SIOCETHTOOL failed: {Errno.Describe(LibC.errno)}";
        }
        try
        {
            string? why = null;
            if (IfIndex(change.Interface) == 0)
            {
                return null; // the interface is gone: nothing left to turn back on
            }
            if (change.Gro && Set(s, change.Interface, ETHTOOL_SGRO, 1) is var e && e != 0)
            {
                why = $"'{change.Interface}': generic-receive-offload not turned back on: {Errno.Describe(e)}";
            }
            if (change.Lro && Get(s, change.Interface, ETHTOOL_GFLAGS, out uint flags) == 0
                && Set(s, change.Interface, ETHTOOL_SFLAGS, flags | ETH_FLAG_LRO) is var f && f != 0)
            {
                why = (why is null ? "" : why + "; ") + $"'{change.Interface}': large-receive-offload not turned back on: {Errno.Describe(f)}";
            }
            return why;
        }
        finally
        {
            LibC.close(s);
        }
    }

    // A packet socket of protocol 0 receives nothing; it is only a handle for the interface ioctls.
    private static int OpenSocket(string interfaceName, string what)
    {
        int s = LibC.socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
        {
            Errno.ThrowLast($"socket for {what} on '{interfaceName}'");
        }
        return s;
    }

    private static IfReq Request(string interfaceName)
    {
        IfReq req = default;
        int n = System.Text.Encoding.UTF8.GetBytes(interfaceName, new Span<byte>(req.Name, IFNAMSIZ - 1));
        req.Name[n] = 0;
        return req;
    }

    // Returns 0 or the errno.
    private static int Get(int s, string interfaceName, uint cmd, out uint value)
    {
        EthtoolValue v = new() { Cmd = cmd };
        IfReq req = Request(interfaceName);
        req.Data = &v;
        int e = LibC.ioctl(s, SIOCETHTOOL, &req) == 0 ? 0 : LibC.errno;
        value = v.Data;
        return e;
    }

    private static int Set(int s, string interfaceName, uint cmd, uint value)
    {
        EthtoolValue v = new() { Cmd = cmd, Data = value };
        IfReq req = Request(interfaceName);
        req.Data = &v;
        return LibC.ioctl(s, SIOCETHTOOL, &req) == 0 ? 0 : LibC.errno;
    }
}

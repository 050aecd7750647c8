namespace Natd.Dataplane.Io.Native;

/// <summary>Linux constants from the uapi headers (linux/if_packet.h, linux/if_ether.h, asm-generic).</summary>
internal static class Constants
{
    // Socket families, types, levels.
    internal const int AF_PACKET = 17;
    internal const int SOCK_RAW = 3;
    internal const int SOCK_DGRAM = 2;
    internal const int SOCK_CLOEXEC = 0x80000;
    internal const int SOL_SOCKET = 1;
    internal const int SOL_PACKET = 263;

    /// <summary>Every protocol, for sll_protocol (host order here; bind wants it in network order).</summary>
    internal const ushort ETH_P_ALL = 0x0003;

    // SOL_PACKET options (linux/if_packet.h).
    internal const int PACKET_RX_RING = 5;
    internal const int PACKET_STATISTICS = 6;
    internal const int PACKET_VERSION = 10;
    internal const int PACKET_TX_RING = 13;
    internal const int PACKET_LOSS = 14;
    internal const int PACKET_QDISC_BYPASS = 20;
    internal const int PACKET_IGNORE_OUTGOING = 23;
    internal const int PACKET_FANOUT = 18;
    internal const int PACKET_FANOUT_HASH = 0;

    // tpacket_versions.
    internal const int TPACKET_V1 = 0;
    internal const int TPACKET_V2 = 1;
    internal const int TPACKET_V3 = 2;

    /// <summary>TPACKET_ALIGNMENT: ring frames and headers are aligned to 16 bytes.</summary>
    internal const int TPACKET_ALIGNMENT = 16;

    // RX status bits (tp_status, block_status).
    internal const uint TP_STATUS_KERNEL = 0;
    internal const uint TP_STATUS_USER = 1;
    internal const uint TP_STATUS_COPY = 2;
    internal const uint TP_STATUS_LOSING = 4;
    internal const uint TP_STATUS_CSUMNOTREADY = 8;
    internal const uint TP_STATUS_VLAN_VALID = 16;
    internal const uint TP_STATUS_BLK_TMO = 32;
    internal const uint TP_STATUS_CSUM_VALID = 128;

    // TX status values.
    internal const uint TP_STATUS_AVAILABLE = 0;
    internal const uint TP_STATUS_SEND_REQUEST = 1;
    internal const uint TP_STATUS_SENDING = 2;
    internal const uint TP_STATUS_WRONG_FORMAT = 4;

    // sll_pkttype values.
    internal const byte PACKET_HOST = 0;
    internal const byte PACKET_OUTGOING = 4;

    // mmap.
    internal const int PROT_READ = 1;
    internal const int PROT_WRITE = 2;
    internal const int MAP_SHARED = 1;

    // poll.
    internal const short POLLIN = 0x001;
    internal const short POLLERR = 0x008;

    // send flags.
    internal const int MSG_DONTWAIT = 0x40;

    // Interface ioctls (linux/sockios.h) and flags (linux/if.h).
    internal const uint SIOCGIFFLAGS = 0x8913;
    internal const uint SIOCSIFFLAGS = 0x8914;
    internal const uint SIOCGIFHWADDR = 0x8927;
    internal const short IFF_UP = 0x1;
    internal const int IFNAMSIZ = 16;

    // open(2) and setns(2).
    internal const int O_RDONLY = 0;
    internal const int O_CLOEXEC = 0x80000;
    internal const int CLONE_NEWNET = 0x40000000;

    // errno values used for decisions (asm-generic/errno*.h).
    internal const int EPERM = 1;
    internal const int ENOENT = 2;
    internal const int EINTR = 4;
    internal const int EAGAIN = 11;
    internal const int ENOMEM = 12;
    internal const int EACCES = 13;
    internal const int EBUSY = 16;
    internal const int ENODEV = 19;
    internal const int EINVAL = 22;
    internal const int ENETDOWN = 100;
    internal const int ENXIO = 6;
    internal const int ENOPROTOOPT = 92;
    internal const int EAFNOSUPPORT = 97;
    internal const int ENOBUFS = 105;
    internal const int EMSGSIZE = 90;

    // AF_XDP (linux/if_xdp.h): address family, socket level and options.
    internal const int AF_XDP = 44;
    internal const int SOL_XDP = 283;
    internal const int XDP_MMAP_OFFSETS = 1;
    internal const int XDP_RX_RING = 2;
    internal const int XDP_TX_RING = 3;
    internal const int XDP_UMEM_REG = 4;
    internal const int XDP_UMEM_FILL_RING = 5;
    internal const int XDP_UMEM_COMPLETION_RING = 6;
    internal const int XDP_STATISTICS = 7;

    // sockaddr_xdp.sxdp_flags.
    internal const ushort XDP_SHARED_UMEM = 1 << 0;
    internal const ushort XDP_COPY = 1 << 1;
    internal const ushort XDP_ZEROCOPY = 1 << 2;
    internal const ushort XDP_USE_NEED_WAKEUP = 1 << 3;

    /// <summary>Ring flags bit: the kernel wants a system call (sendto for TX, poll/recvfrom for the fill ring) to make progress.</summary>
    internal const uint XDP_RING_NEED_WAKEUP = 1 << 0;

    // mmap page offsets of the four rings.
    internal const long XDP_PGOFF_RX_RING = 0;
    internal const long XDP_PGOFF_TX_RING = 0x80000000;
    internal const long XDP_UMEM_PGOFF_FILL_RING = 0x100000000;
    internal const long XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000;

    /// <summary>Bytes the kernel reserves before packet data in each UMEM chunk it fills (XDP_PACKET_HEADROOM).</summary>
    internal const int XDP_PACKET_HEADROOM = 256;

    internal const int MAP_POPULATE = 0x8000;

    // XDP attach flags (linux/if_link.h) and actions (linux/bpf.h).
    internal const uint XDP_FLAGS_SKB_MODE = 1 << 1;
    internal const uint XDP_FLAGS_DRV_MODE = 1 << 2;
    internal const int XDP_PASS = 2;

    // bpf(2) commands, map and program types, attach type (linux/bpf.h).
    internal const int BPF_MAP_CREATE = 0;
    internal const int BPF_MAP_UPDATE_ELEM = 2;
    internal const int BPF_PROG_LOAD = 5;
    internal const int BPF_LINK_CREATE = 28;
    internal const uint BPF_MAP_TYPE_XSKMAP = 17;
    internal const uint BPF_PROG_TYPE_XDP = 6;
    internal const uint BPF_XDP = 37;
    internal const ulong BPF_ANY = 0;
    /// <summary>src_reg of an ld_imm64 whose immediate is a map file descriptor.</summary>
    internal const byte BPF_PSEUDO_MAP_FD = 1;
    /// <summary>Helper id of bpf_redirect_map.</summary>
    internal const int BPF_FUNC_redirect_map = 51;

    /// <summary>bpf(2) system call number on x86-64.</summary>
    internal const long SYS_bpf_x64 = 321;
    /// <summary>bpf(2) system call number on arm64 (asm-generic).</summary>
    internal const long SYS_bpf_arm64 = 280;

    // More errno values for AF_XDP and bpf decisions.
    internal const int EBADF = 9;
    internal const int EEXIST = 17;
    internal const int ENOSYS = 38;
    internal const int EOPNOTSUPP = 95;
}

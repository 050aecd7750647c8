namespace Natd.Dataplane.Io.Native;

// natd's own constants: only those Tmds.LibC 0.5.0 does not provide (docs/architecture.md,
// "Native interop"). Socket families, levels and SOL_PACKET options, mmap, poll, send flags,
// interface ioctls, open/setns flags and errno values come from Tmds.Linux.LibC (48 of the 102
// natd once declared). What stays, and why:
// - ETH_P_ALL (linux/if_ether.h), PACKET_FANOUT_HASH, the tpacket versions, TPACKET_ALIGNMENT and
//   the TP_STATUS_* ring bits (linux/if_packet.h): Tmds.LibC has the SOL_PACKET options but not the
//   PACKET_MMAP ring protocol (TPACKET_V3) built on them.
// - IFF_UP and IFNAMSIZ (linux/if.h): Tmds.LibC has the SIOC* ioctls but not struct ifreq's header.
// - SIOCETHTOOL (linux/sockios.h) and the ETHTOOL_* commands natd sends through it
//   (linux/ethtool.h): Tmds.LibC has neither.
// - AF_XDP, SOL_XDP, the XDP_* options, flags and ring offsets (linux/if_xdp.h) and the bpf(2)
//   commands, types and system call numbers (linux/bpf.h, asm/unistd.h): Tmds.LibC covers neither.
// Tmds.LibC's constants are properties (a value per architecture), not C# constants, so code that
// needs a constant expression (a switch or an is-pattern) compares with == instead.

/// <summary>Linux constants from the uapi headers that Tmds.LibC lacks (linux/if_packet.h, linux/if.h, linux/ethtool.h, linux/if_xdp.h, linux/bpf.h).</summary>
internal static class Constants
{
    /// <summary>Every protocol, for sll_protocol (host order here; bind wants it in network order).</summary>
    internal const ushort ETH_P_ALL = 0x0003;

    // SOL_PACKET options (linux/if_packet.h).
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

    // Interface flags and name length (linux/if.h).
    internal const short IFF_UP = 0x1;
    internal const short IFF_RUNNING = 0x40;
    internal const int IFNAMSIZ = 16;

    /// <summary>The ethtool ioctl (linux/sockios.h).</summary>
    internal const int SIOCETHTOOL = 0x8946;

    // ethtool ioctl commands and flags (linux/ethtool.h), for SIOCETHTOOL: receive coalescing.
    internal const uint ETHTOOL_GFLAGS = 0x25;
    internal const uint ETHTOOL_SFLAGS = 0x26;
    internal const uint ETHTOOL_GGRO = 0x2b;
    internal const uint ETHTOOL_SGRO = 0x2c;
    internal const uint ETHTOOL_GCHANNELS = 0x3c;
    internal const uint ETH_FLAG_LRO = 1u << 15;

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
}

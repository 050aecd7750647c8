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
}

using System.Runtime.InteropServices;

namespace Natd.Dataplane.Io.Native;

// Kernel structs with explicit offsets as laid out on Linux (LP64). Sizes are pinned by tests.
// Only those Tmds.LibC 0.5.0 does not provide (docs/architecture.md, "Native interop"); sockaddr_ll,
// pollfd and cpu_set_t are Tmds.Linux's. What stays, and why:
// - the TPACKET_V3 ring structs (tpacket_req3, tpacket3_hdr, tpacket2_hdr, the block descriptor,
//   tpacket_stats_v3): Tmds.LibC has the SOL_PACKET options but not the PACKET_MMAP ring layout;
// - struct ifreq (linux/if.h): not in Tmds.LibC;
// - the AF_XDP structs (sockaddr_xdp, xdp_umem_reg, xdp_mmap_offsets, xdp_desc, xdp_statistics)
//   and the bpf_attr variants for bpf(2): Tmds.LibC covers neither AF_XDP nor BPF.

/// <summary>struct tpacket_req3 (linux/if_packet.h), 28 bytes: ring geometry for PACKET_RX_RING/PACKET_TX_RING with TPACKET_V3.</summary>
[StructLayout(LayoutKind.Explicit, Size = 28)]
internal struct TpacketReq3
{
    [FieldOffset(0)] public uint BlockSize;
    [FieldOffset(4)] public uint BlockCount;
    [FieldOffset(8)] public uint FrameSize;
    [FieldOffset(12)] public uint FrameCount;
    /// <summary>Milliseconds after which the kernel hands a partly filled block to user space (RX only).</summary>
    [FieldOffset(16)] public uint RetireBlockTimeout;
    [FieldOffset(20)] public uint SizeOfPriv;
    [FieldOffset(24)] public uint FeatureRequestWord;
}

/// <summary>struct tpacket3_hdr (linux/if_packet.h), 48 bytes: one frame in a V3 ring.</summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal struct Tpacket3Hdr
{
    [FieldOffset(0)] public uint NextOffset;
    [FieldOffset(4)] public uint Sec;
    [FieldOffset(8)] public uint Nsec;
    [FieldOffset(12)] public uint SnapLen;
    [FieldOffset(16)] public uint Len;
    [FieldOffset(20)] public uint Status;
    [FieldOffset(24)] public ushort Mac;
    [FieldOffset(26)] public ushort Net;
    [FieldOffset(28)] public uint RxHash;
    [FieldOffset(32)] public uint VlanTci;
    [FieldOffset(36)] public ushort VlanTpid;
}

/// <summary>struct tpacket2_hdr (linux/if_packet.h), 32 bytes: one frame in a V2 ring (declared for completeness and tools).</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct Tpacket2Hdr
{
    [FieldOffset(0)] public uint Status;
    [FieldOffset(4)] public uint Len;
    [FieldOffset(8)] public uint SnapLen;
    [FieldOffset(12)] public ushort Mac;
    [FieldOffset(14)] public ushort Net;
    [FieldOffset(16)] public uint Sec;
    [FieldOffset(20)] public uint Nsec;
    [FieldOffset(24)] public ushort VlanTci;
    [FieldOffset(26)] public ushort VlanTpid;
}

/// <summary>struct tpacket_bd_ts, 8 bytes (seconds and nanoseconds in a V3 ring).</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
internal struct TpacketBdTs
{
    [FieldOffset(0)] public uint Sec;
    [FieldOffset(4)] public uint Nsec;
}

/// <summary>struct tpacket_hdr_v1, 40 bytes: the header of one V3 RX block.</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
internal struct TpacketHdrV1
{
    [FieldOffset(0)] public uint BlockStatus;
    [FieldOffset(4)] public uint NumPkts;
    [FieldOffset(8)] public uint OffsetToFirstPkt;
    [FieldOffset(12)] public uint BlockLength;
    [FieldOffset(16)] public ulong SeqNum;
    [FieldOffset(24)] public TpacketBdTs FirstPacketTime;
    [FieldOffset(32)] public TpacketBdTs LastPacketTime;
}

/// <summary>struct tpacket_block_desc, 48 bytes: version, private area offset, then the V1 block header.</summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal struct TpacketBlockDesc
{
    [FieldOffset(0)] public uint Version;
    [FieldOffset(4)] public uint OffsetToPriv;
    [FieldOffset(8)] public TpacketHdrV1 Hdr;
}

/// <summary>struct tpacket_stats_v3, 12 bytes (PACKET_STATISTICS with TPACKET_V3; reading it resets the kernel's counters).</summary>
[StructLayout(LayoutKind.Explicit, Size = 12)]
internal struct TpacketStatsV3
{
    [FieldOffset(0)] public uint Packets;
    [FieldOffset(4)] public uint Drops;
    [FieldOffset(8)] public uint FreezeQueueCount;
}

/// <summary>struct ifreq (linux/if.h), 40 bytes: the name then a union (hardware address, flags, MTU or a data pointer).</summary>
[StructLayout(LayoutKind.Explicit, Size = 40)]
internal unsafe struct IfReq
{
    [FieldOffset(0)] public fixed byte Name[16];
    /// <summary>ifr_hwaddr.sa_family (ARPHRD_*).</summary>
    [FieldOffset(16)] public ushort HwAddrFamily;
    /// <summary>ifr_hwaddr.sa_data: the MAC address in its first 6 bytes.</summary>
    [FieldOffset(18)] public fixed byte HwAddrData[14];
    /// <summary>ifr_flags (IFF_*), overlapping the hardware address.</summary>
    [FieldOffset(16)] public short Flags;
    /// <summary>ifr_addr's sin_addr (SIOCGIFCONF), network order, overlapping the hardware address.</summary>
    [FieldOffset(20)] public uint Ipv4Address;
    /// <summary>ifr_mtu (SIOCGIFMTU), overlapping the hardware address.</summary>
    [FieldOffset(16)] public int Mtu;
    /// <summary>ifr_data (SIOCETHTOOL): the ethtool command's buffer.</summary>
    [FieldOffset(16)] public void* Data;
}

/// <summary>struct ifconf (linux/if.h), 16 bytes: SIOCGIFCONF's buffer of <see cref="IfReq"/> (each an interface label and an IPv4 address).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal unsafe struct IfConf
{
    /// <summary>ifc_len: the buffer's bytes in, the bytes filled out.</summary>
    [FieldOffset(0)] public int Length;
    /// <summary>ifc_buf.</summary>
    [FieldOffset(8)] public void* Buffer;
}

/// <summary>struct ethtool_channels (linux/ethtool.h), 36 bytes: a device's queue counts (ETHTOOL_GCHANNELS).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct EthtoolChannels
{
    public uint Cmd;
    public uint MaxRx;
    public uint MaxTx;
    public uint MaxOther;
    public uint MaxCombined;
    public uint RxCount;
    public uint TxCount;
    public uint OtherCount;
    public uint CombinedCount;
}

/// <summary>struct ethtool_value (linux/ethtool.h), 8 bytes: a command and one 32-bit value (ETHTOOL_GGRO, ETHTOOL_SFLAGS...).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct EthtoolValue
{
    public uint Cmd;
    public uint Data;
}

/// <summary>struct sockaddr_xdp (linux/if_xdp.h), 16 bytes: bind an AF_XDP socket to one queue of one interface.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct SockAddrXdp
{
    [FieldOffset(0)] public ushort Family;
    /// <summary>XDP_COPY, XDP_ZEROCOPY, XDP_USE_NEED_WAKEUP, XDP_SHARED_UMEM.</summary>
    [FieldOffset(2)] public ushort Flags;
    [FieldOffset(4)] public uint IfIndex;
    [FieldOffset(8)] public uint QueueId;
    [FieldOffset(12)] public uint SharedUmemFd;
}

/// <summary>struct xdp_umem_reg (linux/if_xdp.h), 32 bytes: the packet buffer area registered with XDP_UMEM_REG.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct XdpUmemReg
{
    [FieldOffset(0)] public ulong Addr;
    [FieldOffset(8)] public ulong Len;
    [FieldOffset(16)] public uint ChunkSize;
    [FieldOffset(20)] public uint Headroom;
    [FieldOffset(24)] public uint Flags;
    [FieldOffset(28)] public uint TxMetadataLen;
}

/// <summary>struct xdp_ring_offset, 32 bytes: where a ring's producer, consumer, descriptors and flags sit in its mapping.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct XdpRingOffset
{
    [FieldOffset(0)] public ulong Producer;
    [FieldOffset(8)] public ulong Consumer;
    [FieldOffset(16)] public ulong Desc;
    [FieldOffset(24)] public ulong Flags;
}

/// <summary>struct xdp_mmap_offsets, 128 bytes (XDP_MMAP_OFFSETS): the RX, TX, fill and completion ring layouts.</summary>
[StructLayout(LayoutKind.Explicit, Size = 128)]
internal struct XdpMmapOffsets
{
    [FieldOffset(0)] public XdpRingOffset Rx;
    [FieldOffset(32)] public XdpRingOffset Tx;
    [FieldOffset(64)] public XdpRingOffset Fill;
    [FieldOffset(96)] public XdpRingOffset Completion;
}

/// <summary>struct xdp_desc, 16 bytes: one RX or TX ring entry (a UMEM address and a length).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct XdpDesc
{
    [FieldOffset(0)] public ulong Addr;
    [FieldOffset(8)] public uint Len;
    [FieldOffset(12)] public uint Options;
}

/// <summary>struct xdp_statistics, 48 bytes (XDP_STATISTICS): cumulative, not reset by reading.</summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal struct XdpStatistics
{
    [FieldOffset(0)] public ulong RxDropped;
    [FieldOffset(8)] public ulong RxInvalidDescs;
    [FieldOffset(16)] public ulong TxInvalidDescs;
    [FieldOffset(24)] public ulong RxRingFull;
    [FieldOffset(32)] public ulong RxFillRingEmptyDescs;
    [FieldOffset(40)] public ulong TxRingEmptyDescs;
}

/// <summary>union bpf_attr for BPF_MAP_CREATE (the leading fields, 48 bytes; the kernel zero-extends a shorter attr).</summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
internal unsafe struct BpfMapCreateAttr
{
    [FieldOffset(0)] public uint MapType;
    [FieldOffset(4)] public uint KeySize;
    [FieldOffset(8)] public uint ValueSize;
    [FieldOffset(12)] public uint MaxEntries;
    [FieldOffset(16)] public uint MapFlags;
    [FieldOffset(20)] public uint InnerMapFd;
    [FieldOffset(24)] public uint NumaNode;
    /// <summary>BPF_OBJ_NAME_LEN (16) bytes, NUL-terminated: letters, digits, '_' and '.'.</summary>
    [FieldOffset(28)] public fixed byte MapName[16];
}

/// <summary>union bpf_attr for BPF_MAP_*_ELEM, 32 bytes: key and value are user pointers.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
internal struct BpfMapElemAttr
{
    [FieldOffset(0)] public uint MapFd;
    [FieldOffset(8)] public ulong Key;
    [FieldOffset(16)] public ulong Value;
    [FieldOffset(24)] public ulong Flags;
}

/// <summary>union bpf_attr for BPF_PROG_LOAD (the fields up to expected_attach_type, 72 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 72)]
internal unsafe struct BpfProgLoadAttr
{
    [FieldOffset(0)] public uint ProgType;
    [FieldOffset(4)] public uint InsnCount;
    /// <summary>Pointer to struct bpf_insn[InsnCount] (8 bytes each).</summary>
    [FieldOffset(8)] public ulong Insns;
    /// <summary>Pointer to a NUL-terminated license string.</summary>
    [FieldOffset(16)] public ulong License;
    [FieldOffset(24)] public uint LogLevel;
    [FieldOffset(28)] public uint LogSize;
    [FieldOffset(32)] public ulong LogBuf;
    [FieldOffset(40)] public uint KernVersion;
    [FieldOffset(44)] public uint ProgFlags;
    [FieldOffset(48)] public fixed byte ProgName[16];
    [FieldOffset(64)] public uint ProgIfIndex;
    [FieldOffset(68)] public uint ExpectedAttachType;
}

/// <summary>union bpf_attr for BPF_LINK_CREATE (the common leading fields, 16 bytes).</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct BpfLinkCreateAttr
{
    [FieldOffset(0)] public uint ProgFd;
    /// <summary>For XDP, the interface index.</summary>
    [FieldOffset(4)] public uint TargetIfIndex;
    [FieldOffset(8)] public uint AttachType;
    /// <summary>For XDP, XDP_FLAGS_* (mode).</summary>
    [FieldOffset(12)] public uint Flags;
}

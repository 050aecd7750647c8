using System.Runtime.InteropServices;

namespace Natd.Dataplane.Io.Native;

// Kernel structs with explicit offsets as laid out on Linux (LP64). Sizes are pinned by tests.

/// <summary>struct sockaddr_ll (linux/if_packet.h), 20 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 20)]
internal unsafe struct SockAddrLl
{
    [FieldOffset(0)] public ushort Family;
    /// <summary>Network byte order.</summary>
    [FieldOffset(2)] public ushort Protocol;
    [FieldOffset(4)] public int IfIndex;
    [FieldOffset(8)] public ushort HaType;
    [FieldOffset(10)] public byte PktType;
    [FieldOffset(11)] public byte HaLen;
    [FieldOffset(12)] public fixed byte Addr[8];
}

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

/// <summary>struct pollfd, 8 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 8)]
internal struct PollFd
{
    [FieldOffset(0)] public int Fd;
    [FieldOffset(4)] public short Events;
    [FieldOffset(6)] public short REvents;
}

/// <summary>struct ifreq (linux/if.h), 40 bytes: the name then a union (hardware address or flags).</summary>
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
}

using System.Runtime.InteropServices;
using Natd.Dataplane.Io.Native;
using Tmds.Linux;
using static Natd.Dataplane.Io.Native.Constants;
using static Tmds.Linux.LibC;

namespace Natd.Dataplane.Io;

/// <summary>
/// The kernel side of an AF_XDP port, built without libbpf: an XSKMAP (queue index to socket) and
/// a six-instruction XDP program that redirects every frame of a queue to the socket in the map
/// and passes the frame to the kernel stack when the queue has no socket
/// (<c>bpf_redirect_map(&amp;xsks, ctx->rx_queue_index, XDP_PASS)</c>, the program libxdp loads by default).
/// The program is attached through a BPF link (BPF_LINK_CREATE), so it is owned by a file
/// descriptor: closing it, or the process ending, detaches it; nothing stays on the interface.
/// </summary>
internal sealed unsafe class BpfXskRedirect : IDisposable
{
    private const int LogSize = 64 * 1024;

    /// <summary>
    /// XSKMAP entries at least (queues 0..63, natd's worker limit): sockets on further queues of the
    /// interface join this program (<see cref="Join"/>), as an interface takes one XDP program.
    /// </summary>
    internal const uint MinMapEntries = 64;

    private int _mapFd;
    private int _linkFd;
    private int _users = 1;

    private BpfXskRedirect(int mapFd, int linkFd, XdpAttachMode mode)
    {
        _mapFd = mapFd;
        _linkFd = linkFd;
        Mode = mode;
    }

    /// <summary>The mode the program was attached in (Native or Generic, never Auto).</summary>
    public XdpAttachMode Mode { get; }

    /// <summary>The link's file descriptor (-1 once disposed).</summary>
    public int LinkFd => _linkFd;

    /// <summary>
    /// Creates the map with <paramref name="socketFd"/> at <paramref name="queueId"/>, loads the
    /// program and attaches it to <paramref name="ifIndex"/> in the calling thread's namespace.
    /// </summary>
    /// <exception cref="NativeIoException">A bpf(2) command failed; the message names it and, for a refused program, the verifier log.</exception>
    public static BpfXskRedirect Attach(int ifIndex, uint queueId, int socketFd, XdpAttachMode mode, string where, IReadOnlyList<ushort>? etherTypes = null)
    {
        int mapFd = -1;
        int progFd = -1;
        try
        {
            var mapAttr = new BpfMapCreateAttr
            {
                MapType = BPF_MAP_TYPE_XSKMAP,
                KeySize = 4,
                ValueSize = 4,
                MaxEntries = Math.Max(queueId + 1, MinMapEntries),
            };
            WriteName(mapAttr.MapName, "natd_xsks");
            mapFd = (int)Bpf(BPF_MAP_CREATE, &mapAttr, (uint)sizeof(BpfMapCreateAttr));
            if (mapFd < 0)
            {
                AfXdpErrors.ThrowLast($"bpf(BPF_MAP_CREATE) of an XSKMAP {where}");
            }

            uint key = queueId;
            uint value = (uint)socketFd;
            var elem = new BpfMapElemAttr { MapFd = (uint)mapFd, Key = (ulong)&key, Value = (ulong)&value, Flags = BPF_ANY };
            if (Bpf(BPF_MAP_UPDATE_ELEM, &elem, (uint)sizeof(BpfMapElemAttr)) < 0)
            {
                AfXdpErrors.ThrowLast($"bpf(BPF_MAP_UPDATE_ELEM) putting the socket at queue {queueId} of the XSKMAP {where}");
            }

            progFd = LoadProgram(mapFd, where, etherTypes);

            XdpAttachMode attached = mode == XdpAttachMode.Generic ? XdpAttachMode.Generic : XdpAttachMode.Native;
            int linkFd = CreateLink(progFd, ifIndex, attached);
            if (linkFd < 0 && mode == XdpAttachMode.Auto)
            {
                int nativeErrno = LibC.errno;
                if (nativeErrno != EBUSY && nativeErrno != EEXIST && nativeErrno != EPERM && nativeErrno != EACCES)
                {
                    attached = XdpAttachMode.Generic;
                    linkFd = CreateLink(progFd, ifIndex, attached);
                }
                else
                {
                    Marshal.SetLastPInvokeError(nativeErrno);
                }
            }
            if (linkFd < 0)
            {
                AfXdpErrors.ThrowLast($"bpf(BPF_LINK_CREATE) attaching the XDP program in {attached} mode {where}");
            }
            return new BpfXskRedirect(mapFd, linkFd, attached);
        }
        catch
        {
            if (mapFd >= 0)
            {
                LibC.close(mapFd);
            }
            throw;
        }
        finally
        {
            // The link holds the program; the program holds the map. Our program fd is not needed.
            if (progFd >= 0)
            {
                LibC.close(progFd);
            }
        }
    }

    /// <summary>
    /// The program as struct bpf_insn words (8 bytes: opcode, dst/src registers, offset, immediate):
    /// r2 = ctx->rx_queue_index; r1 = map; r3 = XDP_PASS; call bpf_redirect_map; exit.
    /// </summary>
    internal static ulong[] Program(int mapFd) =>
    [
        Insn(0x61, dst: 2, src: 1, off: 16, imm: 0),                       // r2 = *(u32 *)(r1 + 16): xdp_md.rx_queue_index
        Insn(0x18, dst: 1, src: BPF_PSEUDO_MAP_FD, off: 0, imm: mapFd),    // r1 = map (ld_imm64, first half)
        0,                                                                 // ld_imm64, second half (upper 32 bits: 0)
        Insn(0xb7, dst: 3, src: 0, off: 0, imm: XDP_PASS),                 // r3 = XDP_PASS: the action when the queue has no socket
        Insn(0x85, dst: 0, src: 0, off: 0, imm: BPF_FUNC_redirect_map),    // r0 = bpf_redirect_map(r1, r2, r3)
        Insn(0x95, dst: 0, src: 0, off: 0, imm: 0),                        // return r0
    ];

    /// <summary>
    /// The redirect program preceded by an EtherType filter: frames shorter than an Ethernet header
    /// or of another EtherType return XDP_PASS (the kernel keeps them: IPv6, LLDP, ...), the listed
    /// ones (host order, e.g. 0x0800 and 0x0806) go to the socket.
    /// </summary>
    internal static ulong[] FilteredProgram(int mapFd, IReadOnlyList<ushort> etherTypes)
    {
        int n = etherTypes.Count;
        var p = new List<ulong>
        {
            Insn(0x61, dst: 2, src: 1, off: 0, imm: 0),   // r2 = ctx->data
            Insn(0x61, dst: 3, src: 1, off: 4, imm: 0),   // r3 = ctx->data_end
            Insn(0xbf, dst: 4, src: 2, off: 0, imm: 0),   // r4 = r2
            Insn(0x07, dst: 4, src: 0, off: 0, imm: 14),  // r4 += 14 (Ethernet header)
            Insn(0x2d, dst: 4, src: 3, off: (short)(n + 1), imm: 0), // if r4 > r3 goto pass (verifier-required bounds check)
            Insn(0x69, dst: 4, src: 2, off: 12, imm: 0),  // r4 = *(u16 *)(r2 + 12): EtherType as stored (network order)
        };
        for (int i = 0; i < n; i++)
        {
            // Loaded little-endian, so compare with the byte-swapped value; jump to the redirect block.
            ushort wire = (ushort)((etherTypes[i] >> 8) | (etherTypes[i] << 8));
            p.Add(Insn(0x15, dst: 4, src: 0, off: (short)(n - i + 1), imm: wire));
        }
        p.Add(Insn(0xb7, dst: 0, src: 0, off: 0, imm: XDP_PASS)); // pass: r0 = XDP_PASS
        p.Add(Insn(0x95, dst: 0, src: 0, off: 0, imm: 0));        // return r0
        p.AddRange(Program(mapFd));                                // redirect
        return [.. p];
    }

    private static ulong Insn(byte code, byte dst, byte src, short off, int imm)
        => code | ((ulong)(byte)(dst | (src << 4)) << 8) | ((ulong)(ushort)off << 16) | ((ulong)(uint)imm << 32);

    private static int LoadProgram(int mapFd, string where, IReadOnlyList<ushort>? etherTypes)
    {
        ulong[] insns = etherTypes is { Count: > 0 } ? FilteredProgram(mapFd, etherTypes) : Program(mapFd);
        byte* license = stackalloc byte[] { (byte)'G', (byte)'P', (byte)'L', 0 };
        byte[] log = new byte[LogSize];
        fixed (ulong* code = insns)
        fixed (byte* logBuf = log)
        {
            var attr = new BpfProgLoadAttr
            {
                ProgType = BPF_PROG_TYPE_XDP,
                InsnCount = (uint)insns.Length,
                Insns = (ulong)code,
                License = (ulong)license,
                ExpectedAttachType = BPF_XDP,
            };
            WriteName(attr.ProgName, "natd_xsk_redir");
            int fd = (int)Bpf(BPF_PROG_LOAD, &attr, (uint)sizeof(BpfProgLoadAttr));
            if (fd >= 0)
            {
                return fd;
            }
            int e = LibC.errno;
            // Load again with the verifier log only on failure: the log explains a refusal.
            attr.LogLevel = 1;
            attr.LogSize = LogSize;
            attr.LogBuf = (ulong)logBuf;
            fd = (int)Bpf(BPF_PROG_LOAD, &attr, (uint)sizeof(BpfProgLoadAttr));
            if (fd >= 0)
            {
                return fd;
            }
            string verifier = Marshal.PtrToStringUTF8((nint)logBuf)?.Trim() ?? string.Empty;
            string what = $"bpf(BPF_PROG_LOAD) of the XDP redirect program {where}"
                + (verifier.Length > 0 ? $" (verifier: {verifier})" : string.Empty);
            AfXdpErrors.Throw(what, e);
            return -1;
        }
    }

    private static int CreateLink(int progFd, int ifIndex, XdpAttachMode mode)
    {
        var attr = new BpfLinkCreateAttr
        {
            ProgFd = (uint)progFd,
            TargetIfIndex = (uint)ifIndex,
            AttachType = BPF_XDP,
            Flags = mode == XdpAttachMode.Generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE,
        };
        return (int)Bpf(BPF_LINK_CREATE, &attr, (uint)sizeof(BpfLinkCreateAttr));
    }

    /// <summary>bpf(2) through syscall(2) (glibc has no wrapper, Tmds.LibC has no SYS_bpf): the result, or -1 with errno set.</summary>
    internal static nint Bpf(int command, void* attr, uint size)
    {
        int number = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? (int)SYS_bpf_arm64 : (int)SYS_bpf_x64;
        return (nint)(long)(ssize_t)LibC.syscall(number, command, attr, size);
    }

    private static void WriteName(byte* destination, string name)
    {
        for (int i = 0; i < name.Length && i < 15; i++)
        {
            destination[i] = (byte)name[i];
        }
    }

    /// <summary>Closes the link (detaching the program from the interface) and the map.</summary>
    /// <summary>
    /// Puts <paramref name="socketFd"/> at <paramref name="queueId"/> of this program's map, so the
    /// interface's frames on that queue reach it too (one program per interface, one socket per
    /// queue). The kernel removes the entry when the socket closes. Each Join takes a reference,
    /// which Dispose returns: the program stays attached until the last user is disposed.
    /// </summary>
    /// <exception cref="NativeIoException">The queue is beyond the map, or the update failed.</exception>
    public BpfXskRedirect Join(uint queueId, int socketFd, string where)
    {
        if (_mapFd < 0)
        {
            AfXdpErrors.Throw($"joining an XDP program that is detached {where}", EINVAL);
        }
        uint key = queueId;
        uint value = (uint)socketFd;
        var elem = new BpfMapElemAttr { MapFd = (uint)_mapFd, Key = (ulong)&key, Value = (ulong)&value, Flags = BPF_ANY };
        if (Bpf(BPF_MAP_UPDATE_ELEM, &elem, (uint)sizeof(BpfMapElemAttr)) < 0)
        {
            AfXdpErrors.ThrowLast($"bpf(BPF_MAP_UPDATE_ELEM) putting the socket at queue {queueId} of the interface's XSKMAP {where}");
        }
        Interlocked.Increment(ref _users);
        return this;
    }

    /// <summary>Returns one reference; the last detaches the program and closes the map.</summary>
    public void Dispose()
    {
        if (Interlocked.Decrement(ref _users) > 0)
        {
            return;
        }
        if (_linkFd >= 0)
        {
            LibC.close(_linkFd);
            _linkFd = -1;
        }
        if (_mapFd >= 0)
        {
            LibC.close(_mapFd);
            _mapFd = -1;
        }
    }
}

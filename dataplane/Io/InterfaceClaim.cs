using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Natd.Dataplane.Io;

/// <summary>
/// One natd's hold on an interface, so that a second natd in the same network namespace refuses it
/// instead of translating the same frames (two AF_PACKET natds each answer every frame; an AF_XDP
/// natd takes every frame from an AF_PACKET one). The hold is a listening Unix socket with an
/// abstract name, <c>natd:NAME</c>: abstract names belong to a network namespace, so natds in other
/// namespaces with the same interface names do not collide, and the kernel frees the name when the
/// process ends, however it ends.
/// </summary>
public sealed class InterfaceClaim : IDisposable
{
    private readonly Socket _socket;

    private InterfaceClaim(string interfaceName, Socket socket)
    {
        Interface = interfaceName;
        _socket = socket;
    }

    /// <summary>The interface held.</summary>
    public string Interface { get; }

    /// <summary>
    /// Takes <paramref name="interfaceName"/> for this process, in the calling thread's network
    /// namespace.
    /// </summary>
    /// <exception cref="NativeIoException">Another process holds it (EADDRINUSE; the message names its
    /// pid when the kernel tells it), or the socket could not be made.</exception>
    public static InterfaceClaim Take(string interfaceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(interfaceName);
        var endpoint = new UnixDomainSocketEndPoint("\0natd:" + interfaceName);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(endpoint);
            socket.Listen(8); // never accepted: a newcomer's connect tells it who holds the name
            return new InterfaceClaim(interfaceName, socket);
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket.Dispose();
            int? pid = HolderOf(endpoint);
            throw new NativeIoException(
                $"{interfaceName} is served by another natd in this network namespace{(pid is int p ? $" (pid {p})" : "")}: two would translate the same frames; stop it first",
                (int)SocketError.AddressAlreadyInUse);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new NativeIoException($"claiming {interfaceName} (an abstract Unix socket) failed: {e.Message}", e.ErrorCode);
        }
    }

    // The listener's pid, from the credentials the kernel gives a connected Unix socket (SO_PEERCRED).
    private static int? HolderOf(UnixDomainSocketEndPoint endpoint)
    {
        try
        {
            using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            probe.Connect(endpoint);
            Span<byte> cred = stackalloc byte[12]; // struct ucred: pid, uid, gid
            const int SolSocket = 1, SoPeerCred = 17;
            return probe.GetRawSocketOption(SolSocket, SoPeerCred, cred) >= 4 ? MemoryMarshal.Read<int>(cred) : null;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    /// <summary>Lets the interface go.</summary>
    public void Dispose() => _socket.Dispose();
}

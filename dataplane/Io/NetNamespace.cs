using System.Runtime.ExceptionServices;
using System.Text;
using Natd.Dataplane.Io.Native;
using Tmds.Linux;
using static Tmds.Linux.LibC;

namespace Natd.Dataplane.Io;

/// <summary>
/// Runs code inside a named network namespace (one made by <c>ip netns add NAME</c>, which
/// bind-mounts it at /var/run/netns/NAME). A socket keeps the namespace it was created in, so
/// ports opened this way stay there while the rest of the process runs in its own namespace.
/// </summary>
public static unsafe class NetNamespace
{
    /// <summary>Where iproute2 keeps named network namespaces.</summary>
    public const string NetnsDirectory = "/var/run/netns";

    /// <summary>
    /// Runs <paramref name="action"/> on a new dedicated thread that first enters the network
    /// namespace <paramref name="namespaceName"/> with setns(CLONE_NEWNET); waits for it and
    /// returns its result. The thread ends afterwards, so no pooled thread is left in the namespace.
    /// </summary>
    /// <exception cref="ArgumentException">The name is empty or contains '/'.</exception>
    /// <exception cref="NativeIoException">The namespace cannot be opened or entered (missing, or no CAP_SYS_ADMIN).</exception>
    /// <remarks>An exception thrown by <paramref name="action"/> is rethrown with its original stack trace.</remarks>
    public static T RunIn<T>(string namespaceName, Func<T> action)
    {
        ArgumentException.ThrowIfNullOrEmpty(namespaceName);
        ArgumentNullException.ThrowIfNull(action);
        if (namespaceName.Contains('/', StringComparison.Ordinal) || namespaceName is "." or "..")
        {
            throw new ArgumentException($"'{namespaceName}' is not a namespace name", nameof(namespaceName));
        }

        string path = Path.Combine(NetnsDirectory, namespaceName);
        T result = default!;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                Enter(path, namespaceName);
                result = action();
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
        })
        {
            IsBackground = true,
            Name = $"netns {namespaceName}",
        };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result;
    }

    /// <summary>Runs <paramref name="action"/> in the namespace, as <see cref="RunIn{T}"/> does.</summary>
    /// <exception cref="NativeIoException">The namespace cannot be opened or entered.</exception>
    public static void RunIn(string namespaceName, Action action)
    {
        ArgumentNullException.ThrowIfNull(action);
        RunIn<bool>(namespaceName, () =>
        {
            action();
            return true;
        });
    }

    private static void Enter(string path, string name)
    {
        // Tmds.LibC's open takes a NUL-terminated path: once per namespace entry, not per packet.
        byte[] pathBytes = Encoding.UTF8.GetBytes(path + "\0");
        int fd;
        fixed (byte* p = pathBytes)
        {
            fd = LibC.open(p, O_RDONLY | O_CLOEXEC, default);
        }
        if (fd < 0)
        {
            Errno.ThrowLast($"opening network namespace '{name}' ({path})");
        }
        try
        {
            if (LibC.setns(fd, CLONE_NEWNET) != 0)
            {
                Errno.ThrowLast($"setns into network namespace '{name}'");
            }
        }
        finally
        {
            LibC.close(fd);
        }
    }
}

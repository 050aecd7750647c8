using Microsoft.Extensions.Hosting;

namespace Natd.Control.Api;

/// <summary>
/// The lifetime of every host natd builds (the actor system's, the control API's): no console
/// hooks, no signal handlers and no AppDomain.ProcessExit handler; the host starts and stops when
/// its owner says so. `natd run` handles SIGTERM, SIGINT and SIGHUP itself, and it must be the
/// only one: a host's default lifetime (ConsoleLifetime) also answers SIGTERM, and when it lets
/// the process exit, the exit stops the actor system while natd is still saving its state snapshot.
/// </summary>
internal sealed class CallerLifetime : IHostLifetime
{
    /// <inheritdoc />
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

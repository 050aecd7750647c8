using Natd.Dataplane.Sessions;

namespace Natd.Dataplane.Alg;

/// <summary>The ALG handlers natd ships, by <see cref="AlgKind"/>: what the ALG supervisor starts a helper for.</summary>
public static class AlgRegistry
{
    /// <summary>
    /// Every ALG with a payload handler, and a factory for a fresh handler (one per helper
    /// incarnation: a restart starts from empty state). All are started whatever the configuration
    /// says, so a reload can switch an ALG on or off (<see cref="AlgSettings.Classify"/> decides
    /// per new connection).
    /// </summary>
    public static IReadOnlyList<(AlgKind Kind, Func<IAlgHandler> Factory)> Handlers { get; } =
    [
        (AlgKind.Ftp, () => new Ftp.FtpHandler()),
        (AlgKind.Irc, () => new Irc.IrcHandler()),
        (AlgKind.Tftp, () => new Tftp.TftpHandler()),
        (AlgKind.Pptp, () => new Pptp.PptpHandler()),
    ];
}

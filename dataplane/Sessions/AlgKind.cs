namespace Natd.Dataplane.Sessions;

/// <summary>Application-level gateways natd runs, like the ip_masq_* modules (<c>insmod ip_masq_ftp ports=21,2121</c>).</summary>
public enum AlgKind : byte
{
    /// <summary>Not an ALG flow.</summary>
    None = 0,
    /// <summary>FTP control (RFC 959 PORT/PASV, RFC 2428 EPRT/EPSV).</summary>
    Ftp = 1,
    /// <summary>IRC client-to-client (CTCP DCC SEND and DCC CHAT offers).</summary>
    Irc = 2,
    /// <summary>TFTP (RFC 1350): the server answers from a new port.</summary>
    Tftp = 3,
    /// <summary>PPTP control (RFC 2637): Call IDs of the GRE version 1 tunnel.</summary>
    Pptp = 4,
}

namespace Natd.Control.Lab;

/// <summary>Who plays the gateway in the lab topology.</summary>
public enum GatewayMode
{
    /// <summary>
    /// natd owns the gateway: the kernel in the gateway namespace holds no address on natin/natout
    /// and does not forward (ip_forward=0); natd attaches with AF_PACKET and answers ARP itself.
    /// </summary>
    Userspace,

    /// <summary>
    /// The kernel is the gateway: 10.0.0.1/24 and 198.51.100.1/24 on natin/natout, ip_forward=1 and
    /// an nftables masquerade on oif natout. The stand-in and comparison baseline for natd.
    /// </summary>
    KernelNat,
}

/// <summary>How <see cref="LabTopology.Create(LabOptions)"/> builds the lab.</summary>
public sealed record LabOptions
{
    /// <summary>
    /// Namespace name prefix; names are <c>{Prefix}-in-XXXX</c>, <c>{Prefix}-gw-XXXX</c> and
    /// <c>{Prefix}-out-XXXX</c> with a random 4-hex-digit suffix. Default "natd".
    /// </summary>
    public string Prefix { get; init; } = LabTopology.DefaultPrefix;

    /// <summary>Which gateway the topology is prepared for. Default <see cref="GatewayMode.Userspace"/>.</summary>
    public GatewayMode Mode { get; init; } = GatewayMode.Userspace;

    /// <summary>
    /// Turn transmit checksum offload off on the two hosts' veths (<c>ethtool -K eth0 tx off</c>), so
    /// frames reach the gateway with finished checksums. Default false: frames may carry partial
    /// checksums (TP_STATUS_CSUMNOTREADY on AF_PACKET), which the gateway must complete.
    /// </summary>
    public bool DisableTxChecksumOffload { get; init; }

    /// <summary>
    /// Active RX/TX queues per veth end, 1..<see cref="LabTopology.MaxQueues"/> (the veths are created
    /// with the maximum; <see cref="LabTopology.SetQueues"/> changes it later). Match natd's workers
    /// when it runs on AF_XDP. Default 1.
    /// </summary>
    public int Queues { get; init; } = 1;
}

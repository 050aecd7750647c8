namespace Natd.Dataplane.Packets;

/// <summary>An inclusive port range, host order.</summary>
/// <param name="Low">First port.</param>
/// <param name="High">Last port.</param>
public readonly record struct PortRange(ushort Low, ushort High)
{
    /// <summary>True when <paramref name="port"/> (host order) lies in the range.</summary>
    public bool Contains(ushort port) => port >= Low && port <= High;

    /// <summary>Number of ports.</summary>
    public int Count => High - Low + 1;

    /// <inheritdoc />
    public override string ToString() => Low == High ? $"{Low}" : $"{Low}-{High}";
}

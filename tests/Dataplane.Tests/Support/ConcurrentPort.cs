using System.Collections.Concurrent;
using Natd.Dataplane.Io;
using Natd.Dataplane.Packets;

namespace Natd.Tests.Support;

/// <summary>An IPacketPort a test thread can feed and drain while a poller thread owns it (MemoryPort is single-threaded by contract).</summary>
public sealed class ConcurrentPort(string name, MacAddress mac) : IPacketPort
{
    private readonly ConcurrentQueue<byte[]> _rx = new();
    private readonly ConcurrentQueue<byte[]> _tx = new();
    private PortStats _stats;

    public string Name { get; } = name;
    public MacAddress Mac { get; } = mac;
    public int PollDescriptor => -1;
    public PortStats Stats => _stats;

    public void Inject(byte[] frame) => _rx.Enqueue(frame);

    public bool TryTake(out byte[] frame) => _tx.TryDequeue(out frame!);

    public int Receive(FrameBatch batch)
    {
        int n = 0;
        while (batch.Count < batch.Capacity && _rx.TryDequeue(out var f))
        {
            batch.TryAdd(f);
            n++;
        }
        _stats.RxFrames += n;
        return n;
    }

    public bool TrySend(ReadOnlySpan<byte> frame)
    {
        _tx.Enqueue(frame.ToArray());
        _stats.TxFrames++;
        return true;
    }

    public void Flush()
    {
    }

    public void Dispose()
    {
    }
}

using System.Runtime.CompilerServices;
using Natd.Dataplane.Alg;
using Natd.Tests.Support;

namespace Natd.Tests.Alg;

/// <summary>The test run's leak detector (<see cref="LeakWatch"/>) does catch a cumulation buffer that is never released.</summary>
public class AlgBufferLeakDetectorTests
{
    [Fact]
    public void The_leak_detector_reports_a_buffer_never_released()
    {
        LeakProbe.Leak();
        Assert.NotEmpty(LeakWatch.LeaksFrom(typeof(LeakProbe).FullName!.Replace('+', '.') + "."));
    }

    private static class LeakProbe
    {
        [MethodImpl(MethodImplOptions.NoInlining)]
        public static void Leak()
        {
            var b = AlgBuffers.Allocator.HeapBuffer(64);
            b.WriteBytes(new byte[8]); // an access the detector records, with this method on the stack
        }
    }
}

using System.Diagnostics;

namespace KernelDsl;

/// <summary>Waiting on NCCL and the GPU without blocking inside NCCL, so a rank that never answers costs a timeout, not a hang.</summary>
internal static class NcclPolling
{
    /// <summary>Calls <paramref name="done"/> until it returns true (then true) or <paramref name="timeout"/> has passed (then false).</summary>
    public static bool Until(Func<bool> done, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        for (var polls = 0; ; polls++)
        {
            if (done())
            {
                return true;
            }
            if (timeout != Timeout.InfiniteTimeSpan && clock.Elapsed >= timeout)
            {
                return false;
            }
            // Short waits (a step's transfer) are caught within microseconds; long ones poll once a millisecond.
            if (polls < 1000)
            {
                Thread.SpinWait(64);
            }
            else
            {
                Thread.Sleep(1);
            }
        }
    }
}

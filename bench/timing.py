"""How every peer is timed: CUDA events around each call on the current stream, warm-ups first, the median in ms.
The same as `kdsl bench` (samples/Cli/Commands/BenchCommand.cs: 3 warm-ups, the median of 20)."""


def median_ms(call, runs=20, warmup=3, before=None):
    """before, if given, runs before each call, outside the events (e.g. an L2 flush)."""
    import torch

    times = []
    for i in range(warmup + runs):
        if before is not None:
            before()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        stop.record()
        stop.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]

namespace KernelDsl.Runtime.Tests;

public class NvrtcAvailabilityTests
{
    private sealed class SkipSignal(string reason) : Exception(reason);

    private static void Skip(string reason) => throw new SkipSignal(reason);

    [Fact]
    public void Missing_nvrtc_skips_with_the_probe_trace_when_not_required()
    {
        var skipped = Assert.Throws<SkipSignal>(() => NvrtcAvailability.Decide(null, "trying 'libnvrtc.so.13': failed", required: false, Skip));

        Assert.Contains("trying 'libnvrtc.so.13': failed", skipped.Message);
        Assert.Contains(NvrtcAvailability.RequireVariable, skipped.Message);
    }

    [Fact]
    public void Missing_nvrtc_fails_with_the_probe_trace_when_required()
    {
        var failure = Assert.Throws<InvalidOperationException>(() => NvrtcAvailability.Decide(null, "trying 'libnvrtc.so.13': failed", required: true, Skip));

        Assert.Contains("KERNELDSL_REQUIRE_NVRTC=1", failure.Message);
        Assert.Contains("trying 'libnvrtc.so.13': failed", failure.Message);
    }

    [Fact]
    public void A_skip_callback_that_returns_is_an_error_not_a_silent_pass()
    {
        Assert.Throws<InvalidOperationException>(() => NvrtcAvailability.Decide(null, "trace", required: false, _ => { }));
    }

    [Fact]
    public void The_availability_answer_agrees_with_TryLoad()
    {
        Assert.Equal(NvrtcCompiler.TryLoad(out _, out _), NvrtcAvailability.IsAvailable);
    }
}

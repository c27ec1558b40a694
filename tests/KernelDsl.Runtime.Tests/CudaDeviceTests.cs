using System.Runtime.InteropServices;

namespace KernelDsl.Runtime.Tests;

public class CudaDeviceTests
{
    [Fact]
    public void TryOpen_without_a_driver_library_returns_false_with_every_name_tried()
    {
        if (NativeLibrary.TryLoad("libcuda.so.1", out var handle))
        {
            NativeLibrary.Free(handle);
            Assert.Skip("This machine has a CUDA driver library.");
        }

        var opened = CudaDevice.TryOpen(0, out var device, out var reason);

        Assert.False(opened);
        Assert.Null(device);
        Assert.StartsWith("the NVIDIA driver (libcuda.so.1) is not installed", reason);  // the line a user acts on
        Assert.Contains("libcuda.so.1", reason);
        Assert.Contains("libcuda.so'", reason);
    }

    [Fact]
    public void TryOpen_answers_without_throwing_on_any_machine()
    {
        var opened = CudaDevice.TryOpen(0, out var device, out var reason);

        Assert.Equal(opened, device is not null);
        Assert.Equal(opened, reason.Length == 0);
        device?.Dispose();
    }

    [Fact]
    public void A_negative_ordinal_is_a_programming_error()
    {
        Assert.Throws<ArgumentOutOfRangeException>("ordinal", () => CudaDevice.TryOpen(-1, out _, out _));
    }

    [Theory]
    [InlineData(90, true, true)]
    [InlineData(100, true, true)]
    [InlineData(90, false, false)]  // a driver without cuLaunchKernelEx launches plainly instead of failing at the launch
    [InlineData(89, true, false)]   // griddepcontrol needs sm_90
    [InlineData(80, false, false)]
    public void Dependent_launches_need_sm_90_and_a_driver_with_cuLaunchKernelEx(int computeCapability, bool launchKernelEx, bool dependent)
    {
        Assert.Equal(dependent, CudaDevice.DependentLaunchesOn(computeCapability, launchKernelEx));
    }
}

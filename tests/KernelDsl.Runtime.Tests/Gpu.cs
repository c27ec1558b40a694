namespace KernelDsl.Runtime.Tests;

/// <summary>Opens the GPU for a test, or skips it (fails instead when KERNELDSL_REQUIRE_GPU=1, as on the GPU machine).</summary>
internal static class Gpu
{
    public const string RequireVariable = "KERNELDSL_REQUIRE_GPU";

    public static CudaDevice OpenOrSkip()
    {
        if (CudaDevice.TryOpen(0, out var device, out var reason))
        {
            return device;
        }
        if (Environment.GetEnvironmentVariable(RequireVariable) == "1")
        {
            Assert.Fail($"{RequireVariable}=1 but no CUDA device could be opened:{Environment.NewLine}{reason}");
        }
        Assert.Skip($"No CUDA device: {reason}");
        return null!;
    }
}

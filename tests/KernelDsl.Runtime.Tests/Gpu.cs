namespace KernelDsl.Runtime.Tests;

/// <summary>
/// Opens the GPU for a test, or skips it in one line (fails instead when KERNELDSL_REQUIRE_GPU=1, as scripts/gpu-run sets).
/// Classes that need the device throughout are marked [RequiresCudaDevice] and skip as a whole before this is reached.
/// </summary>
internal static class Gpu
{
    public const string RequireVariable = KernelDsl.Testing.RequiresCudaDeviceAttribute.RequireVariable;

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
        Assert.Skip(KernelDsl.Testing.RequiresCudaDeviceAttribute.SkipReason(reason));
        return null!;
    }
}

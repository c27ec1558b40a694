using KernelDsl.Native;

namespace KernelDsl;

/// <summary>Loads and initializes the CUDA driver once per process; a failure is remembered and rethrown.</summary>
internal static class CudaDriver
{
    private static readonly Lazy<int> Version = new(Initialize);

    /// <summary>The driver's CUDA version, e.g. 13000; throws if the driver is missing or cannot initialize.</summary>
    public static int EnsureInitialized() => Version.Value;

    private static int Initialize()
    {
        var probe = NativeLibraries.CudaDriver;
        if (!probe.Succeeded)
        {
            throw new DllNotFoundException(probe.Trace);
        }
        CudaException.Check(CudaApi.cuInit(0), "Initializing the CUDA driver (cuInit)");
        CudaException.Check(CudaApi.cuDriverGetVersion(out var version), "Reading the CUDA driver version");
        return version;
    }
}

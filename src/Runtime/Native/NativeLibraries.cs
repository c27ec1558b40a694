using System.Reflection;
using System.Runtime.InteropServices;

namespace KernelDsl.Native;

/// <summary>
/// Finds the CUDA driver and NVRTC libraries by probing versioned names, and resolves the logical library
/// names used by the <c>[LibraryImport]</c> declarations to the handles found. A plain
/// <c>DllImport("nvrtc")</c> would only find an unversioned .so, which runtime-only installs lack.
/// </summary>
internal static class NativeLibraries
{
    /// <summary>Logical name of the CUDA driver library in <c>[LibraryImport]</c> declarations.</summary>
    public const string Cuda = "kerneldsl-cuda";
    /// <summary>Logical name of the NVRTC library in <c>[LibraryImport]</c> declarations.</summary>
    public const string Nvrtc = "kerneldsl-nvrtc";
    /// <summary>Environment variable naming an NVRTC file to try before the standard names.</summary>
    public const string NvrtcPathVariable = "KERNELDSL_NVRTC_PATH";

    public static readonly IReadOnlyList<string> CudaCandidates = ["libcuda.so.1", "libcuda.so"];
    public static readonly IReadOnlyList<string> NvrtcStandardCandidates =
        ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];

    private static readonly Lazy<LibraryProbeResult> CudaProbe =
        new(() => LibraryProbe.Load("CUDA driver", CudaCandidates));
    private static readonly Lazy<LibraryProbeResult> NvrtcProbe =
        new(() => LibraryProbe.Load("NVRTC", NvrtcCandidates(Environment.GetEnvironmentVariable(NvrtcPathVariable))));

    static NativeLibraries()
    {
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
    }

    /// <summary>Probes (once per process) for the CUDA driver library.</summary>
    public static LibraryProbeResult CudaDriver => CudaProbe.Value;

    /// <summary>Probes (once per process) for NVRTC.</summary>
    public static LibraryProbeResult NvrtcLibrary => NvrtcProbe.Value;

    /// <summary>The NVRTC names to try: an explicit file from the environment first, then the standard names.</summary>
    public static IReadOnlyList<string> NvrtcCandidates(string? explicitPath) =>
        string.IsNullOrWhiteSpace(explicitPath) ? NvrtcStandardCandidates : [explicitPath, .. NvrtcStandardCandidates];

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) => name switch
    {
        Cuda => CudaProbe.Value.Handle,
        Nvrtc => NvrtcProbe.Value.Handle,
        _ => 0,
    };
}

using System.Reflection;
using System.Runtime.InteropServices;

namespace KernelDsl.Native;

/// <summary>
/// Finds the CUDA driver, NVRTC and NCCL libraries by probing versioned names, and resolves the logical library
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
    /// <summary>Logical name of the NCCL library in <c>[LibraryImport]</c> declarations.</summary>
    public const string Nccl = "kerneldsl-nccl";
    /// <summary>Environment variable naming an NCCL file to try before the standard names.</summary>
    public const string NcclPathVariable = "KERNELDSL_NCCL_PATH";

    public static readonly IReadOnlyList<string> CudaCandidates = ["libcuda.so.1", "libcuda.so"];
    public static readonly IReadOnlyList<string> NvrtcStandardCandidates =
        ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];
    public static readonly IReadOnlyList<string> NcclStandardCandidates = ["libnccl.so.2", "libnccl.so"];

    private static readonly Lazy<LibraryProbeResult> CudaProbe =
        new(() => LibraryProbe.Load("CUDA driver", CudaCandidates));
    private static readonly Lazy<LibraryProbeResult> NvrtcProbe = new(() =>
    {
        var explicitPath = Environment.GetEnvironmentVariable(NvrtcPathVariable);
        foreach (var builtins in NvrtcBuiltinsBeside(explicitPath))
        {
            NativeLibrary.TryLoad(builtins, out _);
        }
        return LibraryProbe.Load("NVRTC", NvrtcCandidates(explicitPath));
    });
    private static readonly Lazy<LibraryProbeResult> NcclProbe =
        new(() => LibraryProbe.Load("NCCL", NcclCandidates(Environment.GetEnvironmentVariable(NcclPathVariable), PythonPrefixes())));

    static NativeLibraries()
    {
        NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
    }

    /// <summary>Probes (once per process) for the CUDA driver library.</summary>
    public static LibraryProbeResult CudaDriver => CudaProbe.Value;

    /// <summary>Probes (once per process) for NVRTC.</summary>
    public static LibraryProbeResult NvrtcLibrary => NvrtcProbe.Value;

    /// <summary>Probes (once per process) for NCCL.</summary>
    public static LibraryProbeResult NcclLibrary => NcclProbe.Value;

    /// <summary>The NVRTC names to try: an explicit file from the environment first, then the standard names.</summary>
    public static IReadOnlyList<string> NvrtcCandidates(string? explicitPath) => Candidates(explicitPath, NvrtcStandardCandidates);

    /// <summary>
    /// The builtins libraries (<c>libnvrtc-builtins.so.MAJOR.MINOR</c>) in the folder of an NVRTC named by path. NVRTC
    /// opens its builtins by name at compile time, which the loader finds only on its search path; loaded first from
    /// NVRTC's own folder, the name matches the library already in the process, so an NVRTC unpacked anywhere works
    /// without LD_LIBRARY_PATH. A bare file name names no folder (the loader searches for it), so it brings none.
    /// </summary>
    public static IReadOnlyList<string> NvrtcBuiltinsBeside(string? explicitPath)
    {
        var folder = string.IsNullOrWhiteSpace(explicitPath) || !explicitPath.Contains('/') ? null : Path.GetDirectoryName(Path.GetFullPath(explicitPath));
        if (folder is null || !Directory.Exists(folder))
        {
            return [];
        }
        const string Prefix = "libnvrtc-builtins.so.";
        return Directory.EnumerateFiles(folder, "libnvrtc-builtins.so*")
            .Where(f => Path.GetFileName(f) is var name && name.StartsWith(Prefix, StringComparison.Ordinal) &&
                        name[Prefix.Length..].Split('.') is [{ Length: > 0 } major, { Length: > 0 } minor] &&
                        major.All(char.IsAsciiDigit) && minor.All(char.IsAsciiDigit))
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Where pip's NCCL wheel (nvidia-nccl-cu12 or -cu13, which PyTorch installs) puts the library, under a site-packages folder.</summary>
    public const string NcclWheelFile = "nvidia/nccl/lib/libnccl.so.2";

    /// <summary>
    /// The NCCL names to try: an explicit file from the environment first, then the standard names (the system's NCCL),
    /// then pip's NCCL wheel in the site-packages of each of <paramref name="pythonPrefixes"/> where one is installed.
    /// </summary>
    public static IReadOnlyList<string> NcclCandidates(string? explicitPath, IEnumerable<string>? pythonPrefixes = null) =>
        Candidates(explicitPath, [.. NcclStandardCandidates, .. WheelFiles(pythonPrefixes ?? [], NcclWheelFile)]);

    /// <summary>
    /// The Python installations to look in for a wheel's library, without running Python: the active virtual or conda
    /// environment, the user's site, then the system's.
    /// </summary>
    public static IEnumerable<string> PythonPrefixes()
    {
        string?[] prefixes =
        [
            Environment.GetEnvironmentVariable("VIRTUAL_ENV"), Environment.GetEnvironmentVariable("CONDA_PREFIX"),
            Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home ? Path.Combine(home, ".local") : null,
            "/usr/local", "/usr", "/opt/conda",
        ];
        return prefixes.OfType<string>().Where(p => p.Length > 0).Distinct();
    }

    /// <summary>
    /// <paramref name="file"/> (a path inside site-packages) where it exists under prefix/lib/python3.*/site-packages or
    /// dist-packages (Debian's), newest Python first within a prefix.
    /// </summary>
    public static IEnumerable<string> WheelFiles(IEnumerable<string> prefixes, string file) =>
        from prefix in prefixes
        let lib = Path.Combine(prefix, "lib")
        where Directory.Exists(lib)
        from python in Directory.EnumerateDirectories(lib, "python3*").OrderByDescending(MinorVersion)
        from packages in new[] { "site-packages", "dist-packages" }
        let path = Path.Combine(python, packages, file)
        where File.Exists(path)
        select path;

    // python3.12 before python3.9: by number, not by text.
    private static int MinorVersion(string folder) =>
        int.TryParse(Path.GetFileName(folder).AsSpan("python3".Length).TrimStart('.'), out var minor) ? minor : -1;

    private static IReadOnlyList<string> Candidates(string? explicitPath, IReadOnlyList<string> standard) =>
        string.IsNullOrWhiteSpace(explicitPath) ? standard : [explicitPath, .. standard];

    private static nint Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath) => name switch
    {
        Cuda => CudaProbe.Value.Handle,
        Nvrtc => NvrtcProbe.Value.Handle,
        Nccl => NcclProbe.Value.Handle,
        _ => 0,
    };
}

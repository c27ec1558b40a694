using KernelDsl.Native;

namespace KernelDsl;

/// <summary>
/// NCCL, loaded from the first of <c>KERNELDSL_NCCL_PATH</c>, libnccl.so.2 and libnccl.so that loads, as NVRTC is
/// (<see cref="NvrtcCompiler"/>); version <see cref="NcclVersion.Minimum"/> or later.
/// </summary>
public static class Nccl
{
    /// <summary>Environment variable naming an NCCL file to try before the standard names.</summary>
    public const string PathVariable = NativeLibraries.NcclPathVariable;

    private static readonly Lazy<(NcclVersion? Version, string Reason)> Loaded =
        new(() => Decide(NativeLibraries.NcclLibrary, () =>
        {
            NcclException.Check(NcclApi.ncclGetVersion(out var code), "Reading the NCCL version");
            return code;
        }));

    /// <summary>
    /// A shell command substitution that prints where pip's NCCL wheel (PyTorch's) keeps libnccl.so.2, for
    /// <see cref="PathVariable"/> when the probe does not find it (a Python it does not know of). Scripts run it; the
    /// runtime never starts Python.
    /// </summary>
    public const string WheelPathCommand = "$(python3 -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])')/lib/libnccl.so.2";

    /// <summary>Whether a usable NCCL loads on this machine (no GPU needed to load it).</summary>
    public static bool IsAvailable => TryLoad(out _, out _);

    /// <summary>Loads NCCL (once per process), or says why not: the first line names what to do, the lines after it every file tried.</summary>
    public static bool TryLoad(out NcclVersion version, out string reason)
    {
        var (loaded, why) = Loaded.Value;
        (version, reason) = (loaded ?? default, why);
        return loaded is not null;
    }

    /// <summary>Loads NCCL (once per process) and returns its version.</summary>
    /// <exception cref="DllNotFoundException">No NCCL library loaded, or only one older than <see cref="NcclVersion.Minimum"/>; the message says which and what to do.</exception>
    public static NcclVersion Load() => TryLoad(out var version, out var reason) ? version : throw new DllNotFoundException(reason);

    /// <summary>The outcome of a probe: the version, or the reason (its first line what to install or set, then the probe's trace).</summary>
    internal static (NcclVersion? Version, string Reason) Decide(LibraryProbeResult probe, Func<int> versionCode)
    {
        var fix = $"Install NCCL {NcclVersion.Minimum.Major}.{NcclVersion.Minimum.Minor} or later (Debian/Ubuntu: libnccl2; pip's nvidia-nccl-cu12/-cu13, which PyTorch brings, is looked for in Python's site-packages) " +
            $"or name the library file in {PathVariable} (PyTorch's: export {PathVariable}={WheelPathCommand}).";
        if (!probe.Succeeded)
        {
            return (null, $"NCCL is not available: {FirstLine(probe.Trace)} {fix}{Environment.NewLine}{probe.Trace}");
        }
        var version = NcclVersion.FromCode(versionCode());
        return version < NcclVersion.Minimum
            ? (null, $"NCCL {version} ('{probe.LoadedName}') is older than {NcclVersion.Minimum}, the first with nonblocking communicators, which the timeouts need. {fix}{Environment.NewLine}{probe.Trace}")
            : (version, probe.Trace);
    }

    private static string FirstLine(string text) => text.Split('\n')[0].Trim();
}

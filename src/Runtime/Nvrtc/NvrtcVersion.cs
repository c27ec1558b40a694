using System.Globalization;

namespace KernelDsl;

/// <summary>An NVRTC release, e.g. 13.0. Part of every cache key: a new compiler may emit a different cubin.</summary>
public readonly record struct NvrtcVersion(int Major, int Minor)
{
    /// <summary>
    /// Why this NVRTC cannot compile for <paramref name="arch"/> (an NVRTC architecture name such as sm_90a), or null
    /// when its version can: architecture-specific targets (sm_90a) need PTX 8.0, which came with CUDA 12.0, and
    /// family-specific ones (sm_100f) CUDA 12.9. Tools and tests skip such targets with this reason.
    /// </summary>
    public string? CannotTarget(string arch)
    {
        ArgumentNullException.ThrowIfNull(arch);
        return arch.EndsWith('a') && Major < 12
            ? $"NVRTC {this} cannot compile {arch}: architecture-specific targets need PTX 8.0, which came with CUDA 12.0"
            : arch.EndsWith('f') && (Major, Minor).CompareTo((12, 9)) < 0
                ? $"NVRTC {this} cannot compile {arch}: family-specific targets came with CUDA 12.9"
                : null;
    }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Major}.{Minor}");
}

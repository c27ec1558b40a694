using System.Globalization;

namespace KernelDsl;

/// <summary>An NVRTC release, e.g. 13.0. Part of every cache key: a new compiler may emit a different cubin.</summary>
public readonly record struct NvrtcVersion(int Major, int Minor)
{
    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Major}.{Minor}");
}

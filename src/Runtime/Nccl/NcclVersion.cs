using System.Globalization;

namespace KernelDsl;

/// <summary>An NCCL release, e.g. 2.21.5.</summary>
public readonly record struct NcclVersion(int Major, int Minor, int Patch) : IComparable<NcclVersion>
{
    /// <summary>
    /// The oldest NCCL this runtime binds: 2.14 brought nonblocking communicators (ncclCommInitRankConfig,
    /// ncclCommFinalize), which let a communicator that waits for a rank that never comes be given up after a timeout.
    /// </summary>
    public static NcclVersion Minimum { get; } = new(2, 14, 0);

    /// <summary>NCCL_VERSION_CODE: major·10000 + minor·100 + patch since 2.9, major·1000 + minor·100 + patch before.</summary>
    public int Code => Major > 2 || (Major == 2 && Minor >= 9) ? Major * 10000 + Minor * 100 + Patch : Major * 1000 + Minor * 100 + Patch;

    /// <summary>The version ncclGetVersion reports as <paramref name="code"/>.</summary>
    public static NcclVersion FromCode(int code)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(code);
        // Old codes stop below 2.9.0 = 2900 + 0 in the old scheme (≤ 2899); new ones start at 20900.
        return code >= 10000 ? new(code / 10000, code % 10000 / 100, code % 100) : new(code / 1000, code % 1000 / 100, code % 100);
    }

    public int CompareTo(NcclVersion other) => (Major, Minor, Patch).CompareTo((other.Major, other.Minor, other.Patch));

    public static bool operator <(NcclVersion left, NcclVersion right) => left.CompareTo(right) < 0;
    public static bool operator >(NcclVersion left, NcclVersion right) => left.CompareTo(right) > 0;
    public static bool operator <=(NcclVersion left, NcclVersion right) => left.CompareTo(right) <= 0;
    public static bool operator >=(NcclVersion left, NcclVersion right) => left.CompareTo(right) >= 0;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Major}.{Minor}.{Patch}");
}

using System.Globalization;

namespace KernelDsl.Generator.Helpers;

/// <summary>Counts in diagnostic messages, in the number the count needs: "1 warp", "2 warps".</summary>
public static class Wording
{
    /// <summary><paramref name="count"/> and <paramref name="noun"/>, plural unless the count is 1 (regular plurals; pass <paramref name="plural"/> for others).</summary>
    public static string Count(long count, string noun, string? plural = null) =>
        count.ToString(CultureInfo.InvariantCulture) + " " + (count == 1 ? noun : plural ?? noun + "s");
}

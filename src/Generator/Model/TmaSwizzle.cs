namespace KernelDsl.Generator.Model;

/// <summary>
/// The swizzles TMA writes a box in and wgmma's descriptors read it back with, by the length of the box's rows:
/// 128-byte rows in the 128-byte swizzle (CuTe's Swizzle(3,4,3) on bytes), 64 in the 64-byte one (2,4,3), 32 in the
/// 32-byte one (1,4,3). One table, read by the validator, the kernel writer and the launcher writer.
/// </summary>
public static class TmaSwizzle
{
    /// <summary>The swizzle for <paramref name="rowBytes"/>-byte int8 rows, or null when TMA and wgmma have none for that length.</summary>
    public static Swizzle? ForRowBytes(int rowBytes) => rowBytes switch
    {
        128 => new Swizzle(3, 4, 3),
        64 => new Swizzle(2, 4, 3),
        32 => new Swizzle(1, 4, 3),
        _ => null,
    };

    /// <summary>The layout code of a wgmma shared-memory descriptor (bits 62–63): 128-byte 1, 64-byte 2, 32-byte 3.</summary>
    public static int DescriptorMode(int rowBytes) => rowBytes switch { 128 => 1, 64 => 2, 32 => 3, _ => Unsupported(rowBytes) };

    /// <summary>The runtime's <c>TensorMapSwizzle</c> member for the rows.</summary>
    public static string TensorMapName(int rowBytes) => rowBytes switch { 128 => "Bytes128", 64 => "Bytes64", 32 => "Bytes32", _ => Unsupported(rowBytes).ToString() };

    private static int Unsupported(int rowBytes) =>
        throw new System.ArgumentOutOfRangeException(nameof(rowBytes), rowBytes, "TMA swizzles rows of 32, 64 or 128 bytes; the validator refuses other tiles.");
}

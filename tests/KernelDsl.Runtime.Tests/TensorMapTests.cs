namespace KernelDsl.Runtime.Tests;

/// <summary>
/// cuTensorMapEncodeTiled's rules, checked on the host before the driver sees them: each broken rule names its
/// argument. (Encoding itself needs a driver and an sm_90 device: GpuTests.Hopper.TmaGpuTests.)
/// </summary>
public class TensorMapTests
{
    // A row-major 256 × 256 byte matrix, 64 × 64 boxes: dims and box innermost first.
    private static void Valid(int elementBytes = 1, ulong address = 1 << 20, long bytes = 256 * 256, long[]? dims = null, long[]? strides = null,
        int[]? box = null, TensorMapSwizzle swizzle = TensorMapSwizzle.None) =>
        TensorMap.Validate(elementBytes, address, bytes, dims ?? [256, 256], strides ?? [256], box ?? [64, 64], swizzle);

    [Fact]
    public void A_matrix_with_whole_16_byte_rows_and_a_fitting_box_is_accepted()
    {
        Valid();
        Valid(swizzle: TensorMapSwizzle.Bytes64);
        Valid(elementBytes: 2, bytes: 256 * 512, strides: [512], box: [64, 32], swizzle: TensorMapSwizzle.Bytes128);
        Valid(dims: [128, 4, 2, 3, 5], strides: [128, 512, 1024, 3072], box: [16, 4, 1, 1, 1], bytes: 128L * 4 * 2 * 3 * 5);
    }

    public static TheoryData<string, string, string> Broken() => new()
    {
        { "rank 6", "dims", "1 to 5 dimensions" },
        { "3-byte elements", "T", "1-, 2-, 4- or 8-byte" },
        { "address 8 mod 16", "buffer", "16-byte aligned" },
        { "a zero dimension", "dims", "1 to 2^32" },
        { "two strides for rank 2", "strides", "rank − 1 = 1" },
        { "stride 200", "strides", "multiple of 16" },
        { "a buffer too small", "dims", "the buffer holds" },
        { "a box of rank 1", "box", "one entry per dimension" },
        { "a box of 257", "box", "1 to 256" },
        { "an inner row of 8 bytes", "box", "multiple of 16" },
        { "128-byte rows under a 64-byte swizzle", "box", "at most 64 bytes" },
    };

    [Theory]
    [MemberData(nameof(Broken))]
    public void A_broken_rule_names_its_argument(string what, string argument, string rule)
    {
        Action call = what switch
        {
            "rank 6" => () => Valid(dims: [2, 2, 2, 2, 2, 2]),
            "3-byte elements" => () => Valid(elementBytes: 3),
            "address 8 mod 16" => () => Valid(address: (1 << 20) + 8),
            "a zero dimension" => () => Valid(dims: [256, 0]),
            "two strides for rank 2" => () => Valid(strides: [256, 65536]),
            "stride 200" => () => Valid(strides: [200]),
            "a buffer too small" => () => Valid(bytes: 256 * 255),
            "a box of rank 1" => () => Valid(box: [64]),
            "a box of 257" => () => Valid(box: [64, 257]),
            "an inner row of 8 bytes" => () => Valid(box: [8, 64]),
            "128-byte rows under a 64-byte swizzle" => () => Valid(box: [128, 64], swizzle: TensorMapSwizzle.Bytes64),
            _ => throw new ArgumentOutOfRangeException(nameof(what)),
        };
        var error = Assert.Throws<ArgumentException>(call);
        Assert.Equal(argument, error.ParamName);
        Assert.Contains(rule, error.Message);
    }

    [Fact]
    public void The_descriptor_is_the_drivers_128_bytes()
    {
        Assert.Equal(128, System.Runtime.CompilerServices.Unsafe.SizeOf<TensorMap>());
    }
}

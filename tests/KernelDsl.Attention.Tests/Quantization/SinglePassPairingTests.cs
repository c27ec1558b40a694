using KernelDsl.Attention.Quantization;

namespace AttentionTests.Quantization;

/// <summary>
/// The library's single passes (KvSinglePass, docs/PERF_NOTES.md §15) must write what the two passes write, and the CPU
/// reference follows one order: each must share its statistics variant's slices, lanes, groups and V scale, and its codes
/// variant's K tiles and padding.
/// </summary>
public class SinglePassPairingTests
{
    /// <summary>Each declared single pass, with the statistics and codes variants it stands for.</summary>
    public static TheoryData<Type, Type, Type> Pairs() => new()
    {
        { typeof(KvSinglePassD128), typeof(KvStatisticsD128), typeof(KvCodesD128) },
        { typeof(KvSinglePassPiD128), typeof(KvStatisticsD128), typeof(KvCodesPiD128) },
        { typeof(KvSinglePassPiD128E4m3), typeof(KvStatisticsD128E4m3), typeof(KvCodesPiD128E4m3) },
        { typeof(KvSinglePassD64), typeof(KvStatisticsD64), typeof(KvCodesD64) },
        { typeof(KvSinglePassPiD64), typeof(KvStatisticsD64), typeof(KvCodesPiD64) },
        { typeof(KvSinglePassPiD64E4m3), typeof(KvStatisticsD64E4m3), typeof(KvCodesPiD64E4m3) },
        { typeof(KvSinglePassD128Bf16), typeof(KvStatisticsD128Bf16), typeof(KvCodesD128Bf16) },
        { typeof(KvSinglePassPiD128E4m3Bf16), typeof(KvStatisticsD128E4m3Bf16), typeof(KvCodesPiD128E4m3Bf16) },
        { typeof(KvSinglePassD64Bf16), typeof(KvStatisticsD64Bf16), typeof(KvCodesD64Bf16) },
        { typeof(KvSinglePassPiD64E4m3Bf16), typeof(KvStatisticsD64E4m3Bf16), typeof(KvCodesPiD64E4m3Bf16) },
    };

    [Theory]
    [MemberData(nameof(Pairs))]
    public void A_single_pass_sums_K_s_mean_in_its_statistics_pass_s_order_and_writes_its_codes_pass_s_layout(Type single, Type statistics, Type codes)
    {
        foreach (var name in new[] { "SliceTokens", "MeanLanes", "MeanSliceGroup", "LargestVCode", "HeadDim" })
        {
            Assert.True(Constant(single, name) == Constant(statistics, name), $"{single.Name} against {statistics.Name}: {name}");
        }
        foreach (var name in new[] { "KScaleKeys", "TransposePad", "HeadDim" })
        {
            Assert.True(Constant(single, name) == Constant(codes, name), $"{single.Name} against {codes.Name}: {name}");
        }
    }

    [Fact]
    public void Every_declared_single_pass_is_paired()
    {
        var declared = typeof(KvSinglePassD128).Assembly.GetTypes().Where(t => t.Name.StartsWith("KvSinglePass", StringComparison.Ordinal) && t.DeclaringType is null);
        Assert.Equal(declared.Select(t => t.Name).Order(), Pairs().Select(row => ((Type)row.Data.Item1).Name).Order());
    }

    /// <summary>A generated constant, or -1 where the type has none (a natural layout has no TransposePad).</summary>
    private static int Constant(Type type, string name) => type.GetField(name)?.GetRawConstantValue() is int value ? value : -1;
}

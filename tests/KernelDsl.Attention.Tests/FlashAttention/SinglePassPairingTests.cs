using KernelDsl.Attention.FlashAttention;

namespace AttentionTests.FlashAttention;

/// <summary>
/// Int8Attention quantizes K and V in one pass where a head's slices fit the device, else in two (docs/PERF_NOTES.md §15).
/// Both must give the same codes, and the CPU reference follows one order: each single pass Int8Attention may take must
/// share its statistics variant's slices, lanes, groups and V scale, and its codes variant's K tiles and padding.
/// </summary>
public class SinglePassPairingTests
{
    public static TheoryData<int, bool> Configurations() => new() { { 64, false }, { 64, true }, { 128, false }, { 128, true } };

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Each_single_pass_sums_K_s_mean_in_its_statistics_pass_s_order_and_writes_its_codes_pass_s_layout(int headDim, bool bf16)
    {
        var pairs = bf16 ? Pairs(Quantizers<ushort>.For(headDim)) : Pairs(Quantizers<Half>.For(headDim));
        Assert.True(pairs.Count >= 2, $"D = {headDim}{(bf16 ? " bf16" : "")}: the natural layout and fp8 P·V's have single passes");
        foreach (var (single, statistics, codes) in pairs)
        {
            var where = $"{single.Name} against {statistics.Name} and {codes?.Name}";
            Assert.True(codes is not null, $"{where}: a single pass needs the two-pass codes variant it must equal");
            foreach (var name in new[] { "SliceTokens", "MeanLanes", "MeanSliceGroup", "LargestVCode", "HeadDim" })
            {
                Assert.True(Constant(single, name) == Constant(statistics, name), $"{where}: {name}");
            }
            foreach (var name in new[] { "KScaleKeys", "TransposePad" })
            {
                Assert.True(Constant(single, name) == Constant(codes!, name), $"{where}: {name}");
            }
        }
    }

    /// <summary>The (single pass, statistics, codes) launchers' declaring types Int8Attention pairs for each V layout.</summary>
    private static List<(Type Single, Type Statistics, Type? Codes)> Pairs<T>(Quantizers<T> q) where T : unmanaged
    {
        var pairs = new List<(Type, Type, Type?)>();
        void Add(Delegate? single, Delegate statistics, Delegate? codes)
        {
            if (single is not null)
            {
                pairs.Add((single.Method.DeclaringType!, statistics.Method.DeclaringType!, codes?.Method.DeclaringType));
            }
        }
        Add(q.SinglePass?.Launch, q.Statistics.Launch, q.Codes);
        Add(q.SinglePassPi?.Launch, q.Statistics.Launch, q.CodesPi);
        Add(q.SinglePassPiE4M3?.Launch, q.StatisticsE4M3!.Launch, q.CodesPiE4M3);
        return pairs;
    }

    /// <summary>A generated constant, or -1 where the type has none (a natural layout has no TransposePad).</summary>
    private static int Constant(Type type, string name) => type.GetField(name)?.GetRawConstantValue() is int value ? value : -1;
}

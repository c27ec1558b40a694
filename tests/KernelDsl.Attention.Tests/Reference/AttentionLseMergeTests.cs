using KernelDsl.Attention.Reference;

namespace AttentionTests.Reference;

/// <summary>The split-KV combine: partials over disjoint key ranges merge into full attention.</summary>
public class AttentionLseMergeTests
{
    [Theory]
    [InlineData(false, 37, 64)]
    [InlineData(true, 37, 64)]
    [InlineData(true, 80, 30)]   // TokensQ > TokensKv: some rows see nothing, some only the first half
    public void Two_halves_of_the_keys_merge_into_full_attention(bool causal, int sq, int skv)
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(2, 4, 2, sq, skv, 32, causal, TensorLayout.BSHD);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var full = Float64Attention.Forward(shape, q, k, v);
        var first = Float64Attention.Forward(shape, q, k, v, ..(skv / 2));
        var second = Float64Attention.Forward(shape, q, k, v, (skv / 2)..);
        if (causal)
        {
            // The second half is invisible to the early rows: a −∞ partial that the merge must ignore.
            Assert.Contains(double.NegativeInfinity, second.Lse);
        }
        foreach (var merged in new[] { LseMerge.Merge(shape, [first, second]), LseMerge.Merge(shape, [second, first]) })
        {
            Assert.True(ErrorMetrics.MaxAbs(merged.Output, full.Output) < 1e-13, $"seed {seed}");
            Assert.True(ErrorMetrics.MaxAbs(merged.Lse, full.Lse) < 1e-13, $"seed {seed}");
        }
    }

    [Fact]
    public void Rows_no_partial_saw_stay_zero_with_lse_minus_infinity()
    {
        var shape = AttentionTestData.Shape(1, 1, 1, 2, 2, 4);
        double[] output = [1, 2, 3, 4, 5, 6, 7, 8];
        var seen = new Float64AttentionResult(output, [0.5, double.NegativeInfinity]);
        var empty = new Float64AttentionResult(new double[8], [double.NegativeInfinity, double.NegativeInfinity]);
        var merged = LseMerge.Merge(shape, [seen, empty]);
        Assert.Equal([1, 2, 3, 4, 0, 0, 0, 0], merged.Output);
        Assert.Equal(0.5, merged.Lse[0]);
        Assert.Equal(double.NegativeInfinity, merged.Lse[1]);
    }

    [Fact]
    public void Large_lse_values_do_not_overflow()
    {
        var shape = AttentionTestData.Shape(1, 1, 1, 1, 2, 1);
        var merged = LseMerge.Merge(shape, [new([2.0], [1000.0]), new([4.0], [1000.0])]);
        Assert.Equal(3.0, merged.Output[0], 12);
        Assert.Equal(1000 + Math.Log(2), merged.Lse[0], 12);
    }

    [Fact]
    public void Rejects_partials_of_the_wrong_size()
    {
        var shape = AttentionTestData.Shape(1, 1, 1, 2, 2, 4);
        var error = Assert.Throws<ArgumentException>(() => LseMerge.Merge(shape, [new(new double[7], new double[2])]));
        Assert.Equal("partials", error.ParamName);
        Assert.Throws<ArgumentException>(() => LseMerge.Merge(shape, []));
    }
}

using AttentionTests.Reference;
using KernelDsl.Attention.ContextParallel;
using KernelDsl.Attention.Reference;

namespace AttentionTests.ContextParallel;

/// <summary>
/// The math of context parallelism on the CPU: the ring schedule run block by block with the single-sequence references
/// and merged by LSE, and Ulysses' two all-to-alls around one call per rank, against float64 attention over the whole
/// sequence.
/// </summary>
public class ContextParallelReferenceTests(ITestOutputHelper output)
{
    // ranks, tokens (not divisible by 2N unless noted), headsQ, headsKv, layout
    public static TheoryData<int, int, int, int, TensorLayout> RingShapes() => new()
    {
        { 1, 37, 2, 2, TensorLayout.BHSD },
        { 2, 75, 4, 2, TensorLayout.BSHD },   // GQA 2:1
        { 4, 101, 4, 1, TensorLayout.BHSD },  // MQA
        { 8, 131, 4, 2, TensorLayout.BSHD },
        { 8, 16, 2, 2, TensorLayout.BHSD },   // one token per zig-zag chunk
    };

    [Theory]
    [MemberData(nameof(RingShapes))]
    public void Ring_in_float64_is_attention_over_the_whole_sequence(int ranks, int tokens, int headsQ, int headsKv, TensorLayout layout)
    {
        foreach (var (causal, split) in new[] { (false, SequenceSplit.ZigZag), (true, SequenceSplit.ZigZag), (true, SequenceSplit.Contiguous), (false, SequenceSplit.Contiguous) })
        {
            var seed = AttentionTestData.FreshSeed();
            var shape = AttentionTestData.Shape(2, headsQ, headsKv, tokens, tokens, 16, causal, layout);
            var (q, k, v) = AttentionTestData.Inputs(shape, seed);
            var full = Float64Attention.Forward(shape, q, k, v);
            var ring = ContextParallelReference.Ring(shape, new RingSchedule(new SequencePartition(ranks, tokens, split), causal), q, k, v, ContextParallelReference.Float64);
            Assert.True(ErrorMetrics.MaxAbs(ring.Output, full.Output) < 1e-12, $"{split} causal={causal} seed {seed}: output off by {ErrorMetrics.MaxAbs(ring.Output, full.Output)}");
            Assert.True(ErrorMetrics.MaxAbs(ring.Lse, full.Lse) < 1e-12, $"{split} causal={causal} seed {seed}: LSE off by {ErrorMetrics.MaxAbs(ring.Lse, full.Lse)}");
        }
    }

    // ranks, tokens, headsQ, headsKv, headDim, causal
    public static TheoryData<int, int, int, int, int, bool> Int8Shapes() => new()
    {
        { 2, 301, 4, 2, 64, true },    // GQA, odd length
        { 2, 256, 2, 2, 128, false },
        { 4, 517, 4, 1, 64, true },    // MQA, 517 = 8·64 + 5
        { 4, 300, 2, 2, 64, false },
        { 8, 700, 4, 2, 64, true },    // 700 = 16·43 + 12: chunks of 43 and 44
        { 8, 333, 2, 1, 128, false },
    };

    [Theory]
    [MemberData(nameof(Int8Shapes))]
    public void Ring_by_the_int8_algorithm_meets_the_prefill_bars_against_float64(int ranks, int tokens, int headsQ, int headsKv, int headDim, bool causal)
    {
        var seed = AttentionTestData.FreshSeed();
        var shape = AttentionTestData.Shape(1, headsQ, headsKv, tokens, tokens, headDim, causal, TensorLayout.BSHD);
        var (q, k, v) = AttentionTestData.Inputs(shape, seed);
        var full = Float64Attention.Forward(shape, q, k, v);
        var schedule = new RingSchedule(new SequencePartition(ranks, tokens, SequenceSplit.ZigZag), causal);
        var ring = ContextParallelReference.Ring(shape, schedule, q, k, v, ContextParallelReference.Int8(AttentionTestData.Options(headDim)));
        var error = ErrorMetrics.Compare(ring.Output, full.Output);
        var lse = ErrorMetrics.MaxAbs(ring.Lse, full.Lse);
        output.WriteLine($"N = {ranks}, S = {tokens}, Hq {headsQ} Hkv {headsKv} D {headDim}{(causal ? " causal" : "")}, seed {seed}: {error}, LSE max abs {lse:E3}");
        // The prefill bars of the GPU tests (Int8AttentionGpuTests): u8 P·V within 3e-2 relative L2, the LSE within 0.1.
        Assert.True(error.RelativeL2 <= 3e-2 && error.Cosine >= 0.999, $"seed {seed}: {error}");
        Assert.True(lse <= 0.1, $"seed {seed}: LSE off by {lse}");
    }

    [Theory]
    [InlineData(1, 37, 2, 2, false, TensorLayout.BHSD)]
    [InlineData(2, 75, 4, 2, true, TensorLayout.BSHD)]
    [InlineData(4, 101, 8, 4, true, TensorLayout.BHSD)]
    [InlineData(8, 131, 16, 8, false, TensorLayout.BSHD)]
    [InlineData(8, 131, 8, 8, true, TensorLayout.BHSD)]
    public void Ulysses_is_attention_over_the_whole_sequence_bit_for_bit(int ranks, int tokens, int headsQ, int headsKv, bool causal, TensorLayout layout)
    {
        foreach (var split in new[] { SequenceSplit.ZigZag, SequenceSplit.Contiguous })
        {
            var seed = AttentionTestData.FreshSeed();
            var shape = AttentionTestData.Shape(2, headsQ, headsKv, tokens, tokens, 16, causal, layout);
            var (q, k, v) = AttentionTestData.Inputs(shape, seed);
            var full = Float64Attention.Forward(shape, q, k, v);
            var layoutOfHeads = new UlyssesLayout(new SequencePartition(ranks, tokens, split), headsQ, headsKv);
            var ulysses = ContextParallelReference.Ulysses(shape, layoutOfHeads, q, k, v, ContextParallelReference.Float64);
            // Each head is the same float64 computation on the same rows, only on another rank.
            Assert.Equal(full.Output, ulysses.Output);
            Assert.Equal(full.Lse, ulysses.Lse);
        }
    }

    [Fact]
    public void A_schedule_or_layout_that_does_not_fit_the_shape_is_refused_naming_it()
    {
        var shape = AttentionTestData.Shape(1, 4, 2, 40, 40, 16, causal: true);
        var (q, k, v) = AttentionTestData.Inputs(shape, 1);
        var partition = new SequencePartition(2, 40, SequenceSplit.ZigZag);
        Assert.Equal("schedule", Assert.Throws<ArgumentException>(() =>
            ContextParallelReference.Ring(shape, new RingSchedule(partition, Causal: false), q, k, v, ContextParallelReference.Float64)).ParamName);
        Assert.Equal("shape", Assert.Throws<ArgumentException>(() =>
            ContextParallelReference.Ring(shape, new RingSchedule(new SequencePartition(2, 41, SequenceSplit.ZigZag), true), q, k, v, ContextParallelReference.Float64)).ParamName);
        var crossShape = AttentionTestData.Shape(1, 4, 2, 40, 48, 16);
        var (cq, ck, cv) = AttentionTestData.Inputs(crossShape, 1);
        Assert.Equal("shape", Assert.Throws<ArgumentException>(() =>
            ContextParallelReference.Ring(crossShape, new RingSchedule(partition, false), cq, ck, cv, ContextParallelReference.Float64)).ParamName);
        Assert.Equal("layout", Assert.Throws<ArgumentException>(() =>
            ContextParallelReference.Ulysses(shape, new UlyssesLayout(partition, 8, 2), q, k, v, ContextParallelReference.Float64)).ParamName);
        Assert.Equal("k", Assert.Throws<ArgumentException>(() =>
            ContextParallelReference.Ring(shape, new RingSchedule(partition, true), q, k.AsSpan(1), v, ContextParallelReference.Float64)).ParamName);
    }
}

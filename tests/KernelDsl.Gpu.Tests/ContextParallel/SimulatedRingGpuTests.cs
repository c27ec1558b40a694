using AttentionTests.Reference;
using KernelDsl;
using KernelDsl.Attention.ContextParallel;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;
using KernelDsl.Runtime.Tests;

namespace GpuTests.ContextParallel;

/// <summary>
/// The ring schedule run by <see cref="SimulatedRingAttention"/>, N ranks on one GPU with device copies for NCCL,
/// against float64 attention of the whole sequence, under the prefill bars of Int8AttentionGpuTests (u8 P·V: relative
/// L2 ≤ 3e-2, LSE within 0.1). O and the LSE are poisoned first, so a row no rank writes fails.
/// </summary>
public class SimulatedRingGpuTests(ITestOutputHelper output)
{
    // ranks, tokens, headsQ, headsKv, headDim, causal, layout
    public static TheoryData<int, int, int, int, int, bool, TensorLayout> Cases() => new()
    {
        { 2, 1000, 4, 2, 128, true, TensorLayout.BSHD },    // GQA; 1000 = 4·250
        { 2, 777, 2, 2, 64, false, TensorLayout.BHSD },     // 777 not divisible by 4 chunks
        { 4, 1029, 8, 2, 128, true, TensorLayout.BHSD },    // GQA 4:1, chunks of 128 and 129
        { 4, 600, 4, 4, 64, false, TensorLayout.BSHD },
        { 8, 2053, 4, 1, 128, true, TensorLayout.BSHD },    // MQA; 16 chunks of 128 and 129
        { 8, 515, 2, 2, 64, true, TensorLayout.BHSD },      // chunks of 32 and 33, shorter than one key block
        { 8, 1000, 4, 2, 128, false, TensorLayout.BHSD },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Ring_of_simulated_ranks_meets_the_prefill_bars_against_float64(int ranks, int tokens, int headsQ, int headsKv, int headDim, bool causal, TensorLayout layout)
    {
        using var device = Gpu.OpenOrSkip();
        foreach (var split in causal ? new[] { SequenceSplit.ZigZag, SequenceSplit.Contiguous } : [SequenceSplit.ZigZag])
        {
            var seed = AttentionTestData.FreshSeed();
            var shape = new AttentionShape(tokens > 1000 ? 1 : 2, headsQ, headsKv, tokens, tokens, headDim, causal, layout: layout);
            var (q, k, v) = AttentionTestData.Inputs(shape, seed);
            var schedule = new RingSchedule(new SequencePartition(ranks, tokens, split), causal);
            var (o, lse) = Run(device, shape, schedule, q, k, v, new AttentionOptions { Causal = causal });
            var expected = Float64Attention.Forward(shape, q, k, v);
            // O comes back BHSD whatever the inputs' layout.
            var reference = AttentionTensors.Relayout<double>(expected.Output, shape.Batch, headsQ, tokens, headDim, layout, TensorLayout.BHSD);
            var error = ErrorMetrics.Compare(o.Select(x => (double)x).ToArray(), reference);
            var lseError = ErrorMetrics.MaxAbs(ErrorMetrics.Widen(lse), expected.Lse);
            output.WriteLine($"{split} N = {ranks}, S = {tokens}, Hq {headsQ} Hkv {headsKv} D {headDim}{(causal ? " causal" : "")} {layout}, seed {seed}: {error}, LSE max abs {lseError:E3}");
            Assert.True(error.RelativeL2 <= 3e-2 && error.Cosine >= 0.999, $"{split} seed {seed}: {error}");
            Assert.True(lseError <= 0.1, $"{split} seed {seed}: LSE off by {lseError}");
        }
    }

    [Fact]
    public void A_second_call_with_other_lengths_reuses_the_ranks_and_matches_a_fresh_engine()
    {
        using var device = Gpu.OpenOrSkip();
        using var ring = new SimulatedRingAttention(device);
        foreach (var tokens in new[] { 700, 301, 700 })
        {
            var shape = new AttentionShape(1, 4, 2, tokens, tokens, 64, causal: true);
            var (q, k, v) = AttentionTestData.Inputs(shape, tokens);
            var schedule = new RingSchedule(new SequencePartition(4, tokens, SequenceSplit.ZigZag), true);
            var (reused, _) = Run(device, shape, schedule, q, k, v, new AttentionOptions { Causal = true }, ring);
            var (fresh, _) = Run(device, shape, schedule, q, k, v, new AttentionOptions { Causal = true });
            Assert.Equal(fresh, reused);
        }
    }

    [Fact]
    public void Bad_arguments_are_refused_before_any_work()
    {
        using var device = Gpu.OpenOrSkip();
        using var ring = new SimulatedRingAttention(device);
        using var stream = device.CreateStream();
        var shape = new AttentionShape(1, 2, 2, 256, 256, 64, causal: true);
        using var buffer = device.Allocate<Half>(shape.QElements);
        using var lse = device.Allocate<float>(shape.LseElements);
        var view = TensorView<Half>.Contiguous(buffer, 1, 2, 256, 64);
        var schedule = new RingSchedule(new SequencePartition(2, 256, SequenceSplit.ZigZag), true);
        Assert.Equal("options", Assert.Throws<ArgumentException>(() => ring.Forward(stream, schedule, view, view, view, buffer, lse, new AttentionOptions())).ParamName);
        var other = new RingSchedule(new SequencePartition(2, 200, SequenceSplit.ZigZag), true);
        Assert.Equal("schedule", Assert.Throws<ArgumentException>(() => ring.Forward(stream, other, view, view, view, buffer, lse, new AttentionOptions { Causal = true })).ParamName);
        using var small = device.Allocate<Half>(shape.QElements - 1);
        Assert.Equal("o", Assert.Throws<ArgumentException>(() => ring.Forward(stream, schedule, view, view, view, small, lse, new AttentionOptions { Causal = true })).ParamName);
    }

    internal static (Half[] O, float[] Lse) Run(CudaDevice device, AttentionShape shape, RingSchedule schedule, Half[] q, Half[] k, Half[] v,
        AttentionOptions options, SimulatedRingAttention? ring = null)
    {
        using var owned = ring is null ? new SimulatedRingAttention(device) : null;
        using var stream = device.CreateStream();
        using DeviceBuffer<Half> dq = device.Upload<Half>(q), dk = device.Upload<Half>(k), dv = device.Upload<Half>(v), dout = device.Allocate<Half>(shape.QElements);
        using var dlse = device.Allocate<float>(shape.LseElements);
        dout.FillBytes(0x7E);   // NaN in f16
        dlse.FillBytes(0x7F);
        TensorView<Half> View(DeviceBuffer<Half> buffer, int heads, TensorStrides s) => new(buffer, [shape.Batch, heads, shape.TokensQ, shape.HeadDim], [s.Batch, s.Head, s.Token, 1]);
        (ring ?? owned!).Forward(stream, schedule, View(dq, shape.HeadsQ, shape.QStrides), View(dk, shape.HeadsKv, shape.KvStrides), View(dv, shape.HeadsKv, shape.KvStrides),
            dout, dlse, options);
        return (dout.ToArray(), dlse.ToArray());
    }
}

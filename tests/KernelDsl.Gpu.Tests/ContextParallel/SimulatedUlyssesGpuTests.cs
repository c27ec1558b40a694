using AttentionTests.Reference;
using KernelDsl;
using KernelDsl.Attention.ContextParallel;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;
using KernelDsl.Runtime.Tests;

namespace GpuTests.ContextParallel;

/// <summary>
/// Ulysses with N ranks on one GPU (<see cref="SimulatedUlyssesAttention"/>): its two all-to-alls must move every row
/// exactly, so O and the LSE equal one <see cref="Int8Attention"/> call on the whole sequence bit for bit (each head is
/// the same computation on its rank); they meet the prefill bars against float64 and track the CPU path
/// (<see cref="ContextParallelReference.Ulysses"/> by the int8 algorithm). O and the LSE are poisoned first.
/// </summary>
public class SimulatedUlyssesGpuTests(ITestOutputHelper output)
{
    // ranks, tokens, headsQ, headsKv, headDim, causal, layout (heads divide among the ranks)
    public static TheoryData<int, int, int, int, int, bool, TensorLayout> Cases() => new()
    {
        { 2, 1000, 4, 2, 128, true, TensorLayout.BSHD },
        { 2, 777, 2, 2, 64, false, TensorLayout.BHSD },
        { 4, 1029, 8, 4, 128, true, TensorLayout.BHSD },
        { 4, 600, 8, 4, 64, true, TensorLayout.BSHD },
        { 8, 515, 8, 8, 64, false, TensorLayout.BSHD },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Ulysses_of_simulated_ranks_is_one_call_on_the_whole_sequence_bit_for_bit(int ranks, int tokens, int headsQ, int headsKv, int headDim, bool causal, TensorLayout layout)
    {
        using var device = Gpu.OpenOrSkip();
        foreach (var split in new[] { SequenceSplit.ZigZag, SequenceSplit.Contiguous })
        {
            var seed = AttentionTestData.FreshSeed();
            var shape = new AttentionShape(tokens > 1000 ? 1 : 2, headsQ, headsKv, tokens, tokens, headDim, causal, layout: layout);
            var (q, k, v) = AttentionTestData.Inputs(shape, seed);
            var plan = new UlyssesLayout(new SequencePartition(ranks, tokens, split), headsQ, headsKv);
            var options = new AttentionOptions { Causal = causal };
            var (o, lse) = Run(device, shape, plan, q, k, v, options);
            var (oneO, oneLse) = OneCall(device, shape, q, k, v, options);
            Assert.True(oneO.SequenceEqual(o), $"{split} seed {seed}: O differs from one call's");
            Assert.True(oneLse.SequenceEqual(lse), $"{split} seed {seed}: the LSE differs from one call's");

            var expected = Float64Attention.Forward(shape, q, k, v);
            var error = ErrorMetrics.Compare(o.Select(x => (double)x).ToArray(), Bhsd(shape, expected.Output));
            var lseError = ErrorMetrics.MaxAbs(ErrorMetrics.Widen(lse), expected.Lse);
            var cpu = ContextParallelReference.Ulysses(shape, plan, q, k, v, ContextParallelReference.Int8(new Int8AttentionOptions
            {
                BlockM = AttentionVariant.QScaleRows, BlockN = 128, KScaleKeys = AttentionVariant.KScaleKeys,
            }));
            var agreement = ErrorMetrics.Compare(o.Select(x => (double)x).ToArray(), Bhsd(shape, cpu.Output));
            output.WriteLine($"Ulysses {split} N = {ranks}, S = {tokens}, Hq {headsQ} Hkv {headsKv} D {headDim}{(causal ? " causal" : "")} {layout}, seed {seed}: " +
                $"{error}, LSE max abs {lseError:E3}; vs the CPU path rel L2 {agreement.RelativeL2:E3}");
            Assert.True(error.RelativeL2 <= 3e-2 && error.Cosine >= 0.999, $"{split} seed {seed}: {error}");
            Assert.True(lseError <= 0.1, $"{split} seed {seed}: LSE off by {lseError}");
            // Same int8 algorithm; the CPU path's softmax steps by 128 keys where a kernel may step by 64, rounding P differently.
            Assert.True(agreement.RelativeL2 <= 1e-2, $"{split} seed {seed}: the CPU path differs by rel L2 {agreement.RelativeL2}");
        }
    }

    [Fact]
    public void Bad_arguments_are_refused_naming_them()
    {
        using var device = Gpu.OpenOrSkip();
        using var ulysses = new SimulatedUlyssesAttention(device);
        using var stream = device.CreateStream();
        using var buffer = device.Allocate<Half>(1 * 4 * 256 * 64);
        using var lse = device.Allocate<float>(4 * 256);
        var view = TensorView<Half>.Contiguous(buffer, 1, 4, 256, 64);
        var options = new AttentionOptions();
        var heads = new UlyssesLayout(new SequencePartition(2, 256, SequenceSplit.ZigZag), 8, 2);
        Assert.Equal("layout", Assert.Throws<ArgumentException>(() => ulysses.Forward(stream, heads, view, view, view, buffer, lse, options)).ParamName);
        var tokens = new UlyssesLayout(new SequencePartition(2, 200, SequenceSplit.ZigZag), 4, 4);
        Assert.Equal("layout", Assert.Throws<ArgumentException>(() => ulysses.Forward(stream, tokens, view, view, view, buffer, lse, options)).ParamName);
    }

    internal static (Half[] O, float[] Lse) Run(CudaDevice device, AttentionShape shape, UlyssesLayout plan, Half[] q, Half[] k, Half[] v, AttentionOptions options)
    {
        using var ulysses = new SimulatedUlyssesAttention(device);
        return Whole(device, shape, q, k, v, (stream, dq, dk, dv, o, lse) => ulysses.Forward(stream, plan, dq, dk, dv, o, lse, options));
    }

    /// <summary>One Int8Attention call on the whole sequence, O written dense BHSD as the context-parallel calls write it.</summary>
    internal static (Half[] O, float[] Lse) OneCall(CudaDevice device, AttentionShape shape, Half[] q, Half[] k, Half[] v, AttentionOptions options)
    {
        using var attention = new Int8Attention(device);
        return Whole(device, shape, q, k, v, (stream, dq, dk, dv, o, lse) =>
            attention.Forward(stream, dq, dk, dv, TensorView<Half>.Contiguous(o, shape.Batch, shape.HeadsQ, shape.TokensQ, shape.HeadDim), options, lse));
    }

    private delegate void WholeCall(CudaStream stream, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v, DeviceBuffer<Half> o, DeviceBuffer<float> lse);

    private static (Half[] O, float[] Lse) Whole(CudaDevice device, AttentionShape shape, Half[] q, Half[] k, Half[] v, WholeCall call)
    {
        using var stream = device.CreateStream();
        using DeviceBuffer<Half> dq = device.Upload<Half>(q), dk = device.Upload<Half>(k), dv = device.Upload<Half>(v), o = device.Allocate<Half>(shape.QElements);
        using var lse = device.Allocate<float>(shape.LseElements);
        o.FillBytes(0x7E);
        lse.FillBytes(0x7F);
        TensorView<Half> View(DeviceBuffer<Half> buffer, int heads, TensorStrides s) => new(buffer, [shape.Batch, heads, shape.TokensQ, shape.HeadDim], [s.Batch, s.Head, s.Token, 1]);
        call(stream, View(dq, shape.HeadsQ, shape.QStrides), View(dk, shape.HeadsKv, shape.KvStrides), View(dv, shape.HeadsKv, shape.KvStrides), o, lse);
        stream.Synchronize();
        return (o.ToArray(), lse.ToArray());
    }

    private static double[] Bhsd(AttentionShape shape, double[] output) =>
        AttentionTensors.Relayout<double>(output, shape.Batch, shape.HeadsQ, shape.TokensQ, shape.HeadDim, shape.Layout, TensorLayout.BHSD);
}

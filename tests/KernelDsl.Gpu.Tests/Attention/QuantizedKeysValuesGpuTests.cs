using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Attention;

/// <summary>
/// K and V quantized once (<see cref="Int8Attention.QuantizeKeysValues(CudaStream, TensorView{Half}, TensorView{Half}, AttentionOptions)"/>)
/// and attended to by several queries: each call must give O and LSE bit for bit equal to the one-shot Forward on the
/// same tensors (the same kernels on the same codes), and O must match float64 attention. Outputs are poisoned first.
/// </summary>
public class QuantizedKeysValuesGpuTests(ITestOutputHelper output)
{
    private const byte Poison = 0x7E;  // 0x7E7E is an f16 NaN no kernel writes

    public static TheoryData<string> Modes() => new(ModeOptions.Keys);

    private static readonly Dictionary<string, AttentionOptions> ModeOptions = new()
    {
        ["D128 u8 TransPrmt"] = new AttentionOptions { V = VStrategy.TransPrmt },
        ["D128 u8 Pretransposed causal"] = new AttentionOptions { V = VStrategy.Pretransposed, Causal = true },
        ["D128 u8 Movmatrix"] = new AttentionOptions { V = VStrategy.Movmatrix },
        ["D64 u8 TransPrmt causal"] = new AttentionOptions { V = VStrategy.TransPrmt, Causal = true },
        ["D128 fp8 causal"] = new AttentionOptions { Pv = PvPrecision.E4M3, Causal = true },
    };

    /// <summary>GQA 2:1, lengths that are not multiples of any block, Sq &lt; Sk (decode-like) and Sq = Sk.</summary>
    private static AttentionShape Shape(int headDim, int tokensQ, bool causal) => new(2, 4, 2, tokensQ, 333, headDim, causal);

    private static TensorView<Half> View(DeviceBuffer<Half> buffer, AttentionShape shape, bool queries) => queries
        ? new(buffer, [shape.Batch, shape.HeadsQ, shape.TokensQ, shape.HeadDim], [shape.QStrides.Batch, shape.QStrides.Head, shape.QStrides.Token, 1])
        : new(buffer, [shape.Batch, shape.HeadsKv, shape.TokensKv, shape.HeadDim], [shape.KvStrides.Batch, shape.KvStrides.Head, shape.KvStrides.Token, 1]);

    [Theory]
    [MemberData(nameof(Modes))]
    public void Queries_against_keys_and_values_quantized_once_equal_the_one_shot_call(string mode)
    {
        using var device = Gpu.OpenOrSkip();
        var options = ModeOptions[mode];
        var headDim = mode.StartsWith("D64", StringComparison.Ordinal) ? 64 : 128;
        Int8AttentionGpuTests.SkipUnlessItRuns(device, Element.F16, headDim, options);
        var random = new Random(Environment.TickCount);
        var kvShape = Shape(headDim, 333, options.Causal);
        var k = Int8AttentionGpuTests.Gaussian(random, kvShape.KvElements, offset: i => 0.5f * (i % headDim % 7));  // channel offsets: smoothing matters
        var v = Int8AttentionGpuTests.Gaussian(random, kvShape.KvElements);
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        using var dk = device.Upload<Half>(k);
        using var dv = device.Upload<Half>(v);
        using var kv = attention.QuantizeKeysValues(stream, View(dk, kvShape, false), View(dv, kvShape, false), options);
        Assert.Equal((kvShape.Batch, kvShape.HeadsKv, kvShape.TokensKv, headDim), (kv.Batch, kv.HeadsKv, kv.SeqK, kv.HeadDim));

        // Two different queries (one decode-like, one prefill) against the same codes.
        foreach (var tokensQ in new[] { 5, 333 })
        {
            var shape = Shape(headDim, tokensQ, options.Causal);
            var q = Int8AttentionGpuTests.Gaussian(random, shape.QElements);
            using var dq = device.Upload<Half>(q);
            using var once = device.Allocate<Half>(shape.QElements);
            using var reused = device.Allocate<Half>(shape.QElements);
            using var lseOnce = device.Allocate<float>(shape.LseElements);
            using var lseReused = device.Allocate<float>(shape.LseElements);
            once.FillBytes(Poison);
            reused.FillBytes(Poison);
            lseOnce.FillBytes(0x7F);
            lseReused.FillBytes(0x7F);
            attention.Forward(stream, View(dq, shape, true), View(dk, shape, false), View(dv, shape, false), View(once, shape, true), options, lseOnce);
            attention.Forward(stream, View(dq, shape, true), kv, View(reused, shape, true), options, lseReused);
            stream.Synchronize();

            var (o1, o2) = (once.ToArray(), reused.ToArray());
            Assert.Equal(o1.Select(BitConverter.HalfToUInt16Bits), o2.Select(BitConverter.HalfToUInt16Bits));
            Assert.Equal(lseOnce.ToArray().Select(BitConverter.SingleToInt32Bits), lseReused.ToArray().Select(BitConverter.SingleToInt32Bits));
            var error = ErrorMetrics.Compare(o2.Select(x => (double)x).ToArray(), Float64Attention.Forward(shape, q, k, v).Output);
            output.WriteLine($"{mode} Sq={tokensQ}: rel L2 {error.RelativeL2:E2} against float64, bit-identical to the one-shot call");
            // The fp8 mode's V keeps 3 mantissa bits: its CPU reference reaches 3.8–3.9e-2 on Gaussian inputs.
            var bar = options.Pv == PvPrecision.E4M3 ? 5e-2 : 3e-2;
            Assert.True(error.RelativeL2 < bar, $"rel L2 {error.RelativeL2:E2}");
        }
    }

    [Fact]
    public void A_declared_kernel_with_modifiers_reads_keys_and_values_quantized_for_it()
    {
        using var device = Gpu.OpenOrSkip();
        var kernel = device.ComputeCapability >= 90 ? UserWindowSoftcap.Wgmma.Info : UserWindowSoftcap.MmaSync.Info;
        var random = new Random(Environment.TickCount);
        var shape = Shape(128, 300, false);
        var (q, k, v) = (Int8AttentionGpuTests.Gaussian(random, shape.QElements), Int8AttentionGpuTests.Gaussian(random, shape.KvElements),
            Int8AttentionGpuTests.Gaussian(random, shape.KvElements));
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        using var dq = device.Upload<Half>(q);
        using var dk = device.Upload<Half>(k);
        using var dv = device.Upload<Half>(v);
        using var once = device.Allocate<Half>(shape.QElements);
        using var reused = device.Allocate<Half>(shape.QElements);
        once.FillBytes(Poison);
        reused.FillBytes(Poison);
        var arguments = new ModifierArguments().Set("window", 45).Set("cap", 4f);
        using var kv = attention.QuantizeKeysValues(stream, kernel, View(dk, shape, false), View(dv, shape, false));
        attention.Forward(stream, kernel, View(dq, shape, true), View(dk, shape, false), View(dv, shape, false), View(once, shape, true), arguments);
        attention.Forward(stream, kernel, View(dq, shape, true), kv, View(reused, shape, true), arguments);
        stream.Synchronize();
        var reusedO = reused.ToArray();
        Assert.Equal(once.ToArray().Select(BitConverter.HalfToUInt16Bits), reusedO.Select(BitConverter.HalfToUInt16Bits));
        Assert.DoesNotContain(reusedO, Half.IsNaN);
    }

    [Fact]
    public void Misuse_is_refused_naming_the_argument_before_any_work()
    {
        using var device = Gpu.OpenOrSkip();
        var random = new Random(Environment.TickCount);
        var shape = Shape(128, 64, false);
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        using var dq = device.Upload<Half>(Int8AttentionGpuTests.Gaussian(random, shape.QElements));
        using var dk = device.Upload<Half>(Int8AttentionGpuTests.Gaussian(random, shape.KvElements));
        using var dv = device.Upload<Half>(Int8AttentionGpuTests.Gaussian(random, shape.KvElements));
        using var o = device.Allocate<Half>(shape.QElements);
        var (q, k, vv, oo) = (View(dq, shape, true), View(dk, shape, false), View(dv, shape, false), View(o, shape, true));

        var pretransposed = new AttentionOptions { V = VStrategy.Pretransposed };
        using var kv = attention.QuantizeKeysValues(stream, k, vv, pretransposed);
        Assert.Equal(VLayout.Pretransposed, kv.VLayout);
        var layout = Assert.Throws<ArgumentException>(() => attention.Forward(stream, q, kv, oo, new AttentionOptions { V = VStrategy.TransPrmt }));
        Assert.Equal("kv", layout.ParamName);
        Assert.Contains("layout", layout.Message, StringComparison.Ordinal);
        Assert.Equal("kv", Assert.Throws<ArgumentException>(() => attention.Forward(stream, q, kv, oo, pretransposed with { Pv = PvPrecision.Float16 })).ParamName);
        Assert.Equal("options", Assert.Throws<ArgumentException>(() => attention.Forward(stream, q, kv, oo, pretransposed with { Autotune = true })).ParamName);
        Assert.Equal("options", Assert.Throws<ArgumentException>(() => attention.QuantizeKeysValues(stream, k, vv, new AttentionOptions { Pv = PvPrecision.Float16 })).ParamName);

        // q of another head dim than kv's.
        var other = Shape(64, 64, false);
        using var dq64 = device.Upload<Half>(Int8AttentionGpuTests.Gaussian(random, other.QElements));
        using var o64 = device.Allocate<Half>(other.QElements);
        var dim = Assert.Throws<ArgumentException>(() => attention.Forward(stream, View(dq64, other, true), kv, View(o64, other, true), pretransposed));
        Assert.Equal("kv", dim.ParamName);
        Assert.Contains("D = 128", dim.Message, StringComparison.Ordinal);

        // A NaN in k is reported when K and V are quantized, not at a later query.
        var k16 = dk.ToArray();
        k16[1234] = Half.NaN;
        using var bad = device.Upload<Half>(k16);
        var nan = Assert.Throws<NonFiniteInputException>(() => attention.QuantizeKeysValues(stream, View(bad, shape, false), vv, pretransposed));
        Assert.Equal(1, nan.KCount);

        kv.Dispose();
        Assert.Throws<ObjectDisposedException>(() => attention.Forward(stream, q, kv, oo, pretransposed));
    }
}

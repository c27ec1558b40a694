using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Attention;

/// <summary>
/// Issue 6: NaN and ±Inf in q, k or v. With <see cref="NonFiniteInputs.Throw"/> (the default) the call throws, naming the
/// tensor and counting its bad elements; with <see cref="NonFiniteInputs.Ignore"/> every element of O is still written, and
/// a bad value reaches O only where <see cref="NonFiniteInputs.Ignore"/> documents it (v's channel). Finite inputs give
/// the same bits either way. O is poisoned before every launch.
/// </summary>
public class NonFiniteInputGpuTests(ITestOutputHelper output)
{
    private sealed record Mode(Element Input, int HeadDim, AttentionOptions Options);

    // Between them every quantizer path: row-block Q, smoothed K, per-channel V, π-transposed V (Recipe C), and the
    // count-only pass over V that the 16-bit P·V mode uses; f16 and bf16.
    private static readonly Dictionary<string, Mode> Modes = new()
    {
        ["f16 D128 u8 TransPrmt"] = new(Element.F16, 128, new AttentionOptions { V = VStrategy.TransPrmt }),
        ["f16 D128 u8 Pretransposed"] = new(Element.F16, 128, new AttentionOptions { V = VStrategy.Pretransposed }),
        ["f16 D64 f16 P·V causal"] = new(Element.F16, 64, new AttentionOptions { Pv = PvPrecision.Float16, Causal = true }),
        ["bf16 D128 u8 causal"] = new(Element.BF16, 128, new AttentionOptions { Causal = true }),
        ["bf16 D64 bf16 P·V"] = new(Element.BF16, 64, new AttentionOptions { Pv = PvPrecision.Float16 }),
        // Q counted by the attention kernel itself, which quantizes it (Hopper).
        ["f16 D128 u8 Q in the kernel"] = new(Element.F16, 128, new AttentionOptions { V = VStrategy.Pretransposed, Tile = Int8AttentionD128WgmmaFusedQ.Tile }),
    };

    public static TheoryData<string> ModeNames() => new(Modes.Keys);

    public static TheoryData<string, string, string> Plantings()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var mode in Modes.Keys)
        {
            foreach (var tensor in new[] { "q", "k", "v" })
            {
                data.Add(mode, tensor, "NaN");
                data.Add(mode, tensor, "+Inf");
            }
        }
        return data;
    }

    private static AttentionShape Shape(Mode mode) => new(1, 4, 2, 150, 200, mode.HeadDim, mode.Options.Causal); // GQA 2:1, tails

    private static ushort Bits(Element input, string value) => (input, value) switch
    {
        (Element.F16, "NaN") => 0x7E00,
        (Element.F16, _) => 0x7C00,
        (_, "NaN") => 0x7FC0,
        _ => 0x7F80,
    };

    private static bool IsFinite(Element input, ushort bits) => input == Element.F16 ? (bits & 0x7C00) != 0x7C00 : (bits & 0x7F80) != 0x7F80;

    /// <summary>What the launch helper fills O with: 0x7E7E (f16) and 0xFFFF (bf16) are NaNs no kernel writes.</summary>
    private static byte PoisonByte(Element input) => input == Element.F16 ? (byte)0x7E : (byte)0xFF;

    /// <summary>Fresh Gaussian q, k, v as the mode's 16-bit patterns.</summary>
    private static (ushort[] Q, ushort[] K, ushort[] V) Inputs(Random random, Mode mode, AttentionShape shape)
    {
        ushort[] Draw(int length) => Int8AttentionGpuTests.Gaussian(random, length)
            .Select(h => mode.Input == Element.F16 ? BitConverter.HalfToUInt16Bits(h) : AttentionTensors.SingleToBf16((float)h)).ToArray();
        return (Draw(shape.QElements), Draw(shape.KvElements), Draw(shape.KvElements));
    }

    /// <summary>One call through Forward or ForwardBf16 with its own stream and Int8Attention; O as 16-bit patterns.</summary>
    private static (ushort[] O, float[] Lse) Run(CudaDevice device, Mode mode, AttentionShape shape, AttentionOptions options, ushort[] q, ushort[] k, ushort[] v)
    {
        if (mode.Input == Element.BF16)
        {
            return Int8AttentionGpuTests.Launch<ushort>(device, shape, options, q, k, v, PoisonByte(mode.Input),
                (a, s, tq, tk, tv, to, opt, l) => a.ForwardBf16(s, tq, tk, tv, to, opt, l));
        }
        static Half[] AsHalf(ushort[] x) => x.Select(BitConverter.UInt16BitsToHalf).ToArray();
        var (o, lse) = Int8AttentionGpuTests.Launch<Half>(device, shape, options, AsHalf(q), AsHalf(k), AsHalf(v), PoisonByte(mode.Input),
            (a, s, tq, tk, tv, to, opt, l) => a.Forward(s, tq, tk, tv, to, opt, l));
        return (o.Select(BitConverter.HalfToUInt16Bits).ToArray(), lse);
    }

    [Theory]
    [MemberData(nameof(Plantings))]
    public void One_bad_element_throws_naming_its_tensor_or_with_Ignore_stays_where_documented(string modeName, string tensor, string value)
    {
        var mode = Modes[modeName];
        using var device = Gpu.OpenOrSkip();
        Int8AttentionGpuTests.SkipUnlessItRuns(device, mode.Input, mode.HeadDim, mode.Options);
        var seed = Environment.TickCount;
        var random = new Random(seed);
        var shape = Shape(mode);
        var (q, k, v) = Inputs(random, mode, shape);
        var target = tensor switch { "q" => q, "k" => k, _ => v };
        var index = random.Next(target.Length);
        target[index] = Bits(mode.Input, value);

        var error = Assert.Throws<NonFiniteInputException>(() => Run(device, mode, shape, mode.Options, q, k, v));
        Assert.Equal(tensor, error.ParamName);
        Assert.Equal((tensor == "q" ? 1L : 0L, tensor == "k" ? 1L : 0L, tensor == "v" ? 1L : 0L), (error.QCount, error.KCount, error.VCount));
        Assert.Contains("not meaningful", error.Message, StringComparison.Ordinal);

        var (o, _) = Run(device, mode, shape, mode.Options with { NonFinite = NonFiniteInputs.Ignore }, q, k, v);
        var poison = (ushort)(PoisonByte(mode.Input) * 0x101);
        var unwritten = Array.IndexOf(o, poison);
        Assert.True(unwritten < 0, $"seed {seed}: O[{unwritten}] was never written");
        var nonFinite = Enumerable.Range(0, o.Length).Where(i => !IsFinite(mode.Input, o[i])).ToArray();
        output.WriteLine($"{modeName}: {value} in {tensor}[{index}] → Throw: {error.Message}; Ignore: {nonFinite.Length} non-finite O elements");
        foreach (var i in nonFinite)
        {
            Assert.True(Reaches(mode, shape, tensor, value, index, i),
                $"seed {seed}: {value} in {tensor}[{index}] made O[{i}] non-finite with Ignore, outside what NonFiniteInputs.Ignore documents");
        }
    }

    /// <summary>
    /// Whether <see cref="NonFiniteInputs.Ignore"/>'s documentation lets a bad element at <paramref name="index"/> of
    /// <paramref name="tensor"/> make O[<paramref name="o"/>] non-finite (all tensors BHSD, batch 1). NaN in q or k, or in
    /// int8 v: nowhere. Inf in v, or anything in v used as it is (16-bit P·V): v's channel, in the query heads that read
    /// its KV head. Inf in q or k with 16-bit P·V: the rows that lost every score — q's 128-row Q scale tile in its head, or
    /// every row of the query heads that read k's head.
    /// </summary>
    private static bool Reaches(Mode mode, AttentionShape shape, string tensor, string value, int index, int o)
    {
        var d = shape.HeadDim;
        var (channel, row, headQ) = (o % d, o / d % shape.TokensQ, o / d / shape.TokensQ % shape.HeadsQ);
        var sameKvHead = shape.KvHeadOf(headQ) == index / d / shape.TokensKv % shape.HeadsKv;
        var float16Pv = mode.Options.Pv == PvPrecision.Float16;
        // Q's scale covers BlockRows query rows, the attention kernel's BlockM.
        const int qBlock = KernelDsl.Attention.Quantization.QuantizeQBlock128D128.BlockRows;
        return (tensor, value) switch
        {
            ("v", "NaN") => float16Pv && channel == index % d && sameKvHead,
            ("v", _) => channel == index % d && sameKvHead,
            (_, "NaN") => false,
            ("q", _) => float16Pv && headQ == index / d / shape.TokensQ % shape.HeadsQ && row / qBlock == index / d % shape.TokensQ / qBlock,
            _ => float16Pv && sameKvHead,
        };
    }

    [Theory]
    [MemberData(nameof(ModeNames))]
    public void Finite_inputs_do_not_throw_and_give_the_same_bits_as_Ignore(string modeName)
    {
        var mode = Modes[modeName];
        using var device = Gpu.OpenOrSkip();
        Int8AttentionGpuTests.SkipUnlessItRuns(device, mode.Input, mode.HeadDim, mode.Options);
        var random = new Random(Environment.TickCount);
        var shape = Shape(mode);
        var (q, k, v) = Inputs(random, mode, shape);
        var (checkedO, checkedLse) = Run(device, mode, shape, mode.Options, q, k, v);
        var (ignoredO, ignoredLse) = Run(device, mode, shape, mode.Options with { NonFinite = NonFiniteInputs.Ignore }, q, k, v);
        Assert.Equal(ignoredO, checkedO);
        Assert.Equal(ignoredLse.Select(BitConverter.SingleToInt32Bits), checkedLse.Select(BitConverter.SingleToInt32Bits));
        Assert.All(checkedO, bits => Assert.True(IsFinite(mode.Input, bits)));
    }

    [Fact]
    public void Every_tensor_is_counted_the_first_is_named_and_the_next_call_starts_from_zero()
    {
        using var device = Gpu.OpenOrSkip();
        var mode = Modes["f16 D128 u8 TransPrmt"];
        var random = new Random(Environment.TickCount);
        var shape = Shape(mode);
        var (q, k, v) = Inputs(random, mode, shape);
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        Half[] AsHalf(ushort[] x) => x.Select(BitConverter.UInt16BitsToHalf).ToArray();
        using var dq = device.Upload<Half>(AsHalf(q));
        using var dk = device.Upload<Half>(AsHalf(k));
        using var dv = device.Upload<Half>(AsHalf(v));
        using var dout = device.Allocate<Half>(q.Length);
        TensorView<Half> View(DeviceBuffer<Half> buffer, int heads, int tokens) => TensorView<Half>.Contiguous(buffer, shape.Batch, heads, tokens, shape.HeadDim);
        void Forward() => attention.Forward(stream, View(dq, shape.HeadsQ, shape.TokensQ), View(dk, shape.HeadsKv, shape.TokensKv),
            View(dv, shape.HeadsKv, shape.TokensKv), View(dout, shape.HeadsQ, shape.TokensQ), mode.Options);

        // Two bad elements in k, three in v (one in V's last, partial tile), none in q: k is named, every count reported.
        var badK = k.ToArray();
        badK[0] = Bits(Element.F16, "NaN");
        badK[^1] = 0xFC00; // −Inf
        var badV = v.ToArray();
        badV[5] = Bits(Element.F16, "+Inf");
        badV[shape.KvElements / 2] = Bits(Element.F16, "NaN");
        badV[^3] = Bits(Element.F16, "NaN");
        dk.CopyFrom(AsHalf(badK));
        dv.CopyFrom(AsHalf(badV));
        var error = Assert.Throws<NonFiniteInputException>(Forward);
        Assert.Equal("k", error.ParamName);
        Assert.Equal((0L, 2L, 3L), (error.QCount, error.KCount, error.VCount));
        Assert.Contains("q 0, k 2, v 3", error.Message, StringComparison.Ordinal);

        // The same instance, finite inputs again: the counters were zeroed for this call, so it does not throw.
        dk.CopyFrom(AsHalf(k));
        dv.CopyFrom(AsHalf(v));
        Forward();
        Assert.All(dout.ToArray(), h => Assert.True(Half.IsFinite(h)));
    }
}

using System.Runtime.InteropServices;
using KernelDsl;
using KernelDsl.Attention.Quantization;
using KernelDsl.Attention.Reference;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Quantization;

/// <summary>
/// Every declared quantize variant on the GPU against the CPU reference, element for element: int8 outputs,
/// float scales and channel means bit-equal. Inputs are fresh random or structured (large per-channel offsets),
/// in BHSD and BSHD strides, at token counts that are not multiples of the tiles; outputs are poisoned first.
/// </summary>
public class QuantizeGpuTests
{
    private const byte Poison = 0x5A;

    /// <summary>One variant as the test drives it: its options, a launch over the generated method, and its count-only pass.</summary>
    private sealed record Variant(string Name, Element Input, QuantizeOptions Options, bool HasMean,
        Action<CudaStream, ushort[], long, long, long, int, int, int, DeviceBuffer<sbyte>, DeviceBuffer<float>, DeviceBuffer<float>?, float, DeviceBuffer<uint>?> Launch,
        Func<int, int, int, long> OutputLength, Func<int, int, int, long> ScaleCount,
        Action<CudaStream, ushort[], long, long, long, int, int, int, DeviceBuffer<uint>> Count);

    /// <summary>Uploads the input bits as the element type the launcher takes, launches, and waits before freeing it.</summary>
    private static void WithInput<T>(CudaStream stream, ushort[] bits, Action<DeviceBuffer<T>> launch) where T : unmanaged
    {
        using var x = stream.Device.Upload<T>(MemoryMarshal.Cast<ushort, T>(bits));
        launch(x);
        stream.Synchronize();
    }

    private static readonly Variant[] Variants =
    [
        new("QBlock128D128", Element.F16, Options(128, QuantGranularity.PerRowBlock, 128),
            false, (s, x, sb, sh, ss, b, h, t, o, sc, _, mul, nf) => WithInput<Half>(s, x, dx => QuantizeQBlock128D128.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeQBlock128D128.OutputLength, QuantizeQBlock128D128.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<Half>(s, x, dx => QuantizeQBlock128D128.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("KSmoothBlock64D128", Element.F16, Options(128, QuantGranularity.PerRowBlock, 64) with { SubtractChannelMean = true, MeanSlices = QuantizeKSmoothBlock64D128.MeanSlices },
            true, (s, x, sb, sh, ss, b, h, t, o, sc, mean, mul, nf) => WithInput<Half>(s, x, dx => QuantizeKSmoothBlock64D128.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mean!, mul, nf)),
            QuantizeKSmoothBlock64D128.OutputLength, QuantizeKSmoothBlock64D128.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<Half>(s, x, dx => QuantizeKSmoothBlock64D128.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("VChannelD128", Element.F16, Options(128, QuantGranularity.PerChannel, 128),
            false, (s, x, sb, sh, ss, b, h, t, o, sc, _, mul, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelD128.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelD128.OutputLength, QuantizeVChannelD128.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelD128.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("VChannelPiD128", Element.F16, Options(128, QuantGranularity.PerChannel, 128) with
            {
                Transposed = true, TransposePad = QuantizeVChannelPiD128.TransposePad, StoredTokenOrder = QuantizeVChannelPiD128.StoredTokenOrder.ToArray().Select(x => (int)x).ToArray(),
            },
            false, (s, x, sb, sh, ss, b, h, t, o, sc, _, mul, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelPiD128.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelPiD128.OutputLength, QuantizeVChannelPiD128.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelPiD128.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("VChannelPiD64", Element.F16, Options(64, QuantGranularity.PerChannel, 128) with
            {
                Transposed = true, TransposePad = QuantizeVChannelPiD64.TransposePad, StoredTokenOrder = QuantizeVChannelPiD64.StoredTokenOrder.ToArray().Select(x => (int)x).ToArray(),
            },
            false, (s, x, sb, sh, ss, b, h, t, o, sc, _, mul, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelPiD64.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelPiD64.OutputLength, QuantizeVChannelPiD64.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelPiD64.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("QBlock128D128Bf16", Element.BF16, Options(128, QuantGranularity.PerRowBlock, 128),
            false, (s, x, sb, sh, ss, b, h, t, o, sc, _, mul, nf) => WithInput<ushort>(s, x, dx => QuantizeQBlock128D128Bf16.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeQBlock128D128Bf16.OutputLength, QuantizeQBlock128D128Bf16.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<ushort>(s, x, dx => QuantizeQBlock128D128Bf16.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("KSmoothBlock64D128Bf16", Element.BF16, Options(128, QuantGranularity.PerRowBlock, 64) with { SubtractChannelMean = true, MeanSlices = QuantizeKSmoothBlock64D128Bf16.MeanSlices },
            true, (s, x, sb, sh, ss, b, h, t, o, sc, mean, mul, nf) => WithInput<ushort>(s, x, dx => QuantizeKSmoothBlock64D128Bf16.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mean!, mul, nf)),
            QuantizeKSmoothBlock64D128Bf16.OutputLength, QuantizeKSmoothBlock64D128Bf16.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<ushort>(s, x, dx => QuantizeKSmoothBlock64D128Bf16.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("QBlock128D64", Element.F16, Options(64, QuantGranularity.PerRowBlock, 128),
            false, (s, x, sb, sh, ss, b, h, t, o, sc, _, mul, nf) => WithInput<Half>(s, x, dx => QuantizeQBlock128D64.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeQBlock128D64.OutputLength, QuantizeQBlock128D64.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<Half>(s, x, dx => QuantizeQBlock128D64.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("KSmoothBlock64D64", Element.F16, Options(64, QuantGranularity.PerRowBlock, 64) with { SubtractChannelMean = true, MeanSlices = QuantizeKSmoothBlock64D64.MeanSlices },
            true, (s, x, sb, sh, ss, b, h, t, o, sc, mean, mul, nf) => WithInput<Half>(s, x, dx => QuantizeKSmoothBlock64D64.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mean!, mul, nf)),
            QuantizeKSmoothBlock64D64.OutputLength, QuantizeKSmoothBlock64D64.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<Half>(s, x, dx => QuantizeKSmoothBlock64D64.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("VChannelD64", Element.F16, Options(64, QuantGranularity.PerChannel, 128),
            false, (s, x, sb, sh, ss, b, h, t, o, sc, _, mul, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelD64.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelD64.OutputLength, QuantizeVChannelD64.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelD64.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("QBlock128D64Bf16", Element.BF16, Options(64, QuantGranularity.PerRowBlock, 128),
            false, (s, x, sb, sh, ss, b, h, t, o, sc, _, mul, nf) => WithInput<ushort>(s, x, dx => QuantizeQBlock128D64Bf16.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeQBlock128D64Bf16.OutputLength, QuantizeQBlock128D64Bf16.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<ushort>(s, x, dx => QuantizeQBlock128D64Bf16.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("KSmoothBlock64D64Bf16", Element.BF16, Options(64, QuantGranularity.PerRowBlock, 64) with { SubtractChannelMean = true, MeanSlices = QuantizeKSmoothBlock64D64Bf16.MeanSlices },
            true, (s, x, sb, sh, ss, b, h, t, o, sc, mean, mul, nf) => WithInput<ushort>(s, x, dx => QuantizeKSmoothBlock64D64Bf16.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mean!, mul, nf)),
            QuantizeKSmoothBlock64D64Bf16.OutputLength, QuantizeKSmoothBlock64D64Bf16.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<ushort>(s, x, dx => QuantizeKSmoothBlock64D64Bf16.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("VChannelD128Bf16", Element.BF16, Options(128, QuantGranularity.PerChannel, 128),
            false, (s, x, sb, sh, ss, b, h, t, o, sc, _, mul, nf) => WithInput<ushort>(s, x, dx => QuantizeVChannelD128Bf16.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelD128Bf16.OutputLength, QuantizeVChannelD128Bf16.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<ushort>(s, x, dx => QuantizeVChannelD128Bf16.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
        new("VChannelD64Bf16", Element.BF16, Options(64, QuantGranularity.PerChannel, 128),
            false, (s, x, sb, sh, ss, b, h, t, o, sc, _, mul, nf) => WithInput<ushort>(s, x, dx => QuantizeVChannelD64Bf16.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelD64Bf16.OutputLength, QuantizeVChannelD64Bf16.ScaleCount,
            (s, x, sb, sh, ss, b, h, t, nf) => WithInput<ushort>(s, x, dx => QuantizeVChannelD64Bf16.CountNonFinite(s, dx, sb, sh, ss, b, h, t, nf))),
    ];

    private static QuantizeOptions Options(int headDim, QuantGranularity granularity, int blockRows) =>
        new() { HeadDim = headDim, Granularity = granularity, BlockRows = blockRows };

    public static TheoryData<string, int, int, int, bool, bool> Cases()
    {
        var data = new TheoryData<string, int, int, int, bool, bool>();
        foreach (var variant in Variants)
        {
            data.Add(variant.Name, 1, 1, 1, false, false);
            data.Add(variant.Name, 2, 3, 17, true, false);
            data.Add(variant.Name, 1, 2, 300, false, true);
            data.Add(variant.Name, 2, 2, 1000, true, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Variant_matches_the_cpu_reference_bit_for_bit(string name, int batch, int heads, int tokens, bool bshd, bool offsets)
    {
        var variant = Variants.Single(v => v.Name == name);
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        var d = variant.Options.HeadDim;
        var seed = Environment.TickCount ^ name.GetHashCode(StringComparison.Ordinal);
        var random = new Random(seed);
        var x = new ushort[(long)batch * heads * tokens * d];
        for (var i = 0; i < x.Length; i++)
        {
            var channel = i % d;
            // Structured: large per-channel offsets, as K has — what smoothing exists for.
            var value = (float)(random.NextDouble() * 2 - 1) * 3f + (offsets ? (channel % 5 - 2) * 40f : 0f);
            x[i] = variant.Input == Element.F16 ? BitConverter.HalfToUInt16Bits((Half)value) : (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16);
        }
        long strideS = bshd ? (long)heads * d : d, strideH = bshd ? d : (long)tokens * d, strideB = (long)heads * tokens * d;
        const float multiplier = 0.125f * 1.44269504f;
        var expected = QuantizeReference.Quantize(x, variant.Input, strideB, strideH, strideS, batch, heads, tokens, multiplier, variant.Options);

        using var output = device.Allocate<sbyte>(variant.OutputLength(batch, heads, tokens));
        using var scales = device.Allocate<float>(variant.ScaleCount(batch, heads, tokens));
        using var mean = variant.HasMean ? device.Allocate<float>((long)batch * heads * d) : null;
        output.FillBytes(Poison);
        scales.FillBytes(Poison);
        mean?.FillBytes(Poison);
        variant.Launch(stream, x, strideB, strideH, strideS, batch, heads, tokens, output, scales, mean, multiplier, null);
        stream.Synchronize();

        Assert.Equal(expected.Output.Length, (int)output.Length);
        var q = output.ToArray();
        var firstBad = Enumerable.Range(0, q.Length).FirstOrDefault(i => q[i] != expected.Output[i], -1);
        Assert.True(firstBad < 0, $"seed {seed}: output[{firstBad}] = {(firstBad < 0 ? 0 : q[firstBad])}, reference {(firstBad < 0 ? 0 : expected.Output[firstBad])}");
        Assert.Equal(expected.Scales.Select(BitConverter.SingleToInt32Bits), scales.ToArray().Select(BitConverter.SingleToInt32Bits));
        if (mean is not null)
        {
            Assert.Equal(expected.ChannelMean!.Select(BitConverter.SingleToInt32Bits), mean.ToArray().Select(BitConverter.SingleToInt32Bits));
        }
    }

    public static TheoryData<string> VariantNames() => new(Variants.Select(v => v.Name));

    /// <summary>The raw bits of NaN, +Inf and −Inf in the variant's input type.</summary>
    private static ushort[] NonFiniteBits(Element input) => input == Element.F16 ? [0x7E00, 0x7C00, 0xFC00] : [0x7FC0, 0x7F80, 0xFF80];

    [Theory]
    [MemberData(nameof(VariantNames))]
    public void The_count_is_the_number_of_NaN_and_Inf_planted_and_the_codes_are_unchanged(string name)
    {
        var variant = Variants.Single(v => v.Name == name);
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        var d = variant.Options.HeadDim;
        var seed = Environment.TickCount ^ name.GetHashCode(StringComparison.Ordinal);
        var random = new Random(seed);
        const int batch = 2, heads = 3, tokens = 150;
        // BSHD with 8 unread channels after each token's heads, all NaN: only elements the kernel reads may be counted.
        long strideS = heads * d + 8, strideH = d, strideB = tokens * strideS;
        var bad = NonFiniteBits(variant.Input);
        var x = new ushort[batch * strideB];
        Array.Fill(x, bad[0]);
        var read = new List<long>();
        for (var b = 0; b < batch; b++)
        {
            for (var h = 0; h < heads; h++)
            {
                for (var s = 0; s < tokens; s++)
                {
                    for (var c = 0; c < d; c++)
                    {
                        var value = (float)(random.NextDouble() * 2 - 1) * 3f;
                        read.Add(b * strideB + h * strideH + s * strideS + c);
                        x[read[^1]] = variant.Input == Element.F16 ? BitConverter.HalfToUInt16Bits((Half)value) : (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16);
                    }
                }
            }
        }
        // NaN, +Inf and −Inf at three distinct random elements.
        var planted = read.OrderBy(_ => random.Next()).Take(bad.Length).ToArray();
        for (var i = 0; i < planted.Length; i++)
        {
            x[planted[i]] = bad[i];
        }
        const float multiplier = 0.125f * 1.44269504f;
        var expected = QuantizeReference.Quantize(x, variant.Input, strideB, strideH, strideS, batch, heads, tokens, multiplier, variant.Options);

        using var output = device.Allocate<sbyte>(variant.OutputLength(batch, heads, tokens));
        using var scales = device.Allocate<float>(variant.ScaleCount(batch, heads, tokens));
        using var mean = variant.HasMean ? device.Allocate<float>((long)batch * heads * d) : null;
        var disposed = device.Allocate<uint>(1);
        disposed.Dispose();
        Assert.Equal("nonFinite", Assert.Throws<ObjectDisposedException>(() => variant.Launch(stream, x, strideB, strideH, strideS, batch, heads, tokens, output, scales, mean, multiplier, disposed)).ObjectName);
        Assert.Equal("nonFinite", Assert.Throws<ObjectDisposedException>(() => variant.Count(stream, x, strideB, strideH, strideS, batch, heads, tokens, disposed)).ObjectName);

        using var counter = device.Allocate<uint>(1);
        using var countOnly = device.Allocate<uint>(1);
        counter.FillBytes(0);
        countOnly.FillBytes(0);
        output.FillBytes(Poison);
        scales.FillBytes(Poison);
        variant.Launch(stream, x, strideB, strideH, strideS, batch, heads, tokens, output, scales, mean, multiplier, counter);
        variant.Count(stream, x, strideB, strideH, strideS, batch, heads, tokens, countOnly);
        stream.Synchronize();

        Assert.Equal(3u, counter.ToArray()[0]);
        Assert.Equal(3u, countOnly.ToArray()[0]);
        // Counting changes nothing else: NaN still quantizes to 0 and an Inf still zeroes its tile or channel, as the reference says.
        Assert.True(output.ToArray().SequenceEqual(expected.Output), $"seed {seed}: int8 output differs from the reference");
        Assert.Equal(expected.Scales.Select(BitConverter.SingleToInt32Bits), scales.ToArray().Select(BitConverter.SingleToInt32Bits));
        // The counter accumulates: a second launch adds its count.
        variant.Launch(stream, x, strideB, strideH, strideS, batch, heads, tokens, output, scales, mean, multiplier, counter);
        stream.Synchronize();
        Assert.Equal(6u, counter.ToArray()[0]);
    }
}

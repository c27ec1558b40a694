using System.Runtime.InteropServices;
using KernelDsl;
using KernelDsl.Attention.Quantization;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Quantization;

/// <summary>
/// The e4m3 V quantizers of fp8 P·V on the GPU against the CPU reference, byte for byte (codes) and bit for bit
/// (scales), and against the e4m3 rounding bound, which does not depend on the reference. Inputs are fresh random and
/// structured (outlier channels, a zero channel, −0, magnitudes spread over many e4m3 exponents and into subnormals),
/// BHSD and BSHD, at token counts that are not multiples of the 64-token padding; outputs are poisoned first.
/// sm_89 and later (cvt.rn.satfinite.e4m3x2.f32); skipped on older devices.
/// </summary>
public class QuantizeE4m3GpuTests
{
    private const byte Poison = 0x5A;

    private sealed record Variant(string Name, Element Input, QuantizeOptions Options, KernelModuleDefinition Module,
        Action<CudaStream, ushort[], long, long, long, int, int, int, DeviceBuffer<byte>, DeviceBuffer<float>, float, DeviceBuffer<uint>?> Launch,
        Func<int, int, int, long> OutputLength, Func<int, int, int, long> ScaleCount);

    private static void WithInput<T>(CudaStream stream, ushort[] bits, Action<DeviceBuffer<T>> launch) where T : unmanaged
    {
        using var x = stream.Device.Upload<T>(MemoryMarshal.Cast<ushort, T>(bits));
        launch(x);
        stream.Synchronize();
    }

    private static QuantizeOptions Pi(int headDim, int pad, ReadOnlySpan<byte> order) => new()
    {
        HeadDim = headDim, Granularity = QuantGranularity.PerChannel, BlockRows = 128, Output = Element.E4M3,
        Transposed = true, TransposePad = pad, StoredTokenOrder = order.ToArray().Select(x => (int)x).ToArray(),
    };

    private static readonly Variant[] Variants =
    [
        new("VChannelPiD128E4m3", Element.F16, Pi(128, QuantizeVChannelPiD128E4m3.TransposePad, QuantizeVChannelPiD128E4m3.StoredTokenOrder), QuantizeVChannelPiD128E4m3.Module,
            (s, x, sb, sh, ss, b, h, t, o, sc, mul, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelPiD128E4m3.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelPiD128E4m3.OutputLength, QuantizeVChannelPiD128E4m3.ScaleCount),
        new("VChannelPiD64E4m3", Element.F16, Pi(64, QuantizeVChannelPiD64E4m3.TransposePad, QuantizeVChannelPiD64E4m3.StoredTokenOrder), QuantizeVChannelPiD64E4m3.Module,
            (s, x, sb, sh, ss, b, h, t, o, sc, mul, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelPiD64E4m3.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelPiD64E4m3.OutputLength, QuantizeVChannelPiD64E4m3.ScaleCount),
        new("VChannelPiD128E4m3Bf16", Element.BF16, Pi(128, QuantizeVChannelPiD128E4m3Bf16.TransposePad, QuantizeVChannelPiD128E4m3Bf16.StoredTokenOrder), QuantizeVChannelPiD128E4m3Bf16.Module,
            (s, x, sb, sh, ss, b, h, t, o, sc, mul, nf) => WithInput<ushort>(s, x, dx => QuantizeVChannelPiD128E4m3Bf16.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelPiD128E4m3Bf16.OutputLength, QuantizeVChannelPiD128E4m3Bf16.ScaleCount),
        new("VChannelPiD64E4m3Bf16", Element.BF16, Pi(64, QuantizeVChannelPiD64E4m3Bf16.TransposePad, QuantizeVChannelPiD64E4m3Bf16.StoredTokenOrder), QuantizeVChannelPiD64E4m3Bf16.Module,
            (s, x, sb, sh, ss, b, h, t, o, sc, mul, nf) => WithInput<ushort>(s, x, dx => QuantizeVChannelPiD64E4m3Bf16.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelPiD64E4m3Bf16.OutputLength, QuantizeVChannelPiD64E4m3Bf16.ScaleCount),
        new("VChannelD128E4m3", Element.F16, new QuantizeOptions { HeadDim = 128, Granularity = QuantGranularity.PerChannel, BlockRows = 128, Output = Element.E4M3 }, QuantizeVChannelD128E4m3.Module,
            (s, x, sb, sh, ss, b, h, t, o, sc, mul, nf) => WithInput<Half>(s, x, dx => QuantizeVChannelD128E4m3.Launch(s, dx, sb, sh, ss, b, h, t, o, sc, mul, nf)),
            QuantizeVChannelD128E4m3.OutputLength, QuantizeVChannelD128E4m3.ScaleCount),
    ];

    public static TheoryData<string, int, int, int, bool, bool> Cases()
    {
        var data = new TheoryData<string, int, int, int, bool, bool>();
        foreach (var variant in Variants)
        {
            data.Add(variant.Name, 1, 1, 1, false, false);
            data.Add(variant.Name, 2, 3, 17, true, true);
            data.Add(variant.Name, 1, 2, 300, false, true);
            data.Add(variant.Name, 2, 2, 1000, true, false);
        }
        return data;
    }

    private static CudaDevice OpenSm89OrSkip(Variant variant)
    {
        var device = Gpu.OpenOrSkip();
        if (!variant.Module.RunsOn(device.ComputeCapability))
        {
            device.Dispose();
            Assert.Skip($"{variant.Module.Name} is built for {string.Join(", ", variant.Module.Targets)} (cvt to e4m3 needs sm_89); this device is sm_{device.ComputeCapability}.");
        }
        return device;
    }

    private static ushort Bits(float value, Element input) =>
        input == Element.F16 ? BitConverter.HalfToUInt16Bits((Half)value) : (ushort)(BitConverter.SingleToUInt32Bits(value) >> 16);

    /// <summary>
    /// Random: uniform ±3. Structured: each channel's magnitude 2^(c mod 24 − 12) (codes across e4m3's exponents, small
    /// channels' values into its subnormals once one outlier token sets their scale), every 16th channel's token 0 ×60,
    /// channel 7 all zero and channel 9's even tokens −0.
    /// </summary>
    private static ushort[] Input(Random random, Element input, int count, int d, bool structured)
    {
        var x = new ushort[count];
        for (var i = 0; i < count; i++)
        {
            var (token, channel) = (i / d, i % d);
            var value = (float)(random.NextDouble() * 2 - 1) * 3f;
            if (structured)
            {
                value *= MathF.ScaleB(1f, channel % 24 - 12);
                value = channel % 16 == 3 && token == 0 ? 60f * MathF.ScaleB(1f, channel % 24 - 12) : value;
                value = channel == 7 ? 0f : channel == 9 && token % 2 == 0 ? -0f : value;
            }
            x[i] = Bits(value, input);
        }
        return x;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Codes_and_scales_match_the_cpu_reference_bit_for_bit(string name, int batch, int heads, int tokens, bool bshd, bool structured)
    {
        var variant = Variants.Single(v => v.Name == name);
        using var device = OpenSm89OrSkip(variant);
        using var stream = device.CreateStream();
        var d = variant.Options.HeadDim;
        var seed = Environment.TickCount ^ name.GetHashCode(StringComparison.Ordinal);
        // Dense [tokens][heads][D] or [heads][tokens][D] per batch; the generator fills it in memory order.
        var x = Input(new Random(seed), variant.Input, batch * heads * tokens * d, d, structured);
        long strideS = bshd ? (long)heads * d : d, strideH = bshd ? d : (long)tokens * d, strideB = (long)heads * tokens * d;
        // V takes no multiplier in attention; a non-power-of-two one checks that the product is rounded as the reference's.
        var multiplier = structured ? 1f : 0.3f;
        var expected = QuantizeReference.Quantize(x, variant.Input, strideB, strideH, strideS, batch, heads, tokens, multiplier, variant.Options);

        using var output = device.Allocate<byte>(variant.OutputLength(batch, heads, tokens));
        using var scales = device.Allocate<float>(variant.ScaleCount(batch, heads, tokens));
        output.FillBytes(Poison);
        scales.FillBytes(Poison);
        variant.Launch(stream, x, strideB, strideH, strideS, batch, heads, tokens, output, scales, multiplier, null);
        stream.Synchronize();

        var codes = output.ToArray();
        var reference = expected.Bytes();
        Assert.Equal(reference.Length, codes.Length);
        var firstBad = Enumerable.Range(0, codes.Length).FirstOrDefault(i => codes[i] != reference[i], -1);
        Assert.True(firstBad < 0, $"seed {seed}: output[{firstBad}] = 0x{(firstBad < 0 ? 0 : codes[firstBad]):X2}, reference 0x{(firstBad < 0 ? 0 : reference[firstBad]):X2}");
        var gpuScales = scales.ToArray();
        Assert.Equal(expected.Scales.Select(BitConverter.SingleToInt32Bits), gpuScales.Select(BitConverter.SingleToInt32Bits));

        // Independent of the reference: each code is within half an e4m3 step of v / scale (2^-4 relative for normals,
        // 2^-10 absolute below 2^-6), and every |v / scale| ≤ 448.
        var order = variant.Options.StoredTokenOrder;
        var padded = expected.PaddedTokens;
        for (var bh = 0; bh < batch * heads; bh++)
        {
            var (b, h) = (bh / heads, bh % heads);
            for (var s = 0; s < tokens; s++)
            {
                for (var c = 0; c < d; c++)
                {
                    var bits = x[b * strideB + h * strideH + s * strideS + c];
                    var v = (double)(variant.Input == Element.F16 ? QuantizeReference.F16ToSingle(bits) : QuantizeReference.Bf16ToSingle(bits)) * multiplier;
                    var index = variant.Options.Transposed
                        ? ((long)bh * d + c) * padded + QuantizeReference.PositionOf(s, order)
                        : ((long)bh * tokens + s) * d + c;
                    var target = v / gpuScales[bh * d + c];
                    var decoded = E4m3.ToSingle(codes[index]);
                    var bound = Math.Max(Math.Abs(target) / 16, Math.ScaleB(1, -10)) * (1 + 1e-6);
                    Assert.True(Math.Abs(target) <= 448 * (1 + 1e-6) && Math.Abs(decoded - target) <= bound,
                        $"seed {seed}: (bh {bh}, token {s}, channel {c}) v / scale = {target}, code 0x{codes[index]:X2} = {decoded}");
                }
            }
        }
    }

    public static TheoryData<string> VariantNames() => new(Variants.Select(v => v.Name));

    [Theory]
    [MemberData(nameof(VariantNames))]
    public void NaN_and_Inf_are_counted_and_become_the_references_codes(string name)
    {
        var variant = Variants.Single(v => v.Name == name);
        using var device = OpenSm89OrSkip(variant);
        using var stream = device.CreateStream();
        var d = variant.Options.HeadDim;
        var seed = Environment.TickCount ^ name.GetHashCode(StringComparison.Ordinal);
        var random = new Random(seed);
        const int batch = 1, heads = 2, tokens = 150;
        var x = Input(random, variant.Input, batch * heads * tokens * d, d, structured: false);
        ushort[] bad = variant.Input == Element.F16 ? [0x7E00, 0x7C00, 0xFC00] : [0x7FC0, 0x7F80, 0xFF80];
        foreach (var (bits, i) in bad.Select((bits, i) => (bits, i)))
        {
            x[random.Next(x.Length / bad.Length) * bad.Length + i] = bits;  // distinct elements
        }
        long strideS = d, strideH = (long)tokens * d, strideB = heads * strideH;
        var expected = QuantizeReference.Quantize(x, variant.Input, strideB, strideH, strideS, batch, heads, tokens, 1f, variant.Options);
        // NaN becomes e4m3's NaN code, and so does each Inf (Inf · 0), whose channel is otherwise 0.
        Assert.Equal(bad.Length, expected.Bytes().Count(code => code == E4m3.NaN));

        using var output = device.Allocate<byte>(variant.OutputLength(batch, heads, tokens));
        using var scales = device.Allocate<float>(variant.ScaleCount(batch, heads, tokens));
        using var counter = device.Allocate<uint>(1);
        counter.FillBytes(0);
        output.FillBytes(Poison);
        scales.FillBytes(Poison);
        variant.Launch(stream, x, strideB, strideH, strideS, batch, heads, tokens, output, scales, 1f, counter);
        stream.Synchronize();

        Assert.Equal((uint)bad.Length, counter.ToArray()[0]);
        Assert.True(output.ToArray().SequenceEqual(expected.Bytes()), $"seed {seed}: e4m3 output differs from the reference");
        Assert.Equal(expected.Scales.Select(BitConverter.SingleToInt32Bits), scales.ToArray().Select(BitConverter.SingleToInt32Bits));
    }
}

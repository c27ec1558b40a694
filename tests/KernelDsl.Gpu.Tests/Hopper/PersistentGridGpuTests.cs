using GpuTests.Attention;
using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;
using KernelDsl.Runtime.Tests;

namespace GpuTests.Hopper;

/// <summary>
/// The persistent wgmma grid (<c>Persistent = true</c>) computes every tile exactly as the one-tile-a-block grid does,
/// only on fewer, longer-lived blocks, in another order and with other K/V stage numbers. Its O and LSE must therefore
/// equal that grid's kernel bit for bit. The shapes take several rounds of tiles (more tiles than SMs, odd rounds
/// mirrored), with tails, GQA and Sq ≠ Sk, for plain, causal, masked (window, data-dependent documents) and score-modified
/// kernels. The float64 bars follow from the one-tile kernels' own tests.
/// </summary>
public class PersistentGridGpuTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> Pairs() => new()
    {
        { "Int8AttentionD128WgmmaStages3", "Int8AttentionD128WgmmaPersistent" },
        { "Int8AttentionD128WgmmaStages3.Causal", "Int8AttentionD128WgmmaPersistent.Causal" },
        { "Int8AttentionD128WgmmaFusedQ", "Int8AttentionD128WgmmaFusedQPersistent" },
        { "Int8AttentionD128WgmmaFusedQ.Causal", "Int8AttentionD128WgmmaFusedQPersistent.Causal" },
        { "SlidingWindow.D128Wgmma", "SlidingWindow.D128WgmmaPersistent" },
        { "DocumentMask.D128Wgmma", "DocumentMask.D128WgmmaPersistent" },
        { "Softcap.D128Wgmma", "Softcap.D128WgmmaPersistent" },
        { "PrefixLm.D128Wgmma", "PrefixLm.D128WgmmaPersistent" },
        { "Int8AttentionD64Wgmma", "Int8AttentionD64WgmmaPersistent" },
        { "Int8AttentionD64Wgmma.Causal", "Int8AttentionD64WgmmaPersistent.Causal" },
        { "Int8AttentionD64WgmmaFusedQ", "Int8AttentionD64WgmmaFusedQPersistent" },
        { "Int8AttentionD64WgmmaFusedQ.Causal", "Int8AttentionD64WgmmaFusedQPersistent.Causal" },
    };

    [Theory]
    [MemberData(nameof(Pairs))]
    public void The_persistent_grid_gives_the_one_tile_grids_bits(string oneTile, string persistent)
    {
        using var device = Gpu.OpenOrSkip();
        static AttentionKernelInfo Kernel(string name) => Int8Attention.Kernels.Single(k => k.Name == "KernelDsl.Attention.FlashAttention." + name);
        var (reference, walker) = (Kernel(oneTile), Kernel(persistent));
        if (!walker.RunsOn(device.ComputeCapability))
        {
            Assert.Skip($"{persistent} runs on sm_90a; this device is {device.ArchName}.");
        }
        var seed = Environment.TickCount;
        var random = new Random(seed);
        // 192 tiles (two rounds on 132 SMs), GQA 4:1, a tail; then 528 tiles (four rounds) with Sq < Sk.
        foreach (var shape in new[] { new AttentionShape(2, 8, 2, 1500, 1500, reference.HeadDim, reference.Causal), new AttentionShape(1, 16, 16, 700, 2100, reference.HeadDim, reference.Causal) })
        {
            using var stream = device.CreateStream();
            using var attention = new Int8Attention(device);
            using var q = device.Upload(Int8AttentionGpuTests.Gaussian(random, shape.QElements));
            using var k = device.Upload(Int8AttentionGpuTests.Gaussian(random, shape.KvElements));
            using var v = device.Upload(Int8AttentionGpuTests.Gaussian(random, shape.KvElements));
            var tokens = Math.Max(shape.TokensQ, shape.TokensKv);
            using var documents = device.Upload(Enumerable.Range(0, tokens).Select(i => i * 5 / tokens).ToArray());
            var arguments = walker.Name.Contains("SlidingWindow", StringComparison.Ordinal) ? new ModifierArguments().Set("window", 256)
                : walker.Name.Contains("DocumentMask", StringComparison.Ordinal) ? new ModifierArguments().Set("documents", documents)
                : walker.Name.Contains("Softcap", StringComparison.Ordinal) ? new ModifierArguments().Set("cap", 30f)
                : walker.Name.Contains("PrefixLm", StringComparison.Ordinal) ? new ModifierArguments().Set("prefix", 300)
                : ModifierArguments.None;
            TensorView<Half> View(DeviceBuffer<Half> x, int heads, int tokens) => TensorView<Half>.Contiguous(x, shape.Batch, heads, tokens, shape.HeadDim);
            (Half[] O, float[] Lse) Run(AttentionKernelInfo kernel)
            {
                using var o = device.Allocate<Half>(shape.QElements);
                using var lse = device.Allocate<float>(shape.LseElements);
                o.FillBytes(0x7E);
                lse.FillBytes(0x7F);
                attention.Forward(stream, kernel, View(q, shape.HeadsQ, shape.TokensQ), View(k, shape.HeadsKv, shape.TokensKv), View(v, shape.HeadsKv, shape.TokensKv),
                    View(o, shape.HeadsQ, shape.TokensQ), arguments, null, lse);
                stream.Synchronize();
                return (o.ToArray(), lse.ToArray());
            }
            var (expected, actual) = (Run(reference), Run(walker));
            var differing = Enumerable.Range(0, expected.O.Length).Count(i => BitConverter.HalfToUInt16Bits(expected.O[i]) != BitConverter.HalfToUInt16Bits(actual.O[i]));
            var lseDiffering = Enumerable.Range(0, expected.Lse.Length).Count(i => BitConverter.SingleToInt32Bits(expected.Lse[i]) != BitConverter.SingleToInt32Bits(actual.Lse[i]));
            output.WriteLine($"{persistent} {shape.Batch}×{shape.HeadsQ}/{shape.HeadsKv}×{shape.TokensQ}×{shape.TokensKv}: {differing} O and {lseDiffering} LSE values differ from {oneTile}");
            Assert.True(differing == 0 && lseDiffering == 0,
                $"seed {seed}, {persistent} at {shape.TokensQ}×{shape.TokensKv}: {differing} of {expected.O.Length} O values and {lseDiffering} LSEs differ from {oneTile}");
        }
    }
}

using System.Runtime.InteropServices;
using AttentionTests.KvCache;
using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.KvCache;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;
using KernelDsl.Runtime.Tests;

namespace GpuTests.KvCache;

/// <summary>
/// The decode variants of the modifier families (SlidingWindow, Alibi, Softcap) through <see cref="PagedKvCache"/> on the
/// GPU, against float64 with the same C# modifier methods over the original tokens (the prefill's u8 bars) and, for a fixed
/// split count, against the kernel's int8 model with the modifier (1e-2): windows smaller than a page, across page
/// boundaries and longer than every sequence; Sq = 1 and chunks; GQA 8:1 and 1:1; decode steps and prefill chunks in one
/// launch; chunked prefill. Fresh random inputs (K with per-channel offsets) each run; O and LSE are poisoned before every
/// launch.
/// </summary>
public class PagedDecodeModifierGpuTests(ITestOutputHelper output)
{
    private const double OutputBar = 3e-2;
    private const double LseBar = 0.1;

    /// <summary>The variant for a case of <see cref="DecodeModifierCases"/>, its device arguments bound as the CPU's are.</summary>
    private static PagedDecodeKernel<Half> Bind(string name, CudaDevice device, int headsQ, List<IDisposable> owned)
    {
        if (name.StartsWith("window ", StringComparison.Ordinal))
        {
            return SlidingWindow.PagedDecodeD128.With(DecodeModifierCases.WindowOf(name));
        }
        switch (name)
        {
            case "alibi":
                var slopes = device.Upload<float>(DecodeModifierCases.Slopes(headsQ));
                owned.Add(slopes);
                return Alibi.PagedDecodeD128.With(slopes);
            case "softcap":
                return Softcap.PagedDecodeD128.With(DecodeModifierCases.Cap);
            default:
                throw new ArgumentException($"no variant for '{name}'", nameof(name));
        }
    }

    [Theory]
    [InlineData("window 20", 1, 8, 1, new[] { 1, 63, 64, 65, 1000, 4097 })]
    [InlineData("window 20", 16, 8, 1, new[] { 16, 64, 65, 700 })]
    [InlineData("window 150", 1, 8, 1, new[] { 1, 63, 64, 65, 3000 })]
    [InlineData("window 150", 4, 4, 4, new[] { 4, 63, 129, 2048 })]
    [InlineData("window 5000", 3, 8, 1, new[] { 3, 64, 65, 500 })]
    [InlineData("alibi", 1, 8, 1, new[] { 1, 63, 64, 65, 2000 })]
    [InlineData("alibi", 16, 2, 2, new[] { 16, 63, 129, 1500 })]
    [InlineData("softcap", 1, 8, 1, new[] { 1, 63, 64, 65, 2000 })]
    [InlineData("softcap", 4, 16, 2, new[] { 5, 127, 128, 129, 999 })]
    public void Each_variant_meets_the_bars_with_its_modifier(string modifier, int seqQ, int headsQ, int headsKv, int[] lengths)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new PagedDecodeGpuTests.Fixture(device, stream, new Random(seed), 128, Element.F16, headsKv, lengths, kOffsets: true);
        var batch = fixture.Ids.Where(id => fixture.Cache.Table.LengthOf(id) >= seqQ).ToArray();
        foreach (var splits in new int?[] { null, 1, 7 })
        {
            Check(fixture, stream, new Random(seed + 1), modifier, batch, batch.Select(_ => seqQ).ToArray(), headsQ, splits,
                $"{modifier}, Sq = {seqQ}, {headsQ}:{headsKv}, splits {splits?.ToString() ?? "auto"}");
        }
    }

    /// <summary>Decode steps and prefill chunks in one launch with a modifier: a sequence with no query, a page-long chunk, chunks across a page boundary.</summary>
    [Theory]
    [InlineData("window 20")]
    [InlineData("window 150")]
    [InlineData("alibi")]
    [InlineData("softcap")]
    public void Decode_steps_and_chunks_mix_in_one_launch_with_the_modifier(string modifier)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new PagedDecodeGpuTests.Fixture(device, stream, new Random(seed), 128, Element.F16, 1, [1, 63, 64, 65, 700, 3000], kOffsets: true);
        foreach (var splits in new int?[] { null, 1, 7 })
        {
            Check(fixture, stream, new Random(seed + 1), modifier, fixture.Ids, [1, 0, 64, 17, 300, 5], 8, splits, $"mixed, {modifier}, splits {splits?.ToString() ?? "auto"}");
        }
    }

    /// <summary>
    /// Pages wholly older than the window are in no split and never read: with their V scales set to NaN on the device the
    /// outputs are bit for bit those of before (a page that was read, even fully masked, would turn O into NaN through
    /// P·V's 0 × NaN), while NaN in a page the window reaches shows.
    /// </summary>
    [Theory]
    [InlineData(20, 1)]
    [InlineData(150, 4)]
    public void Pages_older_than_the_window_are_never_read(int window, int seqQ)
    {
        const int HeadsQ = 8, D = 128, Length = 3000;
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new PagedDecodeGpuTests.Fixture(device, stream, new Random(5), D, Element.F16, 1, [Length], kOffsets: true);
        var cache = fixture.Cache;
        var kernel = SlidingWindow.PagedDecodeD128.With(window);
        using var queries = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(KvCacheTestData.Tokens(new Random(6), seqQ * HeadsQ, 1, D, Element.F16)));
        using var outputs = device.Allocate<Half>(seqQ * HeadsQ * D);
        Half[] Run(int? splits)
        {
            stream.FillBytes(outputs, 0xFF);
            cache.Attend(stream, kernel, queries, fixture.Ids, [seqQ], HeadsQ, outputs, splits: splits);
            stream.Synchronize();
            return outputs.ToArray();
        }
        var before = new[] { Run(null), Run(1), Run(7) };
        Assert.All(before, o => Assert.All(o, x => Assert.True(Half.IsFinite(x))));
        var hidden = (Length - seqQ - window + 1) / 64;  // pages below the first query's oldest visible key
        var pages = cache.Table.PagesOf(fixture.Ids[0]);
        var scales = cache.VScale.ToArray();
        for (var page = 0; page < hidden; page++)
        {
            scales.AsSpan(pages[page] * D, D).Fill(float.NaN);
        }
        cache.VScale.CopyFrom(scales);
        var after = new[] { Run(null), Run(1), Run(7) };
        for (var i = 0; i < before.Length; i++)
        {
            Assert.Equal(MemoryMarshal.Cast<Half, ushort>(before[i]).ToArray(), MemoryMarshal.Cast<Half, ushort>(after[i]).ToArray());
        }
        scales.AsSpan(pages[hidden] * D, D).Fill(float.NaN);
        cache.VScale.CopyFrom(scales);
        Assert.Contains(Run(null), x => Half.IsNaN(x));
    }

    /// <summary>
    /// Chunked prefill with a modifier (<see cref="PagedKvCache.Prefill{T}(CudaStream, PagedDecodeKernel{T}, IReadOnlyList{int}, IReadOnlyList{int}, DeviceBuffer{T}, DeviceBuffer{T}, DeviceBuffer{T}, int, DeviceBuffer{T}, DeviceBuffer{float}?, float?, int?)"/>):
    /// random chunks of 1 to 511 tokens; every token's O and LSE meet the bars against float64 one-shot attention with the
    /// same modifier over the original tokens.
    /// </summary>
    [Theory]
    [InlineData("window 20")]
    [InlineData("window 150")]
    [InlineData("alibi")]
    [InlineData("softcap")]
    public void Chunked_prefill_with_the_modifier_meets_the_bars_of_a_one_shot_prefill(string modifier)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        const int HeadsQ = 8, HeadsKv = 2, D = 128;
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        var owned = new List<IDisposable>();
        try
        {
            var kernel = Bind(modifier, device, HeadsQ, owned);
            var modifiers = DecodeModifierCases.Modifiers(modifier, HeadsQ);
            int[] lengths = [700, 1500, 129];
            using var cache = PagedKvCache.Create(device, lengths.Sum(l => (l + 63) / 64) + 2, lengths.Length, HeadsKv, D);
            var ids = lengths.Select(_ => cache.AddSequence()).ToArray();
            var q = lengths.Select(n => KvCacheTestData.Tokens(random, n * HeadsQ, 1, D, Element.F16)).ToArray();
            var k = lengths.Select(n => KvCacheTestData.Tokens(random, n, HeadsKv, D, Element.F16, KvCacheTestData.Offsets(random, HeadsKv, D))).ToArray();
            var v = lengths.Select(n => KvCacheTestData.Tokens(random, n, HeadsKv, D, Element.F16)).ToArray();
            var o = lengths.Select(n => new ushort[n * HeadsQ * D]).ToArray();
            var lse = lengths.Select(n => new float[n * HeadsQ]).ToArray();
            var held = new int[lengths.Length];
            while (held.Zip(lengths).Any(x => x.First < x.Second))
            {
                var counts = lengths.Select((n, i) => Math.Min(n - held[i], new[] { 1, 17, 63, 64, 65, 200, 511 }[random.Next(7)])).ToArray();
                ushort[] Slice(ushort[][] x, int width) => counts.SelectMany((c, i) => x[i].AsSpan(held[i] * width, c * width).ToArray()).ToArray();
                var sq = Slice(q, HeadsQ * D);
                using var dq = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(sq));
                using var dk = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(Slice(k, HeadsKv * D)));
                using var dv = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(Slice(v, HeadsKv * D)));
                using var dout = device.Allocate<Half>(sq.Length);
                using var dlse = device.Allocate<float>(counts.Sum() * HeadsQ);
                stream.FillBytes(dout, 0xFF);
                stream.FillBytes(dlse, 0xFF);
                cache.Prefill(stream, kernel, ids, counts, dq, dk, dv, HeadsQ, dout, dlse);
                stream.Synchronize();
                var (so, slse, at) = (MemoryMarshal.Cast<Half, ushort>(dout.ToArray()).ToArray(), dlse.ToArray(), 0);
                for (var i = 0; i < lengths.Length; i++)
                {
                    so.AsSpan(at * HeadsQ * D, counts[i] * HeadsQ * D).CopyTo(o[i].AsSpan(held[i] * HeadsQ * D));
                    slse.AsSpan(at * HeadsQ, counts[i] * HeadsQ).CopyTo(lse[i].AsSpan(held[i] * HeadsQ));
                    (at, held[i]) = (at + counts[i], held[i] + counts[i]);
                }
            }
            for (var i = 0; i < lengths.Length; i++)
            {
                var n = lengths[i];
                var shape = new AttentionShape(1, HeadsQ, HeadsKv, n, n, D, causal: true, layout: TensorLayout.BSHD);
                double[] Values(ushort[] x) => x.Select(b => KvCacheTestData.Value(b, Element.F16)).ToArray();
                var expected = Float64Attention.Forward(shape, Values(q[i]), Values(k[i]), Values(v[i]), modifiers: modifiers);
                var chunked = Values(o[i]);
                Assert.All(chunked, x => Assert.True(double.IsFinite(x), $"sequence {i}: a chunked output is not finite"));
                var worstLse = 0.0;
                for (var t = 0; t < n; t++)
                {
                    for (var h = 0; h < HeadsQ; h++)
                    {
                        worstLse = Math.Max(worstLse, Math.Abs(lse[i][t * HeadsQ + h] - expected.Lse[h * n + t]));
                    }
                }
                var error = ErrorMetrics.Compare(chunked, expected.Output);
                output.WriteLine($"{modifier}, length {n}: chunked {error}, LSE max |Δ| {worstLse:E2}");
                Assert.True(error.RelativeL2 <= OutputBar && worstLse <= LseBar, $"{modifier}, length {n}: {error}, LSE max |Δ| {worstLse}");
            }
        }
        finally
        {
            owned.ForEach(x => x.Dispose());
        }
    }

    /// <summary>Bad modifier arguments and a variant of another cache shape are refused, named, before anything is queued.</summary>
    [Fact]
    public void Bad_modifier_arguments_are_refused_before_launch()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new PagedDecodeGpuTests.Fixture(device, stream, new Random(1), 128, Element.F16, 2, [3, 70], kOffsets: false);
        var (cache, ids) = (fixture.Cache, fixture.Ids);
        using var queries = device.Allocate<Half>(2 * 8 * 128);
        using var outputs = device.Allocate<Half>(2 * 8 * 128);
        stream.FillBytes(outputs, 0xFF);
        using var shortSlopes = device.Upload<float>(DecodeModifierCases.Slopes(8)[..7]);
        var thrown = Assert.ThrowsAny<ArgumentException>(() => cache.Attend(stream, Alibi.PagedDecodeD128.With(shortSlopes), queries, ids, [1, 1], 8, outputs));
        Assert.Equal("slopes", thrown.ParamName);
        Assert.Contains("one element per query head", thrown.Message);
        Assert.Equal("slopes", Assert.Throws<ArgumentNullException>(() => Alibi.PagedDecodeD128.With(null!)).ParamName);
        var disposed = device.Upload<float>(DecodeModifierCases.Slopes(8));
        disposed.Dispose();
        Assert.Equal("slopes", Assert.Throws<ObjectDisposedException>(() => Alibi.PagedDecodeD128.With(disposed)).ObjectName);
        // A D = 64 variant does not read a D = 128 cache's pages.
        Assert.Equal("kernel", Assert.ThrowsAny<ArgumentException>(() => cache.Attend(stream, PagedDecodeD64.With(), queries, ids, [1, 1], 8, outputs)).ParamName);
        Assert.Equal("kernel", Assert.ThrowsAny<ArgumentException>(() => cache.Attend(stream, null!, queries, ids, [1, 1], 8, outputs)).ParamName);
        Assert.Equal("queryTokens", Assert.ThrowsAny<ArgumentException>(() => cache.Attend(stream, Softcap.PagedDecodeD128.With(30f), queries, ids, [1, -1], 8, outputs)).ParamName);
        stream.Synchronize();
        Assert.All(MemoryMarshal.AsBytes(outputs.ToArray().AsSpan()).ToArray(), b => Assert.Equal(0xFF, b));
    }

    /// <summary>A small case of every modifier decode variant, for the sanitizers (SanitizerSmokeTests).</summary>
    internal void Small(string modifier)
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new PagedDecodeGpuTests.Fixture(device, stream, new Random(7), 128, Element.F16, 2, [4, 63, 64, 65, 300], kOffsets: true);
        Check(fixture, stream, new Random(8), modifier, fixture.Ids, [4, 4, 4, 4, 4], 8, 3, $"small {modifier}");
    }

    /// <summary>
    /// Attends with the variant of <paramref name="modifier"/> for <paramref name="counts"/>[i] query tokens of
    /// <paramref name="batch"/>[i], Q and O token-major, and checks every row against float64 with the modifier and, for a
    /// fixed split count, against the kernel's int8 model with it.
    /// </summary>
    private void Check(PagedDecodeGpuTests.Fixture fixture, CudaStream stream, Random random, string modifier, int[] batch, int[] counts, int headsQ, int? splits, string what)
    {
        var cache = fixture.Cache;
        var d = cache.HeadDim;
        var owned = new List<IDisposable>();
        try
        {
            var kernel = Bind(modifier, cache.Device, headsQ, owned);
            var modifiers = DecodeModifierCases.Modifiers(modifier, headsQ);
            var first = new int[batch.Length + 1];
            for (var i = 0; i < batch.Length; i++)
            {
                first[i + 1] = first[i] + counts[i];
            }
            var q = KvCacheTestData.Tokens(random, first[^1] * headsQ, 1, d, Element.F16);
            using var dq = cache.Device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(q));
            using var dout = cache.Device.Allocate<Half>(q.Length);
            using var dlse = cache.Device.Allocate<float>(Math.Max(1, first[^1] * headsQ));
            stream.FillBytes(dout, 0xFF);
            stream.FillBytes(dlse, 0xFF);
            cache.Attend(stream, kernel, dq, batch, counts, headsQ, dout, dlse, splits: splits);
            stream.Synchronize();
            new PagedDecodeGpuTests(output).Verify(fixture, batch, counts, headsQ, splits, what, q, MemoryMarshal.Cast<Half, ushort>(dout.ToArray()).ToArray(),
                dlse.ToArray(), modifiers);
        }
        finally
        {
            owned.ForEach(x => x.Dispose());
        }
    }
}

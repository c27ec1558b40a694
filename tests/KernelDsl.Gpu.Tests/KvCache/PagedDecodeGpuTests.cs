using System.Runtime.InteropServices;
using AttentionTests.KvCache;
using AttentionTests.Reference;
using KernelDsl;
using GpuTests.Attention;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.KvCache;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;
using KernelDsl.Runtime.Tests;

namespace GpuTests.KvCache;

/// <summary>
/// The paged decode kernels on the GPU against float64 attention over the original (unquantized) tokens, under the prefill's
/// bars for u8 P·V (Int8AttentionGpuTests: relative L2 ≤ 3e-2, LSE within 0.1): Sq = 1, 4 and 16, GQA 8:1 and 1:1, lengths
/// from 1 to 32k in one batch with the page boundaries 63, 64 and 65, pages scattered over the pool by interleaved appends,
/// one split and many. Outputs are poisoned (NaN) before each launch, so a row the kernels miss shows. Bad batches and fuzzed
/// page tables must be refused before launch, leaving the poison in place.
/// </summary>
public class PagedDecodeGpuTests(ITestOutputHelper output)
{
    private const double OutputBar = 3e-2;
    private const double LseBar = 0.1;
    private const double ModelBar = 1e-2;

    [Theory]
    [InlineData(128, Element.F16, 1, 8, 1, new[] { 1, 63, 64, 65, 1000, 4097 })]
    [InlineData(128, Element.F16, 4, 8, 1, new[] { 4, 63, 64, 65, 2048 })]
    [InlineData(128, Element.F16, 16, 8, 1, new[] { 16, 64, 65, 700 })]
    [InlineData(128, Element.F16, 1, 4, 4, new[] { 1, 63, 64, 65, 3000 })]
    [InlineData(128, Element.F16, 16, 2, 2, new[] { 16, 63, 129, 1500 })]
    [InlineData(128, Element.F16, 4, 16, 2, new[] { 5, 127, 128, 129, 999 })]
    [InlineData(64, Element.F16, 4, 8, 2, new[] { 4, 63, 64, 65, 2000 })]
    [InlineData(128, Element.BF16, 1, 8, 1, new[] { 1, 64, 65, 3000 })]
    [InlineData(128, Element.BF16, 16, 8, 1, new[] { 16, 65, 900 })]
    // Packing paths: two row tiles with padding rows (3 tokens × 8 heads = 24 rows), a group that does not divide 16
    // (6 heads), and a tile boundary inside one token's heads (32 heads on one KV head).
    [InlineData(128, Element.F16, 3, 8, 1, new[] { 3, 64, 65, 500 })]
    [InlineData(128, Element.F16, 2, 12, 2, new[] { 2, 63, 64, 700 })]
    [InlineData(128, Element.F16, 1, 32, 1, new[] { 1, 64, 65, 800 })]
    public void Decode_meets_the_prefill_bars_against_float64(int headDim, Element input, int seqQ, int headsQ, int headsKv, int[] lengths)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new Fixture(device, stream, new Random(seed), headDim, input, headsKv, lengths, kOffsets: true);
        foreach (var splits in new int?[] { null, 1, 7 })
        {
            Check(fixture, stream, new Random(seed + 1), seqQ, headsQ, splits, $"Sq = {seqQ}, {headsQ}:{headsKv}, splits {splits?.ToString() ?? "auto"}");
        }
    }

    [Fact]
    public void One_batch_holds_lengths_from_1_to_32k()
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new Fixture(device, stream, new Random(seed), 128, Element.F16, 1, [1, 63, 64, 65, 4096, 32768], kOffsets: true);
        Check(fixture, stream, new Random(seed + 1), 1, 8, null, "lengths 1 … 32768, Sq = 1, GQA 8:1");
        Check(fixture, stream, new Random(seed + 2), 4, 8, null, "lengths 1 … 32768 (4 ≤ length), Sq = 4, GQA 8:1", minLength: 4);
    }

    /// <summary>The declared D = 128 f16 configurations, the default first: those the autotuner and kdsl bench --decode choose among.</summary>
    private static IReadOnlyList<PagedDecodeKernel<Half>> Configurations => PagedKvCache.Configurations<Half>(128, Element.F16);

    /// <summary>The configurations <paramref name="device"/> runs (some are declared for sm_90 alone).</summary>
    private static IReadOnlyList<PagedDecodeKernel<Half>> ConfigurationsOn(CudaDevice device) => PagedKvCache.Configurations<Half>(128, Element.F16, device);

    /// <summary>The configurations besides the default, by name.</summary>
    public static TheoryData<string> OtherConfigurations() => new(Configurations.Skip(1).Select(k => k.Name));

    private static PagedDecodeKernel<Half> Configuration(string name) => Configurations.Single(k => k.Name == name);

    /// <summary>
    /// The other declared D = 128 configurations (two warps a block; eight warps on half-page steps): the same bars, and each
    /// one's own warp and step partition in the int8 model. Lengths put steps on both halves of a page and a tail in either.
    /// </summary>
    [Theory]
    [MemberData(nameof(OtherConfigurations))]
    public void Every_configuration_meets_the_same_bars(string configuration)
    {
        var kernel = Configuration(configuration);
        using (var device = Gpu.OpenOrSkip())
        {
            if (!kernel.RunsOn(device))
            {
                Assert.Skip($"{configuration} does not run on {device.Name} (sm_{device.ComputeCapability}, {device.MaxSharedMemoryPerBlockOptin} bytes of shared memory a block).");
            }
        }
        foreach (var (seqQ, headsQ, headsKv, lengths) in new[] { (1, 8, 1, new[] { 1, 31, 32, 33, 63, 64, 65, 1000, 4097 }), (16, 8, 2, new[] { 16, 64, 65, 700 }), (3, 8, 1, new[] { 3, 96, 500 }) })
        {
            Check(configuration, kernel, seqQ, headsQ, headsKv, lengths);
        }
    }

    private void Check(string configuration, PagedDecodeKernel<Half> kernel, int seqQ, int headsQ, int headsKv, int[] lengths)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new Fixture(device, stream, new Random(seed), 128, Element.F16, headsKv, lengths, kOffsets: true);
        foreach (var splits in new int?[] { null, 1, 7 })
        {
            Check(fixture, stream, new Random(seed + 1), seqQ, headsQ, splits, $"{configuration}, Sq = {seqQ}, {headsQ}:{headsKv}, splits {splits?.ToString() ?? "auto"}",
                kernel: kernel);
        }
    }

    /// <summary>
    /// PagedKvCache.Autotune: a plain decode times the three D = 128 configurations once for its key, runs the fastest, and
    /// still meets the bars; the same shape again is answered from memory, and a kernel given by the caller is never tuned.
    /// </summary>
    [Fact]
    public void An_autotuned_decode_meets_the_bars_and_is_timed_once_a_key()
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new Fixture(device, stream, new Random(seed), 128, Element.F16, 2, [1, 64, 65, 2000, 4097], kOffsets: true);
        var tuner = new Autotuner(null);
        (fixture.Cache.Autotune, fixture.Cache.Tuner) = (true, tuner);
        Check(fixture, stream, new Random(seed + 1), 4, 8, null, "autotuned, Sq = 4, 8:2", minLength: 4);
        var tuning = Assert.IsType<DecodeTuning>(fixture.Cache.LastTuning);
        output.WriteLine($"{tuning.Key}: {tuning.Kernel}; " + string.Join(", ", tuning.Result.Milliseconds.Select(t => $"{t.Key} {t.Value:F4} ms")));
        Assert.Contains(tuning.Kernel, ConfigurationsOn(device).Select(k => k.Name));
        Assert.Equal(ConfigurationsOn(device).Count, tuning.Result.Milliseconds.Count);
        Assert.Equal(1, tuner.Statistics.Tunings);
        Check(fixture, stream, new Random(seed + 2), 4, 8, null, "autotuned again", minLength: 4);
        // The same key again is answered by the cache's own record of the decision, without asking the tuner.
        Assert.Equal((1L, 0L), (tuner.Statistics.Tunings, tuner.Statistics.MemoryHits));
        Assert.Same(tuning, fixture.Cache.LastTuning);
        // A kernel the caller names runs as named, and neither asks the tuner nor changes what it last decided.
        Check(fixture, stream, new Random(seed + 3), 4, 8, 3, "a named kernel under Autotune", minLength: 4, kernel: PagedDecodeD128Warps2.With());
        Assert.Equal((1L, 0L), (tuner.Statistics.Tunings, tuner.Statistics.MemoryHits));
        Assert.Same(tuning, fixture.Cache.LastTuning);
        // A new tuner starts afresh: the cache forgets its decisions and asks it (from its memory, or timed again).
        var fresh = new Autotuner(null);
        fixture.Cache.Tuner = fresh;
        Check(fixture, stream, new Random(seed + 4), 4, 8, null, "autotuned by a new tuner", minLength: 4);
        Assert.Equal(1L, fresh.Statistics.Tunings);
    }

    /// <summary>
    /// The split count's device term comes from the driver's occupancy of the compiled kernel: on a device with 228 KB of
    /// shared memory an SM (sm_90), the default's block and the eight-warp one fit once, the two-warp configuration's twice.
    /// </summary>
    [Fact]
    public void Resident_blocks_come_from_the_compiled_kernel()
    {
        using var device = Gpu.OpenOrSkip();
        var (wide, narrow, eight) = (PagedDecodeD128.ResidentBlocks(device), PagedDecodeD128Warps2.ResidentBlocks(device), PagedDecodeD128Warps8.ResidentBlocks(device));
        output.WriteLine($"{device.Name}: {device.SmCount} SMs; resident blocks PagedDecodeD128 {wide}, PagedDecodeD128Warps2 {narrow}, PagedDecodeD128Warps8 {eight}");
        Assert.True(wide >= device.SmCount && narrow >= device.SmCount && eight >= device.SmCount, "every SM holds at least one block of each");
        if (device.ComputeCapability == 90)
        {
            Assert.Equal(device.SmCount, wide);
            Assert.Equal(2 * device.SmCount, narrow);
            Assert.Equal(device.SmCount, eight);
            // Three stages: four warps take 216 KB, one block an SM; two warps take 113 KB, and two blocks (with the 1 KB each
            // reserves) just fit sm_90's 228 KB.
            var (deep, narrowDeep) = (PagedDecodeD128Stages3.ResidentBlocks(device), PagedDecodeD128Warps2Stages3.ResidentBlocks(device));
            output.WriteLine($"resident blocks PagedDecodeD128Stages3 {deep}, PagedDecodeD128Warps2Stages3 {narrowDeep}");
            Assert.Equal(device.SmCount, deep);
            Assert.Equal(2 * device.SmCount, narrowDeep);
        }
        Assert.Equal(PagedDecodeD128.SplitsFor(32768, 1, 64, 8, 1, wide), PagedDecodeD128.With().SplitsOn(device, 32768, 1, 64, 8, 1));
    }

    /// <summary>
    /// Decode steps and prefill chunks in one launch (running totals of the query tokens): a sequence with no query, a
    /// chunk of a whole page, one past a page boundary, a long chunk spanning many row tiles beside single tokens.
    /// </summary>
    [Theory]
    [InlineData(128, Element.F16, 8, 1)]
    [InlineData(128, Element.BF16, 8, 2)]
    [InlineData(64, Element.F16, 4, 2)]
    [InlineData(128, Element.F16, 6, 6)]
    public void Decode_steps_and_chunks_mix_in_one_launch(int headDim, Element input, int headsQ, int headsKv)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new Fixture(device, stream, new Random(seed), headDim, input, headsKv, [1, 63, 64, 65, 700, 3000], kOffsets: true);
        int[] counts = [1, 0, 64, 17, 300, 5];
        foreach (var splits in new int?[] { null, 1, 7 })
        {
            Check(fixture, stream, new Random(seed + 1), fixture.Ids, counts, headsQ, splits, $"mixed {headsQ}:{headsKv} D = {headDim} {input}, splits {splits?.ToString() ?? "auto"}");
        }
    }

    /// <summary>
    /// Chunked prefill: each sequence's tokens arrive in random chunks (1 to 511 tokens, sequences that are done stay in the
    /// batch with none), appended and attended by <see cref="PagedKvCache.Prefill(CudaStream, IReadOnlyList{int}, IReadOnlyList{int}, DeviceBuffer{Half}, DeviceBuffer{Half}, DeviceBuffer{Half}, int, DeviceBuffer{Half}, DeviceBuffer{float}?, float?, int?)"/>
    /// in one launch per step. The chunked O and LSE of every token meet the bars against float64 causal attention over the
    /// original tokens, as a one-shot prefill of the same tokens (Int8Attention) does, and the two stay within twice the bar
    /// of each other.
    /// </summary>
    [Theory]
    [InlineData(128, Element.F16, 8, 2)]
    [InlineData(128, Element.BF16, 8, 1)]
    [InlineData(64, Element.F16, 4, 4)]
    public void Chunked_prefill_reproduces_a_one_shot_prefill_within_the_bars(int headDim, Element input, int headsQ, int headsKv)
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        int[] lengths = [700, 1500, 129];
        using var cache = PagedKvCache.Create(device, lengths.Sum(l => (l + 63) / 64) + 2, lengths.Length, headsKv, headDim, input);
        var ids = lengths.Select(_ => cache.AddSequence()).ToArray();
        var q = lengths.Select(n => KvCacheTestData.Tokens(random, n * headsQ, 1, headDim, input)).ToArray();
        var k = lengths.Select(n => KvCacheTestData.Tokens(random, n, headsKv, headDim, input, KvCacheTestData.Offsets(random, headsKv, headDim))).ToArray();
        var v = lengths.Select(n => KvCacheTestData.Tokens(random, n, headsKv, headDim, input)).ToArray();
        var o = lengths.Select(n => new ushort[n * headsQ * headDim]).ToArray();
        var lse = lengths.Select(n => new float[n * headsQ]).ToArray();
        var held = new int[lengths.Length];
        var steps = 0;
        while (held.Zip(lengths).Any(x => x.First < x.Second))
        {
            var counts = lengths.Select((n, i) => Math.Min(n - held[i], new[] { 1, 17, 63, 64, 65, 200, 511 }[random.Next(7)])).ToArray();
            ushort[] Slice(ushort[][] x, int width) => counts.SelectMany((c, i) => x[i].AsSpan(held[i] * width, c * width).ToArray()).ToArray();
            var (sq, sk, sv) = (Slice(q, headsQ * headDim), Slice(k, headsKv * headDim), Slice(v, headsKv * headDim));
            var rows = counts.Sum() * headsQ;
            using var dlse = device.Allocate<float>(rows);
            stream.FillBytes(dlse, 0xFF);
            ushort[] so;
            if (input == Element.BF16)
            {
                using var dq = device.Upload<ushort>(sq);
                using var dk = device.Upload<ushort>(sk);
                using var dv = device.Upload<ushort>(sv);
                using var dout = device.Allocate<ushort>(sq.Length);
                stream.FillBytes(dout, 0xFF);
                cache.Prefill(stream, ids, counts, dq, dk, dv, headsQ, dout, dlse);
                stream.Synchronize();
                so = dout.ToArray();
            }
            else
            {
                using var dq = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(sq));
                using var dk = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(sk));
                using var dv = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(sv));
                using var dout = device.Allocate<Half>(sq.Length);
                stream.FillBytes(dout, 0xFF);
                cache.Prefill(stream, ids, counts, dq, dk, dv, headsQ, dout, dlse);
                stream.Synchronize();
                so = MemoryMarshal.Cast<Half, ushort>(dout.ToArray()).ToArray();
            }
            var (at, slse) = (0, dlse.ToArray());
            for (var i = 0; i < lengths.Length; i++)
            {
                so.AsSpan(at * headsQ * headDim, counts[i] * headsQ * headDim).CopyTo(o[i].AsSpan(held[i] * headsQ * headDim));
                slse.AsSpan(at * headsQ, counts[i] * headsQ).CopyTo(lse[i].AsSpan(held[i] * headsQ));
                (at, held[i]) = (at + counts[i], held[i] + counts[i]);
            }
            steps++;
        }
        output.WriteLine($"{steps} chunked steps");
        for (var i = 0; i < lengths.Length; i++)
        {
            var n = lengths[i];
            // One sequence, token-major: BSHD with B = 1.
            var shape = new AttentionShape(1, headsQ, headsKv, n, n, headDim, causal: true, layout: TensorLayout.BSHD);
            double[] Values(ushort[] x) => x.Select(b => KvCacheTestData.Value(b, input)).ToArray();
            var expected = Float64Attention.Forward(shape, Values(q[i]), Values(k[i]), Values(v[i]));
            var chunked = Values(o[i]);
            Assert.All(chunked, x => Assert.True(double.IsFinite(x), $"sequence {i}: a chunked output is not finite"));
            var chunkedLse = 0.0;
            for (var t = 0; t < n; t++)
            {
                for (var h = 0; h < headsQ; h++)
                {
                    chunkedLse = Math.Max(chunkedLse, Math.Abs(lse[i][t * headsQ + h] - expected.Lse[h * n + t]));
                }
            }
            var options = new AttentionOptions { Causal = true };
            var oneShot = input == Element.BF16
                ? Int8AttentionGpuTests.Launch(device, shape, options, q[i], k[i], v[i], 0xFF, (a, s, tq, tk, tv, to, opt, l) => a.ForwardBf16(s, tq, tk, tv, to, opt, l)).O
                : MemoryMarshal.Cast<Half, ushort>(Int8AttentionGpuTests.Launch(device, shape, options, MemoryMarshal.Cast<ushort, Half>(q[i]).ToArray(),
                    MemoryMarshal.Cast<ushort, Half>(k[i]).ToArray(), MemoryMarshal.Cast<ushort, Half>(v[i]).ToArray(), 0x7E,
                    (a, s, tq, tk, tv, to, opt, l) => a.Forward(s, tq, tk, tv, to, opt, l)).O).ToArray();
            var (chunkedError, oneShotError, between) = (ErrorMetrics.Compare(chunked, expected.Output), ErrorMetrics.Compare(Values(oneShot), expected.Output),
                ErrorMetrics.Compare(chunked, Values(oneShot)));
            output.WriteLine($"length {n}: chunked {chunkedError}, LSE max |Δ| {chunkedLse:E2}; one-shot {oneShotError}; chunked vs one-shot {between}");
            Assert.True(chunkedError.RelativeL2 <= OutputBar && chunkedLse <= LseBar, $"length {n}: chunked {chunkedError}, LSE max |Δ| {chunkedLse}");
            Assert.True(oneShotError.RelativeL2 <= OutputBar, $"length {n}: one-shot {oneShotError}");
            // Each is within the bar of float64, so they are within twice the bar of each other.
            Assert.True(between.RelativeL2 <= 2 * OutputBar, $"length {n}: chunked vs one-shot {between}");
        }
    }

    [Fact]
    public void Bad_batches_are_refused_before_launch()
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new Fixture(device, stream, new Random(1), 128, Element.F16, 2, [3, 70], kOffsets: false);
        var cache = fixture.Cache;
        using var queries = device.Allocate<Half>(2 * 8 * 4 * 128);
        using var outputs = device.Allocate<Half>(2 * 8 * 4 * 128);
        using var bits = device.Allocate<ushort>(2 * 8 * 4 * 128);
        stream.FillBytes(outputs, 0xFF);
        var ids = fixture.Ids;
        Assert.Equal("seqQ", Assert.ThrowsAny<ArgumentException>(() => cache.Decode(stream, queries, ids, 8, 0, outputs)).ParamName);
        Assert.Equal("queryTokens", Assert.ThrowsAny<ArgumentException>(() => cache.Attend(stream, queries, ids, [1, -1], 8, outputs)).ParamName);
        Assert.Equal("queryTokens", Assert.ThrowsAny<ArgumentException>(() => cache.Attend(stream, queries, ids, [1], 8, outputs)).ParamName);
        Assert.Equal("splits", Assert.ThrowsAny<ArgumentException>(() => cache.Decode(stream, queries, ids, 8, 1, outputs, splits: 65536)).ParamName);
        Assert.Equal("lengths", Assert.ThrowsAny<ArgumentException>(() => cache.Decode(stream, queries, ids, 8, 4, outputs)).ParamName);  // 3 tokens < Sq = 4
        Assert.Equal("headsQ", Assert.ThrowsAny<ArgumentException>(() => cache.Decode(stream, queries, ids, 7, 1, outputs)).ParamName);
        Assert.Equal("queries", Assert.ThrowsAny<ArgumentException>(() => cache.Decode(stream, queries, ids, 64, 1, outputs)).ParamName);  // too small
        Assert.Equal("queries", Assert.ThrowsAny<ArgumentException>(() => cache.Decode(stream, bits, ids, 8, 1, bits)).ParamName);  // bf16 into an f16 cache
        Assert.Equal("splits", Assert.ThrowsAny<ArgumentException>(() => cache.Decode(stream, queries, ids, 8, 1, outputs, splits: 0)).ParamName);
        Assert.Equal("softmaxScale", Assert.ThrowsAny<ArgumentException>(() => cache.Decode(stream, queries, ids, 8, 1, outputs, softmaxScale: float.NaN)).ParamName);
        Assert.ThrowsAny<ArgumentException>(() => cache.Decode(stream, queries, [ids[0], 99], 8, 1, outputs));  // not a sequence of the cache
        stream.Synchronize();
        Assert.All(MemoryMarshal.AsBytes(outputs.ToArray().AsSpan()).ToArray(), b => Assert.Equal(0xFF, b));
    }

    [Fact]
    public void Fuzzed_page_tables_are_refused_before_launch()
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new Fixture(device, stream, random, 128, Element.F16, 1, [10, 64, 200], kOffsets: false);
        var cache = fixture.Cache;
        var (table, width, lengths) = cache.Table.Table(fixture.Ids);
        using var queries = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(KvCacheTestData.Tokens(random, 3 * 8, 1, 128, Element.F16)));
        using var outputs = device.Allocate<Half>(3 * 8 * 128);
        stream.FillBytes(outputs, 0xFF);
        var pages = cache.Table.Capacity;
        var refused = 0;
        for (var trial = 0; trial < 400; trial++)
        {
            var (t, l) = ((int[])table.Clone(), (int[])lengths.Clone());
            var expected = "pageTable";
            switch (random.Next(6))
            {
                case 0: t[random.Next(t.Length)] = random.Next(2) == 0 ? pages + random.Next(100) : -2 - random.Next(100); break;
                case 1:
                    var row = random.Next(3);
                    var needed = (l[row] + 63) / 64;
                    if (needed < 2) { continue; }
                    t[row * width + 1] = t[row * width];  // a page twice in one row
                    break;
                case 2:
                    var hole = random.Next(3);
                    t[hole * width + random.Next((l[hole] + 63) / 64)] = -1;  // a hole where tokens live
                    break;
                case 3: t = t[..^1]; break;
                case 4: l[random.Next(3)] = width * 64 + 1 + random.Next(100); expected = "lengths"; break;  // beyond the row's pages
                default: l[random.Next(3)] = 0; expected = "lengths"; break;  // fewer tokens than the query
            }
            var thrown = Assert.ThrowsAny<ArgumentException>(() => cache.AttendPages(stream, queries, [0, 1, 2, 3], l, t, width, 8, outputs));
            Assert.Equal(expected, thrown.ParamName);
            refused++;
        }
        output.WriteLine($"{refused} fuzzed batches refused");
        stream.Synchronize();
        Assert.All(MemoryMarshal.AsBytes(outputs.ToArray().AsSpan()).ToArray(), b => Assert.Equal(0xFF, b));
        // The valid table runs.
        cache.AttendPages(stream, queries, [0, 1, 2, 3], lengths, table, width, 8, outputs);
        stream.Synchronize();
        Assert.All(outputs.ToArray(), x => Assert.True(Half.IsFinite(x)));
    }

    /// <summary>
    /// The launcher reads a table of at most KvDecodeWork.MappedBytes in place from pinned host memory and uploads a larger
    /// one, or any while the stream has no slot to map it in: the same batch through all three ways gives the same bits.
    /// The large table is the small one padded with −1 (the kernel reads only the pages a length needs).
    /// </summary>
    [Fact]
    public void A_table_read_in_place_and_one_uploaded_give_the_same_bits()
    {
        var seed = Random.Shared.Next();
        output.WriteLine($"seed {seed}");
        var random = new Random(seed);
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new Fixture(device, stream, random, 128, Element.F16, 2, [1, 65, 700, 3000], kOffsets: true);
        var cache = fixture.Cache;
        var (table, width, lengths) = cache.Table.Table(fixture.Ids);
        const int Padded = 600, HeadsQ = 8;
        Assert.True(KvDecodeWork.Length(lengths.Length, width) * sizeof(int) <= KvDecodeWork.MappedBytes, "the small table would be uploaded");
        Assert.True(KvDecodeWork.Length(lengths.Length, Padded) * sizeof(int) > KvDecodeWork.MappedBytes, "the padded table would be read in place");
        var padded = Enumerable.Repeat(-1, lengths.Length * Padded).ToArray();
        for (var r = 0; r < lengths.Length; r++)
        {
            table.AsSpan(r * width, width).CopyTo(padded.AsSpan(r * Padded));
        }
        int[] totals = [0, 1, 2, 3, 4];
        using var queries = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(KvCacheTestData.Tokens(random, lengths.Length * HeadsQ, 1, 128, Element.F16)));
        foreach (var splits in new int?[] { null, 3 })
        {
            (ushort[] O, float[] Lse) Run(int[] pageTable, int tablePages)
            {
                using var o = device.Allocate<Half>(lengths.Length * HeadsQ * 128);
                using var lse = device.Allocate<float>(lengths.Length * HeadsQ);
                stream.FillBytes(o, 0xFF);
                stream.FillBytes(lse, 0xFF);
                cache.AttendPages(stream, queries, totals, lengths, pageTable, tablePages, HeadsQ, o, lse, splits: splits);
                stream.Synchronize();
                return (MemoryMarshal.Cast<Half, ushort>(o.ToArray()).ToArray(), lse.ToArray());
            }
            var inPlace = Run(table, width);
            Assert.All(inPlace.O, x => Assert.True(Half.IsFinite(BitConverter.UInt16BitsToHalf(x)), $"splits {splits}: a non-finite output"));
            var uploaded = Run(padded, Padded);
            Assert.Equal(inPlace.O, uploaded.O);
            Assert.Equal(inPlace.Lse, uploaded.Lse);
            if (!device.CanMapHostMemory)
            {
                continue;  // every table was uploaded
            }
            // Every slot held: the small table has nowhere to be mapped, so it is uploaded.
            var held = new List<MappedHostCopy?>();
            try
            {
                for (var i = 0; i < 4; i++)
                {
                    held.Add(stream.TryMapForKernels<int>(totals));
                }
                Assert.All(held, Assert.NotNull);
                Assert.Null(stream.TryMapForKernels<int>(totals));
                var fallback = Run(table, width);
                Assert.Equal(inPlace.O, fallback.O);
                Assert.Equal(inPlace.Lse, fallback.Lse);
            }
            finally
            {
                foreach (var copy in held)
                {
                    copy?.Dispose();
                }
            }
        }
    }

    /// <summary>
    /// Times decode at D = 128, GQA 8:1 (64 query heads over 8 KV heads), Sq = 1, context 4096, batches of 1, 16 and 64, with each
    /// declared D = 128 f16 configuration (the default, two warps a block, eight on half-page steps), and
    /// prints the cache bytes read per second (codes and per-page statistics; an f16 cache would read about twice the codes).
    /// It asserts nothing about speed: compare the figure with the card's DRAM bandwidth and with torch SDPA over an f16 cache.
    /// The cache holds constant codes (timing does not depend on values); its pages come from the cache's own bookkeeping.
    /// </summary>
    [Fact]
    public void Decode_bandwidth_is_reported()
    {
        const int HeadsKv = 8, HeadsQ = 64, D = 128, Iterations = 20;
        // KERNELDSL_DECODE_CONTEXT profiles another length (scripts/gpu-profile-decode); a multiple of the 64-token page.
        var context = int.TryParse(Environment.GetEnvironmentVariable("KERNELDSL_DECODE_CONTEXT"), out var asked) && asked > 0 && asked % 64 == 0 ? asked : 4096;
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        foreach (var batchSize in new[] { 1, 16, 64 })
        {
            using var cache = PagedKvCache.Create(device, batchSize * context / 64, batchSize, HeadsKv, D);
            var batch = Enumerable.Range(0, batchSize).Select(_ => cache.AddSequence()).ToArray();
            cache.Sequences.Append(batch, batch.Select(_ => context).ToArray());  // the pages, without appending values
            stream.FillBytes(cache.KCodes, 0x05);
            stream.FillBytes(cache.VCodes, 0x07);
            stream.FillBytes(cache.KScale, 0x3C);
            stream.FillBytes(cache.VScale, 0x3C);
            stream.FillBytes(cache.KMean, 0);
            using var queries = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(KvCacheTestData.Tokens(new Random(3), batchSize * HeadsQ, 1, D, Element.F16)));
            using var outputs = device.Allocate<Half>(batchSize * HeadsQ * D);
            var counts = batch.Select(_ => 1).ToArray();
            foreach (var kernel in ConfigurationsOn(device))
            {
                for (var i = 0; i < 3; i++)
                {
                    cache.Attend(stream, kernel, queries, batch, counts, HeadsQ, outputs);
                }
                using var start = stream.Record();
                for (var i = 0; i < Iterations; i++)
                {
                    cache.Attend(stream, kernel, queries, batch, counts, HeadsQ, outputs);
                }
                using var end = stream.Record();
                end.Synchronize();
                var ms = end.ElapsedMilliseconds(start) / Iterations;
                var bytes = (double)batchSize * context / 64 * HeadsKv * (2 * 64 * D + 2 * 4 * D + 4);
                output.WriteLine($"{device.Name}: {kernel.Name}, B = {batchSize}, context {context}, D = {D}, {HeadsQ}:{HeadsKv}: {ms * 1e3:F1} µs a decode (kernel + merge + table upload), {bytes / ms / 1e6:F0} GB/s of cache bytes");
                Assert.All(outputs.ToArray(), x => Assert.True(Half.IsFinite(x)));
            }
        }
    }

    /// <summary>A small case of every declared decode variant, for the sanitizers (SanitizerSmokeTests).</summary>
    internal void Small(int headDim, Element input, PagedDecodeKernel<Half>? kernel = null)
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new Fixture(device, stream, new Random(7), headDim, input, 2, [1, 63, 64, 65, 300], kOffsets: true);
        Check(fixture, stream, new Random(8), 4, 8, 3, $"small D = {headDim} {input} {kernel?.Name}", minLength: 4, kernel: kernel);
    }

    /// <summary>Decodes Sq queries of every sequence at least <paramref name="minLength"/> long and checks them against float64.</summary>
    private void Check(Fixture fixture, CudaStream stream, Random random, int seqQ, int headsQ, int? splits, string what, int minLength = 0,
        PagedDecodeKernel<Half>? kernel = null)
    {
        var batch = fixture.Ids.Where(id => fixture.Cache.Table.LengthOf(id) >= Math.Max(seqQ, minLength)).ToArray();
        Check(fixture, stream, random, batch, batch.Select(_ => seqQ).ToArray(), headsQ, splits, what, kernel);
    }

    /// <summary>
    /// Attends with <paramref name="counts"/>[i] query tokens of <paramref name="batch"/>[i] (through Decode when the counts are
    /// equal, Attend otherwise; with an f16 <paramref name="kernel"/> given, Attend with it), Q and O token-major [Σ counts][Hq][D],
    /// and checks every row against float64 over the original tokens and, for a fixed split count, against the kernel's int8 model.
    /// </summary>
    private void Check(Fixture fixture, CudaStream stream, Random random, int[] batch, int[] counts, int headsQ, int? splits, string what,
        PagedDecodeKernel<Half>? kernel = null)
    {
        var cache = fixture.Cache;
        var (d, input) = (cache.HeadDim, cache.Input);
        var first = new int[batch.Length + 1];
        for (var i = 0; i < batch.Length; i++)
        {
            first[i + 1] = first[i] + counts[i];
        }
        var q = KvCacheTestData.Tokens(random, first[^1] * headsQ, 1, d, input);
        var rows = first[^1] * headsQ;
        using var lse = cache.Device.Allocate<float>(Math.Max(1, rows));
        stream.FillBytes(lse, 0xFF);
        var uniform = counts.All(c => c == counts[0]);
        ushort[] o;
        if (input == Element.BF16)
        {
            using var dq = cache.Device.Upload<ushort>(q);
            using var dout = cache.Device.Allocate<ushort>(q.Length);
            stream.FillBytes(dout, 0xFF);
            if (uniform) { cache.Decode(stream, dq, batch, headsQ, counts[0], dout, lse, splits: splits); }
            else { cache.Attend(stream, dq, batch, counts, headsQ, dout, lse, splits: splits); }
            stream.Synchronize();
            o = dout.ToArray();
        }
        else
        {
            using var dq = cache.Device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(q));
            using var dout = cache.Device.Allocate<Half>(q.Length);
            stream.FillBytes(dout, 0xFF);
            if (kernel is not null) { cache.Attend(stream, kernel, dq, batch, counts, headsQ, dout, lse, splits: splits); }
            else if (uniform) { cache.Decode(stream, dq, batch, headsQ, counts[0], dout, lse, splits: splits); }
            else { cache.Attend(stream, dq, batch, counts, headsQ, dout, lse, splits: splits); }
            stream.Synchronize();
            o = MemoryMarshal.Cast<Half, ushort>(dout.ToArray()).ToArray();
        }
        Verify(fixture, batch, counts, headsQ, splits, what, q, o, lse.ToArray(), warps: kernel?.Warps ?? PagedDecodeD128.Warps,
            stageKeys: kernel?.StageKeys ?? PagedDecodeD128.StageKeys);
    }

    /// <summary>
    /// Checks one launch's token-major O and LSE (<paramref name="o"/>, <paramref name="lse"/>; Q was <paramref name="q"/>)
    /// for <paramref name="counts"/>[i] query tokens of <paramref name="batch"/>[i]: every row against float64 over the
    /// original tokens (with <paramref name="modifiers"/>, if any) under the prefill's bars, and, for a fixed split count,
    /// against the kernel's int8 model.
    /// </summary>
    internal void Verify(Fixture fixture, int[] batch, int[] counts, int headsQ, int? splits, string what, ushort[] q, ushort[] o, float[] actualLse,
        AttentionModifiers? modifiers = null, int warps = PagedDecodeD128.Warps, int stageKeys = PagedDecodeD128.StageKeys)
    {
        var cache = fixture.Cache;
        var (d, input) = (cache.HeadDim, cache.Input);
        var first = new int[batch.Length + 1];
        for (var i = 0; i < batch.Length; i++)
        {
            first[i + 1] = first[i] + counts[i];
        }
        // The references take each sequence's [Hq][Sq][D]; the device's rows are token-major.
        double[] PerSequence(ushort[] packed, int i) => KvCacheTestData.HeadMajor(packed, first[i], counts[i], headsQ, d, input);
        var active = Enumerable.Range(0, batch.Length).Where(i => counts[i] > 0).ToArray();
        var queries = Enumerable.Range(0, batch.Length).Select(i => PerSequence(q, i)).ToList();  // query-less ones too: b is the index in the batch
        var ids = batch;
        var expected = PagedAttentionReference.Forward(cache.Table, ids, queries, fixture.KPages, fixture.VPages, headsQ, cache.HeadsKv, d, causal: true, modifiers: modifiers);
        var (all, allExpected) = (new List<double>(), new List<double>());
        var worstLse = 0.0;
        for (var j = 0; j < active.Length; j++)
        {
            var i = active[j];
            var actual = PerSequence(o, i);
            var length = cache.Table.LengthOf(batch[i]);
            Assert.All(actual, x => Assert.True(double.IsFinite(x), $"{what}: sequence of length {length} ({counts[i]} queries) has a non-finite output"));
            var error = ErrorMetrics.Compare(actual, expected[i].Output);
            output.WriteLine($"{what}: length {length}, {counts[i]} queries: {error}");
            Assert.True(error.RelativeL2 <= OutputBar, $"{what}: length {length}, {counts[i]} queries: relative L2 {error.RelativeL2:E3} over {OutputBar:E1}");
            for (var h = 0; h < headsQ; h++)
            {
                for (var t = 0; t < counts[i]; t++)
                {
                    worstLse = Math.Max(worstLse, Math.Abs(actualLse[(first[i] + t) * headsQ + h] - expected[i].Lse[h * counts[i] + t]));
                }
            }
            all.AddRange(actual);
            allExpected.AddRange(expected[i].Output);
        }
        var total = ErrorMetrics.Compare(all.ToArray(), allExpected.ToArray());
        output.WriteLine($"{what}: all {total}; LSE max |Δ| {worstLse:E2}");
        Assert.True(total.RelativeL2 <= OutputBar && worstLse <= LseBar, $"{what}: {total}, LSE max |Δ| {worstLse}");
        if (splits is { } count)
        {
            // The kernel's own algorithm on the CPU, same codes, same split and warp partition: what is left is float rounding
            // (exp2.approx, f16 ties of P's u8 codes, summation order), far below the bar; a wrong page, scale or mask is not.
            var model = PagedDecodeReference.Int8(fixture.Model, ids, queries, headsQ, count, warps, modifiers: modifiers, stageKeys: stageKeys);
            var modelError = ErrorMetrics.Compare(all.ToArray(), model.SelectMany(r => r.Output).ToArray());
            output.WriteLine($"{what}: against the kernel's int8 model {modelError}");
            Assert.True(modelError.RelativeL2 <= ModelBar, $"{what}: {modelError} from the kernel's int8 model (PagedDecodeReference.Int8{(modifiers is null ? "" : ", with the modifiers")})");
        }
    }

    /// <summary>
    /// A cache holding sequences of the given lengths, appended in interleaved random chunks (so each sequence's pages are
    /// scattered over the pool), and the original tokens in the cache's page layout for the float64 reference.
    /// </summary>
    internal sealed class Fixture : IDisposable
    {
        public Fixture(CudaDevice device, CudaStream stream, Random random, int headDim, Element input, int headsKv, int[] lengths, bool kOffsets)
        {
            var pages = lengths.Sum(l => (l + 63) / 64) + 3;
            Cache = PagedKvCache.Create(device, pages, lengths.Length, headsKv, headDim, input);
            Model = new KvCacheModel(pages, lengths.Length, headsKv, headDim, input);
            Ids = lengths.Select(_ => Cache.AddSequence()).ToArray();
            Assert.Equal(Ids, lengths.Select(_ => Model.AddSequence()).ToArray());
            var pageElements = (long)headsKv * Cache.PageSize * headDim;
            (KPages, VPages) = (new double[pages * pageElements], new double[pages * pageElements]);
            var offsets = Ids.Select(_ => kOffsets ? KvCacheTestData.Offsets(random, headsKv, headDim) : null).ToArray();
            var held = new int[lengths.Length];
            while (held.Zip(lengths).Any(x => x.First < x.Second))
            {
                var batch = Enumerable.Range(0, lengths.Length).Where(i => held[i] < lengths[i]).ToArray();
                var counts = batch.Select(i => Math.Min(lengths[i] - held[i], new[] { 1, 63, 64, 65, 1000, 4000 }[random.Next(6)])).ToArray();
                var k = batch.Zip(counts).SelectMany(b => KvCacheTestData.Tokens(random, b.Second, headsKv, headDim, input, offsets[b.First])).ToArray();
                var v = batch.Zip(counts).SelectMany(b => KvCacheTestData.Tokens(random, b.Second, headsKv, headDim, input)).ToArray();
                Append(stream, batch.Select(i => Ids[i]).ToArray(), counts, k, v);
                Model.Append(batch.Select(i => Ids[i]).ToArray(), counts, k, v);  // bit-equal to the device's pages (KvCacheAppendGpuTests)
                var at = 0;
                for (var j = 0; j < batch.Length; j++)
                {
                    for (var t = 0; t < counts[j]; t++, at++)
                    {
                        var (page, slot) = Cache.Table.Locate(Ids[batch[j]], held[batch[j]] + t);
                        for (var h = 0; h < headsKv; h++)
                        {
                            var to = (page * headsKv + h) * (long)Cache.PageSize * headDim + (long)slot * headDim;
                            for (var c = 0; c < headDim; c++)
                            {
                                var from = ((long)at * headsKv + h) * headDim + c;
                                KPages[to + c] = KvCacheTestData.Value(k[from], input);
                                VPages[to + c] = KvCacheTestData.Value(v[from], input);
                            }
                        }
                    }
                    held[batch[j]] += counts[j];
                }
            }
        }

        public PagedKvCache Cache { get; }
        /// <summary>The same appends on the CPU: the codes and statistics the device holds, for the kernel's int8 model.</summary>
        public KvCacheModel Model { get; }
        public int[] Ids { get; }
        /// <summary>The original K and V, [page][Hkv][PageSize][D], as the cache holds their codes.</summary>
        public double[] KPages { get; }
        public double[] VPages { get; }

        private void Append(CudaStream stream, int[] batch, int[] counts, ushort[] k, ushort[] v)
        {
            if (Cache.Input == Element.BF16)
            {
                using var dk = Cache.Device.Upload<ushort>(k);
                using var dv = Cache.Device.Upload<ushort>(v);
                Cache.Append(stream, batch, counts, dk, dv);
                stream.Synchronize();
            }
            else
            {
                using var dk = Cache.Device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(k));
                using var dv = Cache.Device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(v));
                Cache.Append(stream, batch, counts, dk, dv);
                stream.Synchronize();
            }
        }

        public void Dispose() => Cache.Dispose();
    }
}

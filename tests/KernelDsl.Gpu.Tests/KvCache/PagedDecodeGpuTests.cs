using System.Runtime.InteropServices;
using AttentionTests.KvCache;
using AttentionTests.Reference;
using KernelDsl;
using KernelDsl.Attention.KvCache;
using KernelDsl.Attention.Reference;
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
        Assert.Equal("seqQ", Assert.ThrowsAny<ArgumentException>(() => cache.Decode(stream, queries, ids, 8, 17, outputs)).ParamName);
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
            var thrown = Assert.ThrowsAny<ArgumentException>(() => cache.DecodePages(stream, queries, l, t, width, 8, 1, outputs));
            Assert.Equal(expected, thrown.ParamName);
            refused++;
        }
        output.WriteLine($"{refused} fuzzed batches refused");
        stream.Synchronize();
        Assert.All(MemoryMarshal.AsBytes(outputs.ToArray().AsSpan()).ToArray(), b => Assert.Equal(0xFF, b));
        // The valid table runs.
        cache.DecodePages(stream, queries, lengths, table, width, 8, 1, outputs);
        stream.Synchronize();
        Assert.All(outputs.ToArray(), x => Assert.True(Half.IsFinite(x)));
    }

    /// <summary>
    /// Times decode at D = 128, GQA 8:1 (64 query heads over 8 KV heads), Sq = 1, context 4096, batches of 1, 16 and 64, and
    /// prints the cache bytes read per second (codes and per-page statistics; an f16 cache would read about twice the codes).
    /// It asserts nothing about speed: compare the figure with the card's DRAM bandwidth and with torch SDPA over an f16 cache.
    /// The cache holds constant codes (timing does not depend on values); its pages come from the cache's own bookkeeping.
    /// </summary>
    [Fact]
    public void Decode_bandwidth_is_reported()
    {
        const int HeadsKv = 8, HeadsQ = 64, D = 128, Context = 4096, Iterations = 20;
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        foreach (var batchSize in new[] { 1, 16, 64 })
        {
            using var cache = PagedKvCache.Create(device, batchSize * Context / 64, batchSize, HeadsKv, D);
            var batch = Enumerable.Range(0, batchSize).Select(_ => cache.AddSequence()).ToArray();
            cache.Sequences.Append(batch, batch.Select(_ => Context).ToArray());  // the pages, without appending values
            stream.FillBytes(cache.KCodes, 0x05);
            stream.FillBytes(cache.VCodes, 0x07);
            stream.FillBytes(cache.KScale, 0x3C);
            stream.FillBytes(cache.VScale, 0x3C);
            stream.FillBytes(cache.KMean, 0);
            using var queries = device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(KvCacheTestData.Tokens(new Random(3), batchSize * HeadsQ, 1, D, Element.F16)));
            using var outputs = device.Allocate<Half>(batchSize * HeadsQ * D);
            for (var i = 0; i < 3; i++)
            {
                cache.Decode(stream, queries, batch, HeadsQ, 1, outputs);
            }
            using var start = stream.Record();
            for (var i = 0; i < Iterations; i++)
            {
                cache.Decode(stream, queries, batch, HeadsQ, 1, outputs);
            }
            using var end = stream.Record();
            end.Synchronize();
            var ms = end.ElapsedMilliseconds(start) / Iterations;
            var bytes = (double)batchSize * Context / 64 * HeadsKv * (2 * 64 * D + 2 * 4 * D + 4);
            output.WriteLine($"{device.Name}: B = {batchSize}, context {Context}, D = {D}, {HeadsQ}:{HeadsKv}: {ms * 1e3:F1} µs a decode (kernel + merge + table upload), {bytes / ms / 1e6:F0} GB/s of cache bytes");
            Assert.All(outputs.ToArray(), x => Assert.True(Half.IsFinite(x)));
        }
    }

    /// <summary>A small case of every declared decode variant, for the sanitizers (SanitizerSmokeTests).</summary>
    internal void Small(int headDim, Element input)
    {
        using var device = Gpu.OpenOrSkip();
        using var stream = device.CreateStream();
        using var fixture = new Fixture(device, stream, new Random(7), headDim, input, 2, [1, 63, 64, 65, 300], kOffsets: true);
        Check(fixture, stream, new Random(8), 4, 8, 3, $"small D = {headDim} {input}", minLength: 4);
    }

    /// <summary>Decodes Sq queries of every sequence at least <paramref name="minLength"/> long and checks them against float64.</summary>
    private void Check(Fixture fixture, CudaStream stream, Random random, int seqQ, int headsQ, int? splits, string what, int minLength = 0)
    {
        var cache = fixture.Cache;
        var (d, input) = (cache.HeadDim, cache.Input);
        var batch = fixture.Ids.Where(id => cache.Table.LengthOf(id) >= Math.Max(seqQ, minLength)).ToArray();
        var perSequence = headsQ * seqQ * d;
        var q = KvCacheTestData.Tokens(random, batch.Length * headsQ * seqQ, 1, d, input);
        var rows = batch.Length * headsQ * seqQ;
        using var lse = cache.Device.Allocate<float>(rows);
        stream.FillBytes(lse, 0xFF);
        ushort[] o;
        if (input == Element.BF16)
        {
            using var dq = cache.Device.Upload<ushort>(q);
            using var dout = cache.Device.Allocate<ushort>(q.Length);
            stream.FillBytes(dout, 0xFF);
            cache.Decode(stream, dq, batch, headsQ, seqQ, dout, lse, splits: splits);
            stream.Synchronize();
            o = dout.ToArray();
        }
        else
        {
            using var dq = cache.Device.Upload<Half>(MemoryMarshal.Cast<ushort, Half>(q));
            using var dout = cache.Device.Allocate<Half>(q.Length);
            stream.FillBytes(dout, 0xFF);
            cache.Decode(stream, dq, batch, headsQ, seqQ, dout, lse, splits: splits);
            stream.Synchronize();
            o = MemoryMarshal.Cast<Half, ushort>(dout.ToArray()).ToArray();
        }
        var queries = batch.Select((_, i) => q.AsSpan(i * perSequence, perSequence).ToArray().Select(x => KvCacheTestData.Value(x, input)).ToArray()).ToList();
        var expected = PagedAttentionReference.Forward(cache.Table, batch, queries, fixture.KPages, fixture.VPages, headsQ, cache.HeadsKv, d, causal: true);
        var actualLse = lse.ToArray();
        var (all, allExpected) = (new List<double>(), new List<double>());
        var worstLse = 0.0;
        for (var i = 0; i < batch.Length; i++)
        {
            var actual = o.AsSpan(i * perSequence, perSequence).ToArray().Select(x => KvCacheTestData.Value(x, input)).ToArray();
            Assert.All(actual, x => Assert.True(double.IsFinite(x), $"{what}: sequence of length {cache.Table.LengthOf(batch[i])} has a non-finite output"));
            var error = ErrorMetrics.Compare(actual, expected[i].Output);
            output.WriteLine($"{what}: length {cache.Table.LengthOf(batch[i])}: {error}");
            Assert.True(error.RelativeL2 <= OutputBar, $"{what}: length {cache.Table.LengthOf(batch[i])}: relative L2 {error.RelativeL2:E3} over {OutputBar:E1}");
            for (var r = 0; r < headsQ * seqQ; r++)
            {
                worstLse = Math.Max(worstLse, Math.Abs(actualLse[i * headsQ * seqQ + r] - expected[i].Lse[r]));
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
            var model = PagedDecodeReference.Int8(fixture.Model, batch, queries, headsQ, count);
            var modelError = ErrorMetrics.Compare(all.ToArray(), model.SelectMany(r => r.Output).ToArray());
            output.WriteLine($"{what}: against the kernel's int8 model {modelError}");
            Assert.True(modelError.RelativeL2 <= ModelBar, $"{what}: {modelError} from the kernel's int8 model (PagedDecodeReference.Int8)");
        }
    }

    /// <summary>
    /// A cache holding sequences of the given lengths, appended in interleaved random chunks (so each sequence's pages are
    /// scattered over the pool), and the original tokens in the cache's page layout for the float64 reference.
    /// </summary>
    private sealed class Fixture : IDisposable
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

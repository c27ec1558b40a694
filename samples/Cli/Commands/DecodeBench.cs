using System.Globalization;
using KernelDsl.Attention.KvCache;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary>
/// <c>kdsl bench --decode</c> (issue 16): decode from the paged INT8 KV cache at D = 128, 64 query heads over 8 KV heads
/// (GQA 8:1), Sq = 1 and 4, batch in {1, 16, 64}, context in {1024, 4096, 16384, 32768}. For each (batch, context) a
/// <see cref="PagedKvCache"/> is filled through <see cref="PagedKvCache.Append(CudaStream, IReadOnlyList{int}, IReadOnlyList{int}, DeviceBuffer{Half}, DeviceBuffer{Half})"/>
/// with random f16 K and V, in chunks; then <see cref="PagedKvCache.Decode(CudaStream, DeviceBuffer{Half}, IReadOnlyList{int}, int, int, DeviceBuffer{Half}, DeviceBuffer{float}?, float?, int?)"/>
/// is timed like the standard grid (CUDA events, median of 20 after 3 warm-ups): the whole host call, i.e. the page table's
/// upload, the decode kernel and the split merge. Before each run, outside the events, the L2 is flushed (a memset of twice
/// its size), so the cache comes from DRAM as it does in serving, where a step's weights pass through the L2 between decodes;
/// bench/sdpa.py decode does the same for torch. The context counts the Sq query tokens (already in the cache, as Decode
/// expects). Cache bytes are what decode must read of the pages the batch touches: K and V codes, K scale, K mean, V scales.
/// Every declared D = 128 f16 configuration the device runs (<see cref="KernelsOn"/>) is timed at each point, through
/// <c>PagedKvCache.Attend</c> with that kernel, and checked against the default's output.
/// Each point is also timed apart: <c>device_ms</c> with the device kept busy by more flushes while the host queues the call,
/// so that the time is the device's alone (the upload, the kernels and the gaps between them), and <c>host_us</c>, the time
/// the host takes to queue the call. The gap between <c>ms</c> and <c>device_ms</c> is what the host costs the caller.
/// Writes <c>batch,context,seq_q,heads_q,heads_kv,head_dim,kernel,splits,ms,device_ms,host_us,cache_bytes,gb_per_s,gpu</c>; bench/sdpa.py's
/// <c>decode</c> times torch SDPA over a contiguous f16 cache at the same shapes and <c>decode-join</c> joins the two.
/// </summary>
internal static class DecodeBench
{
    public const int HeadDim = 128, HeadsQ = 64, HeadsKv = 8;
    public static readonly int[] Batches = [1, 16, 64];
    public static readonly int[] Contexts = [1024, 4096, 16384, 32768];
    public static readonly int[] QueryLengths = [1, 4];

    /// <summary>Tokens of random f16 K (and V) uploaded once and appended again and again: [ChunkTokens][Hkv][D], 32 MB each.</summary>
    private const int ChunkTokens = 16384;

    public const string CsvHeader = "batch,context,seq_q,heads_q,heads_kv,head_dim,kernel,splits,ms,device_ms,host_us,cache_bytes,gb_per_s,gpu";

    /// <summary>
    /// The declared D = 128 f16 decode configurations, the cache's default first (the ones <c>PagedKvCache.Autotune</c> chooses
    /// among): each is timed at every point, and each after the first must agree with the first's output
    /// (<see cref="AgreementBar"/>) or the bench stops.
    /// </summary>
    public static IReadOnlyList<PagedDecodeKernel<Half>> KernelsOn(CudaDevice device) => PagedKvCache.Configurations<Half>(HeadDim, Element.F16, device);

    /// <summary>
    /// Relative L2 between two configurations' outputs above which the bench refuses to report: each is within the GPU
    /// suite's 3e-2 of float64, so a correct pair differs by well under that; a broken one by far more.
    /// </summary>
    public const double AgreementBar = 3e-2;

    /// <summary>Bytes decode reads of one page of one KV head: K and V codes (64 × D each), the K scale, D K means and D V scales.</summary>
    public static long PageBytes(int pageSize, int headDim) => 2L * pageSize * headDim + 4 + 2L * 4 * headDim;

    /// <summary>The cache bytes a decode of <paramref name="batch"/> sequences of <paramref name="context"/> tokens reads.</summary>
    public static long CacheBytes(int batch, int context, int pageSize = 64) =>
        (long)batch * ((context + pageSize - 1) / pageSize) * HeadsKv * PageBytes(pageSize, HeadDim);

    /// <summary>
    /// Device bytes one grid point needs: the pool (codes and statistics), the staging slots (f16 K and V of a page per sequence and
    /// head), the random chunks, queries and outputs, and the split partials (float O and LSE); an estimate of 10 % on top.
    /// </summary>
    public static long DeviceBytes(int batch, int context, int splits)
    {
        var rows = (long)batch * HeadsQ * QueryLengths.Max();
        var staging = 2L * batch * HeadsKv * 64 * HeadDim * 2;
        var chunks = 2L * ChunkTokens * HeadsKv * HeadDim * 2 + (256L << 20);  // and the L2 flush buffer
        var io = 2 * rows * HeadDim * 2;
        var partials = splits * rows * (HeadDim + 1) * 4;
        return (long)((CacheBytes(batch, context) + staging + chunks + io + partials) * 1.1);
    }

    /// <param name="splitNeighbours">Also time the default kernel at one split fewer and one more than its rule's count, as
    /// rows named "kernel@sN" (the rule is the most splits that run as one wave: one more crosses into a second).</param>
    public static void Run(CudaDevice device, CudaStream stream, FileInfo csv, bool splitNeighbours = false)
    {
        var rows = new List<string> { CsvHeader };
        var table = new Table().AddColumns("B", "context", "Sq", "kernel", "splits", "ms", "device ms", "host µs", "cache MB", "cache GB/s", "vs default (rel. L2)");
        var skipped = new List<string>();
        using var kChunk = BenchCommand.Random(device, (long)ChunkTokens * HeadsKv * HeadDim, 2);
        using var vChunk = BenchCommand.Random(device, (long)ChunkTokens * HeadsKv * HeadDim, 3);
        using var flush = device.Allocate<byte>(FlushBytes(device));
        var flushes = 0;
        void Flush() => stream.FillBytes(flush, (byte)++flushes);
        var kernels = KernelsOn(device);
        var grid = Contexts.SelectMany(c => Batches.Select(b => (Batch: b, Context: c))).ToList();
        CliProgress.Run("decode (B, context)", grid, point =>
        {
            var (batchSize, context) = point;
            var splits = kernels.Max(kernel => QueryLengths.Max(sq => kernel.SplitsOn(device, context, batchSize, HeadsQ, HeadsKv, sq)));
            var needed = DeviceBytes(batchSize, context, splits);
            var free = device.FreeMemoryBytes;
            if (needed > free)
            {
                skipped.Add($"B = {batchSize}, context {context}: needs about {needed / 1e9:F1} GB, {free / 1e9:F1} GB free");
                return;
            }
            var pages = batchSize * ((context + 63) / 64);
            using var cache = PagedKvCache.Create(device, pages, batchSize, HeadsKv, HeadDim);
            var batch = Enumerable.Range(0, batchSize).Select(_ => cache.AddSequence()).ToArray();
            Fill(stream, cache, batch, context, kChunk, vChunk);
            var bytes = CacheBytes(batchSize, context, cache.PageSize);
            foreach (var seqQ in QueryLengths)
            {
                var elements = (long)batchSize * HeadsQ * seqQ * HeadDim;
                var counts = batch.Select(_ => seqQ).ToArray();
                using var queries = BenchCommand.Random(device, elements, 1);
                using var output = device.Allocate<Half>(elements);
                double[]? first = null;
                var runs = kernels.Select(kernel => (Kernel: kernel, Splits: kernel.SplitsOn(device, context, batchSize, HeadsQ, HeadsKv, seqQ), Label: Name(kernel))).ToList();
                if (splitNeighbours)
                {
                    var (kernel, rule, label) = runs[0];
                    runs.InsertRange(1, new[] { rule - 1, rule + 1 }.Where(s => s >= 1).Select(s => (kernel, s, $"{label}@s{s}")));
                }
                foreach (var (kernel, used, label) in runs)
                {
                    stream.FillBytes(output, 0xFF);
                    void Call() => cache.Attend(stream, kernel, queries, batch, counts, HeadsQ, output, splits: used);
                    var ms = BenchCommand.Median(stream, Call, Flush);
                    var (deviceMs, hostUs) = DeviceAndHost(stream, Call, Flush);
                    stream.Synchronize();
                    var values = output.ToArray().Select(x => (double)x).ToArray();
                    // NaN (a poisoned element left) fails the comparison as surely as a large difference.
                    var difference = first is null ? 0 : ErrorMetrics.RelativeL2(values, first);
                    var agreement = first is null ? "—" : F(difference, "E2");
                    if (!(difference <= AgreementBar))
                    {
                        throw new InvalidOperationException($"{label} disagrees with {runs[0].Label} at B = {batchSize}, context {context}, Sq = {seqQ}: " +
                            $"relative L2 {agreement} over {AgreementBar}. A configuration is broken; run the GPU suite.");
                    }
                    first ??= values;
                    rows.Add($"{batchSize},{context},{seqQ},{HeadsQ},{HeadsKv},{HeadDim},{label},{used},{F(ms)},{F(deviceMs)},{F(hostUs, "F1")},{bytes},{F(bytes / ms / 1e6, "F1")},{Csv(device.Name)}");
                    table.AddRow($"{batchSize}", $"{context}", $"{seqQ}", label, $"{used}", F(ms), F(deviceMs), F(hostUs, "F1"), F(bytes / 1e6, "F1"), F(bytes / ms / 1e6, "F0"), agreement);
                }
            }
        });
        AnsiConsole.Write(table);
        foreach (var line in skipped)
        {
            AnsiConsole.MarkupLine($"[yellow]skipped (does not fit the card's free memory): {Markup.Escape(line)}[/]");
        }
        AnsiConsole.MarkupLine("Times are the whole Decode call (the page table uploaded, or read in place when small; decode kernel; split merge), the L2 flushed before each run; " +
            "device ms hides the host's queueing behind more flushes, host µs is that queueing.");
        File.WriteAllLines(csv.FullName, rows);
        AnsiConsole.MarkupLine($"wrote {Markup.Escape(csv.FullName)}");
    }

    /// <summary>Flushes queued ahead of each run of <see cref="DeviceAndHost"/>: about 0.2 ms of device work on an H100 or H200.</summary>
    private const int HidingFlushes = 8;

    /// <summary>
    /// Median device milliseconds of <paramref name="call"/> with <see cref="HidingFlushes"/> flushes queued before it, so the
    /// device is still busy with them while the host queues the call and the events time the device's work alone; and the
    /// median microseconds the host takes to queue it (a copy that blocks the host shows here).
    /// </summary>
    private static (double DeviceMs, double HostUs) DeviceAndHost(CudaStream stream, Action call, Action flush) =>
        BenchCommand.MedianWithHost(stream, call, () =>
        {
            for (var f = 0; f < HidingFlushes; f++)
            {
                flush();
            }
        });

    /// <summary>A configuration's short name: its declaring type's.</summary>
    public static string Name<T>(PagedDecodeKernel<T> kernel) where T : unmanaged => kernel.Name[(kernel.Name.LastIndexOf('.') + 1)..];

    private static string F(double x, string format = "F4") => x.ToString(format, CultureInfo.InvariantCulture);

    /// <summary>Bytes written before each timed run to evict the L2: twice its size, at least 64 MB (bench/sdpa.py decode flushes by the same rule).</summary>
    public static long FlushBytes(CudaDevice device) => Math.Max(64L << 20, 2L * device.L2CacheBytes);

    /// <summary>Appends <paramref name="context"/> tokens to every sequence of the batch, each append taking ChunkTokens tokens across the batch.</summary>
    private static void Fill(CudaStream stream, PagedKvCache cache, int[] batch, int context, DeviceBuffer<Half> k, DeviceBuffer<Half> v)
    {
        var perSequence = Math.Max(1, Math.Min(context, ChunkTokens / batch.Length));
        for (var done = 0; done < context; done += perSequence)
        {
            var count = Math.Min(perSequence, context - done);
            cache.Append(stream, batch, batch.Select(_ => count).ToArray(), k, v);
        }
        stream.Synchronize();
    }

    private static string Csv(string text) => text.Contains(',') || text.Contains('"') ? "\"" + text.Replace("\"", "\"\"") + "\"" : text;
}

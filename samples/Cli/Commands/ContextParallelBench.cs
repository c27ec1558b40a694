using System.Diagnostics;
using System.Globalization;
using System.Runtime.ExceptionServices;
using KernelDsl.Attention.ContextParallel;
using KernelDsl.Attention.FlashAttention;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary>
/// <c>kdsl bench --gpus N</c>: context parallelism at one sequence length (B = 1, causal, zig-zag split). One GPU's
/// <see cref="Int8Attention"/> call on the whole sequence is the baseline; then the ring over NCCL (and Ulysses where the
/// heads divide) with N ranks, one GPU and thread each, each holding its own tokens. Times are wall-clock medians of
/// 10 whole calls after 2 warm-ups (a call returns when its rows are written, so the one-GPU call is synchronized too);
/// speedup is T₁ / T_N and scaling efficiency T₁ / (N · T_N). With fewer than N GPUs, or no NCCL, the N ranks run simulated
/// on GPU 0 and are labelled so: their times are one GPU doing every rank's work, and no scaling number is given.
/// </summary>
internal static class ContextParallelBench
{
    public const int DefaultSeq = 32768, DefaultHeads = 32, DefaultKvHeads = 8;
    public const int MaxGpus = 64, MaxSeq = 1 << 20;

    private static readonly AttentionOptions Options = new() { Causal = true, NonFinite = NonFiniteInputs.Ignore };

    /// <summary>The one-line error for arguments that cannot make a run (naming the option), or null.</summary>
    public static string? Check(int gpus, int? seq, int? heads, int? kvHeads)
    {
        if (gpus is < 2 or > MaxGpus)
        {
            return $"--gpus must be from 2 to {MaxGpus} (the GPUs to split one sequence among; one GPU is the baseline it is measured against), not {gpus}.";
        }
        var s = seq ?? DefaultSeq;
        if (s < 2 * gpus || s > MaxSeq)
        {
            return $"--seq must be from {2 * gpus} (two zig-zag chunks per GPU) to {MaxSeq} with --gpus {gpus}, not {s}.";
        }
        var h = heads ?? DefaultHeads;
        if (h < 1)
        {
            return $"--heads must be positive, not {h}.";
        }
        var kv = kvHeads ?? DefaultKvHeads;
        return kv < 1 || h % kv != 0 ? $"--kv-heads must be a positive divisor of --heads ({h}), as GQA shares each K/V head among query heads, not {kv}." : null;
    }

    /// <summary>One measured row: what ran, on how many ranks, its median milliseconds, and whether its ranks shared one GPU.</summary>
    private sealed record Row(string Method, int Gpus, double Milliseconds, bool Simulated);

    public static int Run(FileInfo csv, int gpus, int seq, int headDim, int heads, int kvHeads)
    {
        CliApp.CheckOutputFile(csv, "--csv");
        if (!CudaDevice.TryOpen(0, out var first, out var reason))
        {
            AnsiConsole.WriteLine($"No CUDA GPU here ({reason.Split('\n')[0].Trim()}): kdsl bench --gpus {gpus} measured nothing. With {gpus} GPUs it times the ring " +
                "over NCCL against one GPU; with one, the simulated ring (no scaling number).");
            return 0;
        }
        using var device = first;
        var count = CudaDevice.Count();
        var shape = new Shape(seq, heads, kvHeads, headDim);
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(device.Name)}[/] ({device.ArchName}), {count} GPU(s) here: S = {seq}, B = 1, Hq {heads}, Hkv {kvHeads}, D {headDim}, causal, zig-zag split");
        CliApp.WarnIfSourcesOverridden();
        var ulysses = heads % gpus == 0 && kvHeads % gpus == 0;
        var rows = new List<Row> { new("one GPU", 1, OneGpu(device, shape), Simulated: false) };
        string? ncclMissing = count >= gpus && !Nccl.TryLoad(out _, out var why) ? why.Split('\n')[0].Trim() : null;
        if (count >= gpus && ncclMissing is null)
        {
            rows.Add(new("ring (NCCL)", gpus, OverNccl(gpus, shape, ring: true), Simulated: false));
            if (ulysses)
            {
                rows.Add(new("Ulysses (NCCL)", gpus, OverNccl(gpus, shape, ring: false), Simulated: false));
            }
        }
        else
        {
            var cause = ncclMissing is null ? $"this machine has {count} GPU(s), fewer than {gpus}" : $"NCCL is not available ({ncclMissing})";
            AnsiConsole.WriteLine($"Simulated: {cause}, so the {gpus} ranks run on GPU 0, device copies in place of NCCL. These times are one GPU doing every rank's work: " +
                "no scaling number is measured.");
            rows.Add(new("ring (simulated on 1 GPU)", gpus, Simulated(device, gpus, shape, ring: true), Simulated: true));
            if (ulysses)
            {
                rows.Add(new("Ulysses (simulated on 1 GPU)", gpus, Simulated(device, gpus, shape, ring: false), Simulated: true));
            }
        }
        if (!ulysses)
        {
            AnsiConsole.WriteLine($"Ulysses: not run: {heads} query and {kvHeads} K/V heads do not both divide among {gpus} ranks.");
        }
        Report(csv, rows, shape);
        return 0;
    }

    private sealed record Shape(int Seq, int Heads, int KvHeads, int HeadDim)
    {
        public TensorView<Half> View(DeviceBuffer<Half> buffer, int heads, int tokens) => TensorView<Half>.Contiguous(buffer, 1, heads, tokens, HeadDim);
    }

    /// <summary>The baseline: one Int8Attention call on the whole sequence, synchronized.</summary>
    private static double OneGpu(CudaDevice device, Shape shape)
    {
        using var ranks = new RankBuffers(device, shape, shape.Seq, 0);
        using var attention = new Int8Attention(device);
        return WallMedian(() =>
        {
            attention.Forward(ranks.Stream, ranks.Q, ranks.K, ranks.V, shape.View(ranks.O, shape.Heads, shape.Seq), Options, ranks.Lse);
            ranks.Stream.Synchronize();
        });
    }

    /// <summary>Every rank simulated on one GPU, on the whole sequence's tensors.</summary>
    private static double Simulated(CudaDevice device, int gpus, Shape shape, bool ring)
    {
        using var whole = new RankBuffers(device, shape, shape.Seq, 0);
        var partition = new SequencePartition(gpus, shape.Seq, SequenceSplit.ZigZag);
        if (ring)
        {
            using var simulated = new SimulatedRingAttention(device);
            var schedule = new RingSchedule(partition, Causal: true);
            return WallMedian(() => simulated.Forward(whole.Stream, schedule, whole.Q, whole.K, whole.V, whole.O, whole.Lse, Options));
        }
        using var heads = new SimulatedUlyssesAttention(device);
        var layout = new UlyssesLayout(partition, shape.Heads, shape.KvHeads);
        return WallMedian(() => heads.Forward(whole.Stream, layout, whole.Q, whole.K, whole.V, whole.O, whole.Lse, Options));
    }

    /// <summary>N ranks over NCCL, one GPU and thread each, each with its own tokens; a run ends when every rank's call has returned.</summary>
    private static double OverNccl(int gpus, Shape shape, bool ring)
    {
        var devices = new List<CudaDevice>();
        var owned = new List<IDisposable>();
        try
        {
            devices.AddRange(Enumerable.Range(0, gpus).Select(CudaDevice.Open));
            var communicators = NcclCommunicator.InitRanks(devices);
            owned.AddRange(communicators);
            var partition = new SequencePartition(gpus, shape.Seq, SequenceSplit.ZigZag);
            var (schedule, layout) = (new RingSchedule(partition, Causal: true), new UlyssesLayout(partition, shape.Heads, shape.KvHeads));
            var calls = communicators.Select(communicator =>
            {
                var buffers = new RankBuffers(communicator.Device, shape, partition.LocalTokens(communicator.Rank), communicator.Rank + 1);
                var attention = new ContextParallelAttention(communicator);
                // Freed before the communicators (disposed in order).
                owned.Insert(0, buffers);
                owned.Insert(0, attention);
                return ring
                    ? (Action)(() => attention.Ring(buffers.Stream, schedule, buffers.Q, buffers.K, buffers.V, buffers.O, buffers.Lse, Options))
                    : () => attention.Ulysses(buffers.Stream, layout, buffers.Q, buffers.K, buffers.V, buffers.O, buffers.Lse, Options);
            }).ToArray();
            return WallMedian(() => OnThreads(calls));
        }
        finally
        {
            foreach (var item in owned.Concat(devices))
            {
                item.Dispose();
            }
        }
    }

    /// <summary>Runs each rank's call on a thread of its own (each waits for the others inside NCCL) and rethrows the first failure as it was.</summary>
    private static void OnThreads(Action[] calls)
    {
        var running = calls.Select(call => Task.Factory.StartNew(call, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        try
        {
            Task.WaitAll(running);
        }
        catch (AggregateException e)
        {
            ExceptionDispatchInfo.Throw(e.InnerExceptions[0]);
        }
    }

    /// <summary>Median wall-clock milliseconds of 10 runs after 2 warm-ups.</summary>
    private static double WallMedian(Action run)
    {
        var times = new List<double>();
        for (var i = 0; i < 12; i++)
        {
            var clock = Stopwatch.StartNew();
            run();
            if (i >= 2)
            {
                times.Add(clock.Elapsed.TotalMilliseconds);
            }
        }
        times.Sort();
        return times[times.Count / 2];
    }

    private static void Report(FileInfo csv, List<Row> rows, Shape shape)
    {
        string F(double? x) => x?.ToString("F3", CultureInfo.InvariantCulture) ?? "";
        var one = rows[0].Milliseconds;
        // Scaling only where the ranks had GPUs of their own.
        (double? Speedup, double? Efficiency) Scaling(Row row) => row.Simulated || row.Gpus == 1 ? (null, null) : (one / row.Milliseconds, one / (row.Gpus * row.Milliseconds));
        string[] Cells(Row r)
        {
            var (speedup, efficiency) = Scaling(r);
            return [r.Method, $"{r.Gpus}", F(r.Milliseconds), speedup is { } x ? $"{x:F2}×" : "-", efficiency is { } e ? $"{e * 100:F0} %" : "-"];
        }
        string Line(Row r)
        {
            var (speedup, efficiency) = Scaling(r);
            return $"{r.Method},{r.Gpus},{shape.Seq},{shape.Heads},{shape.KvHeads},{shape.HeadDim},{F(r.Milliseconds)},{F(one)},{F(speedup)},{F(efficiency)},{r.Simulated}";
        }
        CliTable.Write(["method", "GPUs", "ms", "speedup", "scaling efficiency"], rows.Select(Cells).ToList(), CliTable.Fits);
        string[] lines = ["method,gpus,seq,heads,kv_heads,head_dim,ms,one_gpu_ms,speedup,efficiency,simulated", .. rows.Select(Line)];
        File.WriteAllLines(csv.FullName, lines);
        AnsiConsole.MarkupLine($"wrote {Markup.Escape(csv.FullName)}");
    }

    /// <summary>One rank's (or the whole sequence's) random Q, K, V, its O and LSE, and a stream, on its GPU.</summary>
    private sealed class RankBuffers : IDisposable
    {
        private readonly DeviceBuffer<Half> _q, _k, _v;

        public RankBuffers(CudaDevice device, Shape shape, int tokens, int seed)
        {
            Stream = device.CreateStream();
            _q = BenchCommand.Random(device, (long)shape.Heads * tokens * shape.HeadDim, 3 * seed + 1);
            _k = BenchCommand.Random(device, (long)shape.KvHeads * tokens * shape.HeadDim, 3 * seed + 2);
            _v = BenchCommand.Random(device, (long)shape.KvHeads * tokens * shape.HeadDim, 3 * seed + 3);
            O = device.Allocate<Half>((long)shape.Heads * tokens * shape.HeadDim);
            Lse = device.Allocate<float>((long)shape.Heads * tokens);
            (Q, K, V) = (shape.View(_q, shape.Heads, tokens), shape.View(_k, shape.KvHeads, tokens), shape.View(_v, shape.KvHeads, tokens));
        }

        public CudaStream Stream { get; }
        public TensorView<Half> Q { get; }
        public TensorView<Half> K { get; }
        public TensorView<Half> V { get; }
        public DeviceBuffer<Half> O { get; }
        public DeviceBuffer<float> Lse { get; }

        public void Dispose()
        {
            foreach (var item in new IDisposable[] { _q, _k, _v, O, Lse, Stream })
            {
                item.Dispose();
            }
        }
    }
}

using System.CommandLine;
using System.Globalization;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Launching;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary>
/// <c>kdsl bench</c>: every f16 attention variant on the standard grid (B·S = 16384, H·D = 2048), CUDA events, median
/// of 20 runs after 3 warm-ups. Kernel-only times the attention kernel on inputs quantized once; end-to-end adds the
/// three quantize kernels, with NonFiniteInputs.Ignore (asynchronous like torch; the default Throw adds one stream
/// synchronization per call). TOPS counts 4·B·H·S²·D (halved when causal). Each input tensor is 64 MB, more than an
/// H100's 50 MB L2. Writes CSV; bench/sdpa.py joins it with torch SDPA timed in the same call.
/// <c>--variants</c> times the attention variants with modifiers instead (<see cref="VariantBench"/>), <c>--decode</c> decode from
/// the paged INT8 KV cache (<see cref="DecodeBench"/>), <c>--gpus N</c> context parallelism over N GPUs (<see cref="ContextParallelBench"/>).
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var csv = new Option<FileInfo>("--csv") { Description = "Where to write the results.", DefaultValueFactory = _ => new FileInfo("bench.csv") };
        var quick = new Option<bool>("--quick") { Description = "S in {1024, 4096, 16384} instead of {1024, 2048, 4096, 8192, 16384}." };
        var headDim = new Option<int?>("--head-dim") { Description = "Only this head dim (64 or 128), e.g. to profile one shape." };
        var seq = new Option<int?>("--seq") { Description = "Only this sequence length (B = 16384 / S)." };
        var only = new Option<string?>("--only") { Description = "Only variants whose name contains this text (e.g. WgmmaStages3); skips the autotuned rows." };
        var variants = new Option<bool>("--variants") { Description = "Time the library's variants with modifiers (window, document, ALiBi, softcap, prefix-LM, causal as a mask) beside dense and causal at D = 128, H = 16, S in {4096, 16384} (or --seq), for bench/flex.py." };
        headDim.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is { } d && d is not (64 or 128)) r.AddError($"--head-dim must be 64 or 128 (the declared head dims), not {d}."); });
        only.Validators.Add(r => { if (r.GetValueOrDefault<string?>() is { } text && !AttentionVariant.All.Any(v => v.Module.Name.Contains(text, StringComparison.Ordinal))) r.AddError($"--only '{text}' matches no declared attention variant (kdsl list shows them)."); });
        var decode = new Option<bool>("--decode") { Description = "Time decode from the paged INT8 KV cache at D = 128, GQA 64:8, Sq in {1, 4}, batch in {1, 16, 64}, context in {1024, 4096, 16384, 32768}, for bench/sdpa.py decode-join. Takes only --csv." };
        var splitNeighbours = new Option<bool>("--split-neighbours") { Description = "With --decode: also time the default decode kernel at one split fewer and one more than its rule takes, to check the rule (the most splits that run as one wave)." };
        var gpus = new Option<int?>("--gpus") { Description = $"Time context parallelism at one sequence length (--seq, default {ContextParallelBench.DefaultSeq}; causal, zig-zag) over N GPUs: the ring over NCCL (and Ulysses where the heads divide) against one GPU, with the scaling efficiency; with fewer GPUs the simulated ring on one, which measures no scaling." };
        var heads = new Option<int?>("--heads") { Description = $"With --gpus: query heads (default {ContextParallelBench.DefaultHeads})." };
        var kvHeads = new Option<int?>("--kv-heads") { Description = $"With --gpus: K/V heads, dividing --heads (default {ContextParallelBench.DefaultKvHeads})." };
        var command = new Command("bench", "Time every attention variant on the standard grid (needs a GPU), or context parallelism over several (--gpus).") { csv, quick, headDim, seq, only, variants, decode, splitNeighbours, gpus, heads, kvHeads };
        // --seq means one thing for the standard grid and another for --gpus; each has its own rule.
        command.Validators.Add(r =>
        {
            // A value that does not convert is the option's own error, reported as such; this rule then has nothing to check.
            if (!Converts(r, gpus) || !Converts(r, seq) || !Converts(r, heads) || !Converts(r, kvHeads))
            {
                return;
            }
            if (r.GetValue(gpus) is { } n)
            {
                if (ContextParallelBench.Check(n, r.GetValue(seq), r.GetValue(heads), r.GetValue(kvHeads)) is { } error)
                {
                    r.AddError(error);
                    return;
                }
                foreach (var (option, name) in new (Option Option, string Name)[] { (decode, "--decode"), (variants, "--variants"), (quick, "--quick"), (only, "--only") })
                {
                    if (r.GetResult(option) is { Implicit: false })
                    {
                        r.AddError($"--gpus and {name} cannot be used together: --gpus times context parallelism at one length (--seq, --head-dim, --heads, --kv-heads); drop {name} or --gpus.");
                        return;
                    }
                }
                return;
            }
            foreach (var (option, name) in new (Option Option, string Name)[] { (heads, "--heads"), (kvHeads, "--kv-heads") })
            {
                if (r.GetResult(option) is { Implicit: false })
                {
                    r.AddError($"{name} applies to --gpus only (the standard grid keeps H·D = 2048): add --gpus N or drop {name}.");
                    return;
                }
            }
            if (r.GetValue(seq) is { } s && (s <= 0 || 16384 % s != 0))
            {
                r.AddError($"--seq must be a positive divisor of 16384 (the grid keeps B·S = 16384), not {s}.");
            }
        });
        // --decode has its own grid: an option of the other grids with it is a mistake, named before looking for a GPU.
        command.Validators.Add(r =>
        {
            if (r.GetResult(decode) is not { Implicit: false } || !r.GetValue(decode))
            {
                if (r.GetResult(splitNeighbours) is { Implicit: false } && r.GetValue(splitNeighbours))
                {
                    r.AddError("--split-neighbours applies to --decode only (it times the decode kernel at other split counts): add --decode or drop --split-neighbours.");
                }
                return;
            }
            foreach (var (option, name) in new (Option Option, string Name)[] { (variants, "--variants"), (quick, "--quick"), (headDim, "--head-dim"), (seq, "--seq"), (only, "--only") })
            {
                if (r.GetResult(option) is { Implicit: false })
                {
                    r.AddError($"--decode and {name} cannot be used together: --decode times its own grid (D = 128, GQA 64:8, batch 1/16/64, context 1k-32k); drop {name} or --decode.");
                    return;
                }
            }
        });
        // --variants has its own grid too (D = 128, H = 16, S in {4096, 16384} or --seq): the standard grid's --quick,
        // --head-dim and --only would be ignored, so they are refused. --decode and --gpus name their own conflicts.
        command.Validators.Add(r =>
        {
            if (r.GetResult(variants) is not { Implicit: false } || !r.GetValue(variants) || r.GetResult(decode) is { Implicit: false } || r.GetResult(gpus) is { Implicit: false })
            {
                return;
            }
            foreach (var (option, name) in new (Option Option, string Name)[] { (quick, "--quick"), (headDim, "--head-dim"), (only, "--only") })
            {
                if (r.GetResult(option) is { Implicit: false })
                {
                    r.AddError($"--variants and {name} cannot be used together: --variants times its own grid (D = 128, H = 16, S in {{4096, 16384}} or --seq); drop {name} or --variants.");
                    return;
                }
            }
        });
        // On the standard grid --seq times one length, so --quick (a shorter list of lengths) would be ignored.
        command.Validators.Add(r =>
        {
            if (new Option[] { decode, variants, gpus }.Any(o => r.GetResult(o) is { Implicit: false }))
            {
                return;
            }
            if (r.GetResult(quick) is { Implicit: false } && r.GetValue(quick) && r.GetResult(seq) is { Implicit: false })
            {
                r.AddError("--quick and --seq cannot be used together: --seq times one length, --quick a shorter list of them; drop --quick or --seq.");
            }
        });
        command.SetAction(parse => parse.GetValue(gpus) is { } n
            ? ContextParallelBench.Run(parse.GetValue(csv)!, n, parse.GetValue(seq) ?? ContextParallelBench.DefaultSeq, parse.GetValue(headDim) ?? 128,
                parse.GetValue(heads) ?? ContextParallelBench.DefaultHeads, parse.GetValue(kvHeads) ?? ContextParallelBench.DefaultKvHeads)
            : Run(parse.GetValue(csv)!, parse.GetValue(quick), parse.GetValue(headDim), parse.GetValue(seq), parse.GetValue(only), parse.GetValue(variants),
                parse.GetValue(decode), parse.GetValue(splitNeighbours)));
        return command;
    }

    private static bool Converts<T>(System.CommandLine.Parsing.CommandResult result, Option<T> option)
    {
        try
        {
            result.GetValue(option);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static int Run(FileInfo csv, bool quick, int? onlyHeadDim, int? onlySeq, string? onlyVariant, bool variants, bool decode, bool splitNeighbours)
    {
        CliApp.CheckOutputFile(csv, "--csv");
        if (!CudaDevice.TryOpen(0, out var device, out var reason))
        {
            return CliApp.Error(CliApp.Failure, $"kdsl bench needs a CUDA GPU: {reason.Split('\n')[0].Trim()}");
        }
        using var _ = device;
        using var stream = device.CreateStream();
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(device.Name)}[/] ({device.ArchName}, {device.SmCount} SMs)");
        CliApp.WarnIfSourcesOverridden();
        if (decode)
        {
            DecodeBench.Run(device, stream, csv, splitNeighbours);
            return 0;
        }
        using var attention = new Int8Attention(device);
        if (variants)
        {
            VariantBench.Run(device, stream, attention, csv, onlySeq is { } one ? [one] : [4096, 16384]);
            return 0;
        }

        int[] lengths = onlySeq is { } only ? [only] : quick ? [1024, 4096, 16384] : [1024, 2048, 4096, 8192, 16384];
        int[] headDims = onlyHeadDim is { } oneDim ? [oneDim] : [64, 128];
        // kv_once: the call with K and V quantized beforehand (Int8Attention.QuantizeKeysValues), i.e. the kernel and Q's quantization.
        var rows = new List<string> { "variant,head_dim,seq,causal,batch,heads,kernel_ms,end_to_end_ms,kernel_tops,end_to_end_tops,kv_once_ms,kv_once_tops,kernel" };
        var table = new Table().AddColumns("variant", "D", "S", "causal", "kernel ms", "e2e ms", "kernel TOPS", "e2e TOPS", "K/V once TOPS");
        var grid = headDims.SelectMany(d => lengths.Select(s => (HeadDim: d, Seq: s))).ToList();
        CliProgress.Run("benchmark (D, S)", grid, point => Measure(device, stream, attention, point.HeadDim, point.Seq, onlyVariant, rows, table));
        AnsiConsole.Write(table);
        File.WriteAllLines(csv.FullName, rows);
        AnsiConsole.MarkupLine($"wrote {Markup.Escape(csv.FullName)}");
        return 0;
    }

    private static void Measure(CudaDevice device, CudaStream stream, Int8Attention attention, int headDim, int seq, string? onlyVariant, List<string> rows, Table table)
    {
        var (batch, heads) = (16384 / seq, 2048 / headDim);
        var elements = (long)batch * heads * seq * headDim;
        using var q = Random(device, elements, 1);
        using var k = Random(device, elements, 2);
        using var v = Random(device, elements, 3);
        using var o = device.Allocate<Half>(elements);
        TensorView<Half> View(DeviceBuffer<Half> x) => TensorView<Half>.Contiguous(x, batch, heads, seq, headDim);
        foreach (var variant in AttentionVariant.All.Where(x => x.HeadDim == headDim && x.Input == Element.F16 && x.RunsOn(device.ComputeCapability)
                     && (onlyVariant is null || x.Module.Name.Contains(onlyVariant, StringComparison.Ordinal))))
        {
            var options = new AttentionOptions { Causal = variant.Causal, Pv = variant.Pv, V = variant.V, Tile = variant.Tile, NonFinite = NonFiniteInputs.Ignore };
            var (selected, launch) = attention.Prepare(stream, View(q), View(k), View(v), View(o), options, null);
            var kernel = Median(stream, () => selected.Launch(launch));
            var endToEnd = Median(stream, () => attention.Forward(stream, View(q), View(k), View(v), View(o), options));
            var kvOnce = variant.VLayout is not null ? KvOnce(stream, attention, View(q), View(k), View(v), View(o), options) : (double?)null;
            var ops = 4.0 * batch * heads * seq * (double)seq * headDim * (variant.Causal ? 0.5 : 1.0);
            // Untagged: the first declared tile of its V strategy. "(default)": what Forward runs with neither V nor Tile given.
            var deviceDefault = Int8Attention.Select(Element.F16, headDim, new AttentionOptions { Causal = variant.Causal, Pv = variant.Pv }, device.ComputeCapability);
            var name = variant.Pv switch { PvPrecision.Float16 => "f16-PV", PvPrecision.E4M3 => "fp8-PV", _ => "u8-PV " + variant.V }
                + (variant.Tile == Int8Attention.TilesFor(Element.F16, headDim, options)[0] && !variant.Module.RequiresArchSpecific ? "" : $" [{variant.Kernel.TileName}]")
                + (deviceDefault.Kernel.Name == variant.Kernel.Name ? " (default)" : "");
            AddRow(rows, table, name, variant.Module.Name, headDim, seq, variant.Causal, batch, heads, ops, kernel, endToEnd, kvOnce);
        }
        if (onlyVariant is not null)
        {
            return;
        }
        // The autotuner's pick among the declared V strategies and tiles for this shape, and what it measured for it.
        foreach (var causal in new[] { false, true })
        {
            var options = new AttentionOptions { Causal = causal, Autotune = true, NonFinite = NonFiniteInputs.Ignore };
            attention.Forward(stream, View(q), View(k), View(v), View(o), options);
            var tuning = attention.LastTuning!;
            var picked = options with { Autotune = false, V = tuning.Strategy, Tile = tuning.Tile };
            // The picked kernel alone, timed like every other row (the tuner's own figure is of whole calls).
            var (selected, launch) = attention.Prepare(stream, View(q), View(k), View(v), View(o), picked, null);
            var kernel = Median(stream, () => selected.Launch(launch));
            var endToEnd = Median(stream, () => attention.Forward(stream, View(q), View(k), View(v), View(o), options));
            var ops = 4.0 * batch * heads * seq * (double)seq * headDim * (causal ? 0.5 : 1.0);
            var name = $"u8-PV autotuned: {tuning.Strategy} [{KernelVariants.TileName(tuning.Tile)}]";
            var kvOnce = KvOnce(stream, attention, View(q), View(k), View(v), View(o), picked);
            AddRow(rows, table, name, "autotuned", headDim, seq, causal, batch, heads, ops, kernel, endToEnd, kvOnce);
        }
    }

    /// <summary>Median milliseconds of a call whose K and V were quantized once beforehand: the kernel and Q's quantization.</summary>
    private static double KvOnce(CudaStream stream, Int8Attention attention, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v, TensorView<Half> o,
        AttentionOptions options)
    {
        using var kv = attention.QuantizeKeysValues(stream, k, v, options);
        return Median(stream, () => attention.Forward(stream, q, kv, o, options));
    }

    /// <param name="module">
    /// The kernel's module name, the key across builds ("autotuned" for the autotuner's rows); causal kernels were renamed
    /// at 10a1f38 (Int8AttentionD128CausalX became Int8AttentionD128X.Causal), which scripts/gpu-compare maps.
    /// </param>
    private static void AddRow(List<string> rows, Table table, string name, string module, int headDim, int seq, bool causal, int batch, int heads, double ops,
        double kernel, double endToEnd, double? kvOnce)
    {
        string F(double x) => x.ToString("F3", CultureInfo.InvariantCulture);
        var (kvMs, kvTops) = kvOnce is { } ms ? (F(ms), F(ops / ms / 1e9)) : ("", "");
        rows.Add($"{name},{headDim},{seq},{causal},{batch},{heads},{F(kernel)},{F(endToEnd)},{F(ops / kernel / 1e9)},{F(ops / endToEnd / 1e9)},{kvMs},{kvTops},{module}");
        table.AddRow(Markup.Escape(name), $"{headDim}", $"{seq}", causal ? "yes" : "no", F(kernel), F(endToEnd), F(ops / kernel / 1e9), F(ops / endToEnd / 1e9),
            kvTops == "" ? "-" : kvTops);
    }

    internal static DeviceBuffer<Half> Random(CudaDevice device, long length, int seed)
    {
        var random = new Random(seed);
        var values = new Half[length];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (Half)(random.NextDouble() * 2 - 1);
        }
        return device.Upload<Half>(values);
    }

    /// <summary>
    /// Median milliseconds of 20 runs after 3 warm-ups, each bracketed by CUDA events on the stream;
    /// <paramref name="before"/>, if given, is queued before each run, outside the events (e.g. an L2 flush).
    /// </summary>
    internal static double Median(CudaStream stream, Action run, Action? before = null) => MedianWithHost(stream, run, before).Ms;

    /// <summary>
    /// <see cref="Median"/>, with the median microseconds the host took to queue each run (a Stopwatch around
    /// <paramref name="run"/>, between the events).
    /// </summary>
    internal static (double Ms, double HostUs) MedianWithHost(CudaStream stream, Action run, Action? before = null)
    {
        var (times, host) = (new List<double>(), new List<double>());
        for (var i = 0; i < 23; i++)
        {
            before?.Invoke();
            using var start = stream.Record();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            run();
            var queued = clock.Elapsed.TotalMicroseconds;
            using var stop = stream.Record();
            stop.Synchronize();
            if (i >= 3)
            {
                times.Add(stop.ElapsedMilliseconds(start));
                host.Add(queued);
            }
        }
        times.Sort();
        host.Sort();
        return (times[times.Count / 2], host[host.Count / 2]);
    }
}

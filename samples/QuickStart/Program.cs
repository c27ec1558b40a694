using System.Diagnostics;
using System.Runtime.CompilerServices;
using KernelDsl;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.Quantization;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;
using QuickStart;
using Spectre.Console;

// The quick start. SlidingWindowSoftcap.cs declares an attention variant in C# (a sliding-window mask and a softcap);
// the build turned it into CUDA and typed launchers. Here: what was generated, NVRTC compiles it, and Int8Attention runs
// it on the GPU, checked against float64 attention with the same C# methods and timed; with no GPU, the CPU reference of
// the same int8 algorithm is checked instead. `-- gemm` runs the second part, an int8 GEMM (GemmQuickStart.cs).
// Piped output is not wrapped at Spectre's default 80 columns, so paths and sentences stay whole for grep and copy.
if (!AnsiConsole.Profile.Out.IsTerminal)
{
    AnsiConsole.Profile.Width = 10_000;
}
switch (args)
{
    case []:
        break;
    case ["gemm"]:
        return GemmQuickStart.Run();
    case ["--help" or "-h" or "-?"]:
        Console.WriteLine("dotnet run --project samples/QuickStart            the attention variant SlidingWindowSoftcap: its generated CUDA, NVRTC, a run checked against float64");
        Console.WriteLine("dotnet run --project samples/QuickStart -- gemm    the int8 GEMM part");
        return 0;
    default:
        Console.Error.WriteLine($"Unknown argument '{args[0]}': run with no argument for attention, or with 'gemm' for the int8 GEMM part.");
        return 2;
}

const int Window = 256;    // keys each query sees
const float Cap = 50f;     // Gemma 2's attention softcap
var wgmma = SlidingWindowSoftcap.Wgmma.Info;
var mmaSync = SlidingWindowSoftcap.MmaSync.Info;
var arguments = new ModifierArguments().Set("window", Window).Set("cap", Cap);   // bound by the methods' parameter names
var modifiers = new AttentionModifiers(                                             // the CPU references call the same methods
    Score: (s, b, h, q, k) => SlidingWindowSoftcap.Softcap(s, b, h, q, k, Cap),
    Mask: (b, h, q, k) => SlidingWindowSoftcap.Window(b, h, q, k, Window));

// 1. What the generator made of SlidingWindowSoftcap.cs.
AnsiConsole.MarkupLine($"[bold]KernelDsl quick start[/]: the attention variant [blue]SlidingWindowSoftcap[/] (window {Window}, softcap {Cap}), D = 128, f16");
var kernels = new Table().AddColumns("kernel", "targets", "tile", "V into P·V", "CUDA");
foreach (var kernel in new[] { wgmma, mmaSync })
{
    kernels.AddRow(kernel.Name[(kernel.Name.LastIndexOf('.') + 1)..], string.Join(", ", kernel.Module.Targets), Markup.Escape(kernel.Tile), kernel.VStrategy,
        $"{kernel.Module.CudaSource.Split('\n').Length} lines");
}
AnsiConsole.Write(kernels);
AnsiConsole.MarkupLine($"Generated CUDA of {Markup.Escape(mmaSync.Name)}: [blue]{Markup.Escape(GeneratedFile("QuickStart.SlidingWindowSoftcap.MmaSync.cu.g.cs"))}[/]");

// 2. NVRTC, where present: the sm_80 kernel, with ptxas's report.
if (NvrtcCompiler.TryLoad(out var nvrtc, out var trace))
{
    var result = AnsiConsole.Status().Start($"NVRTC {nvrtc.Version}: compiling {mmaSync.Name} for sm_80...",
        _ => nvrtc.Compile(NvrtcRequest.ForModule(mmaSync.Module, "sm_80", ptxasVerbose: true)));
    var report = result.Kernels.Single();
    AnsiConsole.MarkupLine($"NVRTC {nvrtc.Version} compiled it for sm_80 in {result.Elapsed.TotalSeconds:F1} s: " +
        $"{report.Registers} registers, {report.SpillStoreBytes + report.SpillLoadBytes} spill bytes.");
}
else
{
    AnsiConsole.MarkupLine($"[yellow]NVRTC not found[/]: skipping the compilation. {Markup.Escape(Probe.Advice(trace))} (docs/NVRTC.md)");
}

// 3. Run it: on the GPU if there is one, else the CPU reference of the same int8 algorithm. Both against float64.
var random = new Random(2024);
double[] actual;
AttentionShape shape;
Half[] q, k, v;
if (CudaDevice.TryOpen(0, out var device, out var reason))
{
    using (device)
    {
        var kernel = wgmma.RunsOn(device.ComputeCapability) ? wgmma : mmaSync;
        AnsiConsole.MarkupLine($"GPU: [blue]{Markup.Escape(device.Name)}[/] ({device.ArchName}, {device.SmCount} SMs), kernel {Markup.Escape(kernel.Name)}");
        shape = new AttentionShape(1, 4, 4, 1024, 1024, 128);
        (q, k, v) = (Gaussian(random, shape.QElements), Gaussian(random, shape.KvElements), Gaussian(random, shape.KvElements));
        actual = OnGpu(device, kernel, shape, q, k, v, arguments, timedRuns: 0).Select(x => (double)x).ToArray();

        // Timed at a longer sequence, queued back to back (no NaN/Inf check, which waits for the GPU after each call).
        var timed = new AttentionShape(1, 16, 16, 8192, 8192, 128);
        var (tq, tk, tv) = (Gaussian(random, timed.QElements), Gaussian(random, timed.KvElements), Gaussian(random, timed.KvElements));
        var median = 0f;
        AnsiConsole.Status().Start("Timing...", _ => OnGpu(device, kernel, timed, tq, tk, tv, arguments, timedRuns: 20, ms => median = ms));
        AnsiConsole.MarkupLine($"Time: median {median:F3} ms of 20 calls at B = 1, H = 16, S = 8192 (quantizing q, k, v and attention).");
    }
}
else
{
    AnsiConsole.MarkupLine($"[yellow bold]No CUDA GPU found[/]: {Markup.Escape(Probe.Device(reason))}.");
    AnsiConsole.MarkupLine($"Running the CPU reference of the same int8 algorithm instead, with {Markup.Escape(mmaSync.Name)}'s blocks (a small shape: it is slow).");
    shape = new AttentionShape(1, 2, 2, 512, 512, 128);
    (q, k, v) = (Gaussian(random, shape.QElements), Gaussian(random, shape.KvElements), Gaussian(random, shape.KvElements));
    // What Int8Attention computes with the mma.sync kernel: its blocks, and the summation order of K's mean.
    var options = Int8Attention.ReferenceOptions(mmaSync);
    var clock = Stopwatch.StartNew();
    actual = Int8AttentionReference.Forward(shape, q, k, v, options, modifiers).OutputValues();
    AnsiConsole.MarkupLine($"CPU int8 reference: {clock.ElapsedMilliseconds} ms.");
}

var expected = Float64Attention.Forward(shape, q, k, v, modifiers: modifiers);
var error = ErrorMetrics.Compare(actual, expected.Output);
var good = error.RelativeL2 <= 3e-2 && error.Cosine >= 0.999;   // the int8 algorithm's bar in the GPU tests
AnsiConsole.MarkupLine($"Against float64 attention with the same C# methods (B = {shape.Batch}, H = {shape.HeadsQ}, S = {shape.TokensQ}): " +
    $"relative L2 {error.RelativeL2:E2}, cosine {error.Cosine:F6}, max |Δ| {error.MaxAbs:E2} " +
    (good ? "[green](within the int8 bar: relative L2 ≤ 3e-2, cosine ≥ 0.999)[/]" : "[red](outside the int8 bar: relative L2 ≤ 3e-2, cosine ≥ 0.999)[/]"));
AnsiConsole.MarkupLine("Next: README.md, \"Declare your own attention variant\"; the int8 GEMM part: [blue]dotnet run --project samples/QuickStart -- gemm[/]");
return good ? 0 : 1;

static Half[] Gaussian(Random random, long count)
{
    var values = new Half[count];
    for (var i = 0; i < values.Length; i++)
    {
        values[i] = (Half)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
    }
    return values;
}

// One call of the kernel through Int8Attention (it quantizes q, k and v on the stream first); with timedRuns > 0, the
// median of that many calls after three warm-ups, measured with events on the stream.
static Half[] OnGpu(CudaDevice device, AttentionKernelInfo kernel, AttentionShape shape, Half[] q, Half[] k, Half[] v,
    ModifierArguments arguments, int timedRuns, Action<float>? median = null)
{
    using var stream = device.CreateStream();
    using var attention = new Int8Attention(device);
    using DeviceBuffer<Half> dq = device.Upload<Half>(q), dk = device.Upload<Half>(k), dv = device.Upload<Half>(v), o = device.Allocate<Half>(q.Length);
    TensorView<Half> View(DeviceBuffer<Half> x, int heads, int tokens) => TensorView<Half>.Contiguous(x, shape.Batch, heads, tokens, shape.HeadDim);
    void Call(AttentionOptions? options) => attention.Forward(stream, kernel, View(dq, shape.HeadsQ, shape.TokensQ), View(dk, shape.HeadsKv, shape.TokensKv),
        View(dv, shape.HeadsKv, shape.TokensKv), View(o, shape.HeadsQ, shape.TokensQ), arguments, options);
    Call(null);   // the default: throws if q, k or v holds a NaN or ±Inf
    if (timedRuns > 0)
    {
        var fast = new AttentionOptions { NonFinite = NonFiniteInputs.Ignore };
        var times = new List<float>();
        for (var run = 0; run < timedRuns + 3; run++)
        {
            using var start = stream.Record();
            Call(fast);
            using var stop = stream.Record();
            stop.Synchronize();
            if (run >= 3)
            {
                times.Add(stop.ElapsedMilliseconds(start));
            }
        }
        times.Sort();
        median?.Invoke(times[times.Count / 2]);
    }
    stream.Synchronize();
    return o.ToArray();
}

// Where the build wrote a generated file (EmitCompilerGeneratedFiles in QuickStart.csproj), relative to here.
static string GeneratedFile(string name, [CallerFilePath] string source = "")
{
    var obj = Path.Combine(Path.GetDirectoryName(source)!, "obj");
    var found = Directory.Exists(obj)
        ? Directory.GetFiles(obj, name, SearchOption.AllDirectories).OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault()
        : null;
    return found is null ? $"{name} under obj/ of the build ({nameof(KernelModuleDefinition.CudaSource)} holds it too)" : Path.GetRelativePath(Environment.CurrentDirectory, found);
}

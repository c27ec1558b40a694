using System.Diagnostics;
using KernelDsl;
using KernelDsl.Attention.Reference;
using Spectre.Console;

namespace QuickStart;

/// <summary>
/// The second part (<c>dotnet run --project samples/QuickStart -- gemm</c>): the int8 GEMM declared in
/// Int8GemmQuickStart.cs, whose B operand is stored as attention's V is. It shows what was generated, compiles it with
/// NVRTC for every target, runs the exact CPU reference and, on a GPU, launches it and checks every element.
/// </summary>
internal static class GemmQuickStart
{
    public static int Run()
    {
        const int M = 1000, N = 520, K = 777;   // not multiples of the tiles, on purpose
        const int Lda = (K + 15) / 16 * 16, Ldb = (N + 15) / 16 * 16;

        AnsiConsole.MarkupLine($"[bold]KernelDsl quick start[/]: [blue]{Int8GemmQuickStart.Module.Name}[/]");
        var summary = new Table().AddColumns("generated", "value");
        summary.AddRow("kernel", Int8GemmQuickStart.KernelName);
        summary.AddRow("threads per block", Int8GemmQuickStart.ThreadsPerBlock.ToString());
        summary.AddRow("dynamic shared memory", $"{Int8GemmQuickStart.SharedMemoryBytes} bytes");
        summary.AddRow("minimum SM", $"sm_{Int8GemmQuickStart.MinimumSm}");
        summary.AddRow("CUDA source", $"{Int8GemmQuickStart.CudaSource.Split('\n').Length} lines (Int8GemmQuickStart.CudaSource)");
        AnsiConsole.Write(summary);

        // 1. NVRTC, where present: every target, with the ptxas report.
        if (NvrtcCompiler.TryLoad(out var nvrtc, out var trace))
        {
            var report = new Table().AddColumns("target", "registers", "spill bytes", "compile ms");
            var spilled = new List<string>();
            foreach (var target in Int8GemmQuickStart.Module.Targets)
            {
                var result = nvrtc.Compile(NvrtcRequest.ForModule(Int8GemmQuickStart.Module, target, ptxasVerbose: true));
                var kernel = result.Kernels.Single(k => k.Name == Int8GemmQuickStart.KernelName);
                var spill = (kernel.SpillStoreBytes + kernel.SpillLoadBytes).ToString();
                report.AddRow(target, kernel.Registers.ToString(), kernel.Spills ? $"[red]{spill}[/]" : spill, result.Elapsed.TotalMilliseconds.ToString("F0"));
                if (kernel.Spills)
                {
                    spilled.Add(target);
                }
            }
            AnsiConsole.MarkupLine($"[green]NVRTC {nvrtc.Version}[/] compiled the variant:");
            AnsiConsole.Write(report);
            if (spilled.Count > 0)
            {
                // What kdsl compile fails on: ptxas ran out of registers and moved some to local memory, which costs time.
                AnsiConsole.MarkupLine($"[red]It spills on {string.Join(", ", spilled)}[/] (ptxas moved registers to local memory): retune the declaration (Int8GemmQuickStart.cs).");
            }

            // The module cache: the first request compiles (cold), a second cache on the same folder loads from disk (warm).
            var folder = ModuleCache.DefaultDirectory() ?? Path.Combine(Path.GetTempPath(), "kerneldsl");
            var request = NvrtcRequest.ForModule(Int8GemmQuickStart.Module, Int8GemmQuickStart.Module.Targets[^1]);
            var first = new ModuleCache(nvrtc, folder);
            first.GetOrCompile(request);
            var second = new ModuleCache(nvrtc, folder);
            second.GetOrCompile(request);
            AnsiConsole.MarkupLine($"Module cache in {Markup.Escape(folder)}: " +
                (first.Statistics.Compilations > 0 ? $"cold compile {first.Statistics.LastColdCompile?.TotalMilliseconds:F0} ms" : "already on disk") +
                $", warm load {second.Statistics.LastWarmLoad?.TotalMilliseconds:F1} ms ({second.Statistics.DiskHits} disk hit, {second.Statistics.Compilations} compilations).");
        }
        else
        {
            AnsiConsole.MarkupLine($"[yellow]NVRTC not found[/]: skipping the compilation. {Markup.Escape(Probe.Advice(trace))} (docs/NVRTC.md)");
        }

        // 2. The exact CPU reference, on fresh random int8 inputs.
        var random = new Random();
        var a = new sbyte[M * Lda];
        var b = new sbyte[K * Ldb];
        for (var i = 0; i < a.Length; i++) a[i] = (sbyte)random.Next(-128, 128);
        for (var i = 0; i < b.Length; i++) b[i] = (sbyte)random.Next(-128, 128);
        var clock = Stopwatch.StartNew();
        var expected = GemmReference.Multiply(a, b, M, N, K, Lda, Ldb, bIsKMajor: false);
        AnsiConsole.MarkupLine($"CPU reference: {M}×{N}×{K} int8 GEMM in {clock.ElapsedMilliseconds} ms (exact int32).");

        // 3. The GPU, if there is one.
        if (!CudaDevice.TryOpen(0, out var device, out var reason))
        {
            AnsiConsole.MarkupLine($"[yellow bold]No CUDA GPU found[/]: {Markup.Escape(Probe.Device(reason))}.");
            AnsiConsole.MarkupLine("Generated and (where NVRTC exists) compiled the kernel, and ran the CPU reference. Run this on a machine with an NVIDIA GPU to launch it.");
            return 0;
        }
        using (device)
        using (var stream = device.CreateStream())
        using (var da = device.Upload<sbyte>(a))
        using (var db = device.Upload<sbyte>(b))
        using (var dc = device.Allocate<int>((long)M * N))
        {
            AnsiConsole.MarkupLine($"GPU: [blue]{Markup.Escape(device.Name)}[/] ({device.ArchName}, {device.SmCount} SMs)");
            dc.FillBytes(0xA5); // poison: every element must be written
            Int8GemmQuickStart.Launch(stream, da, db, dc, M, N, K, Lda, Ldb, N);
            stream.Synchronize();
            var actual = dc.ToArray();
            var mismatches = actual.Zip(expected).Count(p => p.First != p.Second);
            AnsiConsole.MarkupLine(mismatches == 0 ? "[green]GPU result equals the CPU reference exactly.[/]" : $"[red]{mismatches} of {expected.Length} elements differ.[/]");

            const int Runs = 20;
            var times = new List<float>();
            for (var r = 0; r < Runs + 3; r++)
            {
                var start = stream.Record();
                Int8GemmQuickStart.Launch(stream, da, db, dc, M, N, K, Lda, Ldb, N);
                var stop = stream.Record();
                stop.Synchronize();
                if (r >= 3) times.Add(stop.ElapsedMilliseconds(start));
                start.Dispose();
                stop.Dispose();
            }
            times.Sort();
            var median = times[Runs / 2];
            AnsiConsole.MarkupLine($"Kernel time: median {median * 1000:F1} µs of {Runs} runs ({2.0 * M * N * K / (median * 1e-3) / 1e12:F2} TOPS at this small size).");
            return mismatches == 0 ? 0 : 1;
        }
    }
}

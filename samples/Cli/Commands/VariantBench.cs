using System.Globalization;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Launching;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary>
/// <c>kdsl bench --variants</c>: the library's attention variants with modifiers at D = 128, H = 16, B·S = 16384, S in
/// {4096, 16384}, beside the plain dense and causal kernels of the same form, timed like the standard grid (kernel alone
/// and end to end from f16). Writes <c>variant,seq,batch,heads,head_dim,kernel,kernel_ms,e2e_ms,kv_once_ms</c>; bench/flex.py joins
/// it with FlexAttention timed in the same call. Variant names are FlexAttention's: dense, causal, causal_mask, window
/// (1024), document (8 equal documents), alibi, softcap (30), prefix (1024).
/// </summary>
internal static class VariantBench
{
    private const int HeadDim = 128, Heads = 16, Tokens = 16384;

    public static void Run(CudaDevice device, CudaStream stream, Int8Attention attention, FileInfo csv, int[] lengths)
    {
        var rows = new List<string> { "variant,seq,batch,heads,head_dim,kernel,kernel_ms,e2e_ms,kv_once_ms" };
        var table = new Table().AddColumns("variant", "S", "kernel", "kernel ms", "e2e ms", "K/V once ms");
        CliProgress.Run("variants (S)", lengths, seq =>
        {
            var batch = Tokens / seq;
            var elements = (long)batch * Heads * seq * HeadDim;
            using var q = BenchCommand.Random(device, elements, 1);
            using var k = BenchCommand.Random(device, elements, 2);
            using var v = BenchCommand.Random(device, elements, 3);
            using var o = device.Allocate<Half>(elements);
            using var slopes = device.Upload<float>(Enumerable.Range(0, Heads).Select(i => MathF.Pow(2f, -8f * (i + 1) / Heads)).ToArray());
            using var documents = device.Upload<int>(Enumerable.Range(0, seq).Select(i => i * 8 / seq).ToArray());
            TensorView<Half> View(DeviceBuffer<Half> x) => TensorView<Half>.Contiguous(x, batch, Heads, seq, HeadDim);
            (string Name, string Family, ModifierArguments Arguments)[] variants =
            [
                ("dense", PlainKernels, ModifierArguments.None),
                ("causal", PlainKernels + ".Causal", ModifierArguments.None),
                ("causal_mask", nameof(CausalMask), new ModifierArguments().Set("offset", 0)),
                ("window", nameof(SlidingWindow), new ModifierArguments().Set("window", 1024)),
                ("document", nameof(DocumentMask), new ModifierArguments().Set("documents", documents)),
                ("alibi", nameof(Alibi), new ModifierArguments().Set("slopes", slopes)),
                ("softcap", nameof(Softcap), new ModifierArguments().Set("cap", 30f)),
                ("prefix", nameof(PrefixLm), new ModifierArguments().Set("prefix", 1024)),
            ];
            // Each variant in its form fed by the Q quantize pass, then in each Hopper form of HopperForms where it runs.
            var runs = variants.Select(x => (x.Name, Kernel: Pick(x.Family, device.ComputeCapability), x.Arguments, x.Family))
                .Concat(HopperForms.SelectMany(form => variants
                    .Select(x => (Name: x.Name + form.Suffix, Kernel: PickForm(x.Family, form.Form, device.ComputeCapability), x.Arguments, x.Family))
                    .Where(x => x.Kernel is not null)));
            foreach (var (name, kernel, arguments, family) in runs)
            {
                if (kernel is null)
                {
                    AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(name)}: no kernel of {Markup.Escape(Kernel(family, "…"))} runs on {device.ArchName}[/]");
                    continue;
                }
                AttentionVariant variant;
                AttentionKernelArguments launch;
                try
                {
                    // The form's own kernel, built and run once: one that does not compile or launch on this card leaves
                    // the other rows and says why. Anything later (the K/V passes every row shares) stops the bench.
                    (variant, launch) = attention.Prepare(stream, kernel, View(q), View(k), View(v), View(o), arguments, null);
                    variant.Launch(launch);
                    stream.Synchronize();
                }
                catch (Exception e) when (e is NvrtcCompilationException or CudaException or NotSupportedException)
                {
                    AnsiConsole.MarkupLine($"[red]{Markup.Escape(name)}: {Markup.Escape(kernel.Name)} did not run here: {Markup.Escape(e.Message.Split('\n')[0])}[/]");
                    continue;
                }
                var (kernelMs, endToEnd, kvOnce) = Time(stream, attention, kernel, variant, launch, View(q), View(k), View(v), View(o), arguments);
                string F(double x) => x.ToString("F3", CultureInfo.InvariantCulture);
                rows.Add($"{name},{seq},{batch},{Heads},{HeadDim},{kernel.Name},{F(kernelMs)},{F(endToEnd)},{(kvOnce is { } once ? F(once) : "")}");
                table.AddRow(Markup.Escape(name), $"{seq}", Markup.Escape(kernel.Name), F(kernelMs), F(endToEnd), kvOnce is { } ms ? F(ms) : "-");
            }
        });
        AnsiConsole.Write(table);
        if (rows.Count == 1)
        {
            throw new InvalidOperationException("No variant ran on this device, so there is nothing to compare.");
        }
        File.WriteAllLines(csv.FullName, rows);
        AnsiConsole.MarkupLine($"wrote {Markup.Escape(csv.FullName)}");
    }

    /// <summary>The kernel alone, end to end from f16, and (int8 P·V) end to end over K and V quantized once, in ms.</summary>
    private static (double Kernel, double EndToEnd, double? KvOnce) Time(CudaStream stream, Int8Attention attention, AttentionKernelInfo kernel,
        AttentionVariant variant, AttentionKernelArguments launch, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v, TensorView<Half> o,
        ModifierArguments arguments)
    {
        var kernelMs = BenchCommand.Median(stream, () => variant.Launch(launch));
        var options = new AttentionOptions { NonFinite = NonFiniteInputs.Ignore };
        var endToEnd = BenchCommand.Median(stream, () => attention.Forward(stream, kernel, q, k, v, o, arguments, options));
        // K and V quantized once (a KV cache, a cross-attention memory): the kernel and Q's quantization.
        if (kernel.FloatPv)
        {
            return (kernelMs, endToEnd, null);
        }
        using var kv = attention.QuantizeKeysValues(stream, kernel, k, v, NonFiniteInputs.Ignore);
        return (kernelMs, endToEnd, BenchCommand.Median(stream, () => attention.Forward(stream, kernel, q, kv, o, arguments, options)));
    }

    /// <summary>The library's plain D = 128 kernels by form: "Int8AttentionD128{form}", each with its causal twin "….Causal".</summary>
    private const string PlainKernels = "Int8AttentionD128{0}";

    /// <summary>
    /// The family's D = 128 f16 kernel for this device: the Hopper wgmma form where it runs, else the mma.sync one (a plain
    /// family's are its Wgmma and Pretransposed kernels, a library family's its D128Wgmma and D128).
    /// </summary>
    private static AttentionKernelInfo? Pick(string family, int computeCapability) =>
        First(computeCapability, IsPlain(family) ? [Kernel(family, "Wgmma"), Kernel(family, "Pretransposed")] : [Kernel(family, "Wgmma"), Kernel(family, "")]);

    /// <summary>The family's kernel in a Hopper form, or null where none runs.</summary>
    private static AttentionKernelInfo? PickForm(string family, string form, int computeCapability) => First(computeCapability, [Kernel(family, form)]);

    private static bool IsPlain(string family) => family.StartsWith("Int8Attention", StringComparison.Ordinal);

    /// <summary>A family's kernel of a form: a plain family's name pattern filled in, a library family's nested "D128{form}".</summary>
    private static string Kernel(string family, string form) =>
        IsPlain(family) ? string.Format(CultureInfo.InvariantCulture, family, form) : $"{family}.D128{form}";

    /// <summary>The first of these library kernels (names below the library's namespace) that runs here: f16, D = 128, int8 P·V.</summary>
    private static AttentionKernelInfo? First(int computeCapability, string[] names)
    {
        var kernels = Int8Attention.Kernels.Where(k => k.Input == Element.F16 && k.HeadDim == HeadDim && !k.FloatPv && k.RunsOn(computeCapability)).ToArray();
        return names.Select(n => kernels.FirstOrDefault(k => k.Name == AttentionVariant.LibraryNamespace + n)).FirstOrDefault(k => k is not null);
    }

    /// <summary>
    /// The Hopper forms timed beside each variant's default, and what a row's variant name gains for each (bench/flex.py
    /// strips it to find the peer): quantizing Q per row itself, 64-row blocks two an SM (which quantize Q per row too),
    /// and a persistent grid.
    /// </summary>
    private static readonly (string Suffix, string Form)[] HopperForms = [("+qrow", "WgmmaFusedQ"), ("+m64", "WgmmaBlockM64"), ("+persist", "WgmmaPersistent")];
}

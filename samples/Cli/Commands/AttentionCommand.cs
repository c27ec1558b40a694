using System.CommandLine;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.IO;
using KernelDsl.Attention.Quantization;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary>
/// <c>kdsl attention</c>: INT8 attention on .npy files (f16, [B, H, S, D] or [B, S, H, D]), written to a .npy in the
/// same layout, with its error against a float64 reference. On a machine without a GPU it runs the CPU reference of
/// the exact int8 algorithm instead, and says so.
/// </summary>
internal static class AttentionCommand
{
    public static Command Create()
    {
        var q = new Option<FileInfo>("--q") { Description = "Queries, f16 .npy.", Required = true };
        var k = new Option<FileInfo>("--k") { Description = "Keys, f16 .npy.", Required = true };
        var v = new Option<FileInfo>("--v") { Description = "Values, f16 .npy.", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "Where to write O (f16 .npy, same layout as q).", Required = true };
        var layout = new Option<TensorLayout>("--layout") { Description = "BHSD ([B, H, S, D]) or BSHD ([B, S, H, D]).", DefaultValueFactory = _ => TensorLayout.BHSD };
        var causal = new Option<bool>("--causal") { Description = "Causal mask, bottom-right aligned." };
        var pv = new Option<PvPrecision>("--pv") { Description = "U8 (fast) or Float16 (accuracy).", DefaultValueFactory = _ => PvPrecision.U8 };
        var strategy = new Option<VStrategy>("--v-strategy") { Description = "TransPrmt, Movmatrix or Pretransposed.", DefaultValueFactory = _ => VStrategy.TransPrmt };
        var tile = new Option<string?>("--tile") { Description = "A declared tile configuration (see `kdsl list`); the mode's first by default." };
        var noReference = new Option<bool>("--no-reference") { Description = "Skip the float64 reference (it is O(S²) on the CPU)." };
        var variant = new Option<string?>("--variant")
        {
            Description = "Run this attention kernel (a name from `kdsl list`, or a unique suffix such as SlidingWindow.D128Wgmma) with its modifiers; " +
                "it fixes the masking, P·V mode, V strategy and tile, so --causal, --pv, --v-strategy and --tile may not be given with it.",
        };
        var arguments = new Option<string[]>("--arg")
        {
            Description = "A runtime argument of the variant's modifiers, name=value (repeatable): an int or float, or a 1-D int32/float32 .npy file as name=@file.npy.",
        };
        var command = new Command("attention", "Run INT8 attention on .npy files and report its error against float64.") { q, k, v, output, layout, causal, pv, strategy, tile, noReference, variant, arguments };
        command.SetAction(parse =>
        {
            var fixedByKernel = new (string Name, bool Given)[]
            {
                ("--causal", parse.GetValue(causal)),
                ("--pv", parse.GetResult(pv) is { Implicit: false }),
                ("--v-strategy", parse.GetResult(strategy) is { Implicit: false }),
                ("--tile", parse.GetValue(tile) is not null),
            }.Where(o => o.Given).Select(o => o.Name).ToArray();
            return Run(parse.GetValue(q)!, parse.GetValue(k)!, parse.GetValue(v)!, parse.GetValue(output)!, parse.GetValue(layout),
                new AttentionOptions { Causal = parse.GetValue(causal), Pv = parse.GetValue(pv), V = parse.GetValue(strategy), Tile = parse.GetValue(tile) }, !parse.GetValue(noReference),
                parse.GetValue(variant), parse.GetValue(arguments) ?? [], fixedByKernel);
        });
        return command;
    }

    /// <summary>The kernel --variant names, with its modifiers' arguments as parsed and bound to the C# methods.</summary>
    private sealed record Variant(AttentionKernelInfo Kernel, IReadOnlyDictionary<string, object> Values, AttentionModifiers Modifiers);

    private static int Run(FileInfo qFile, FileInfo kFile, FileInfo vFile, FileInfo outFile, TensorLayout layout, AttentionOptions options, bool reference,
        string? variantName, string[] argumentPairs, string[] fixedByKernel)
    {
        // Everything the command line can get wrong is checked here, before any work, as one message and exit code 2.
        AttentionKernelInfo? kernel = null;
        Dictionary<string, object>? values = null;
        try
        {
            if (variantName is not null)
            {
                kernel = KernelVariants.Resolve(variantName, Int8Attention.Kernels);
                if (fixedByKernel.Length > 0)
                {
                    throw new CliUsageException($"--variant fixes the masking, P·V mode, V strategy and tile ({Describe(kernel)}): drop {string.Join(", ", fixedByKernel)}.");
                }
                if (kernel.Input != Element.F16)
                {
                    throw new CliUsageException($"--variant {KernelVariants.ShortName(kernel.Name)} takes {kernel.Input} tensors; kdsl attention reads f16 .npy files: choose an f16 kernel (`kdsl list`).");
                }
                values = KernelVariants.ParseArguments(kernel, argumentPairs);
            }
            else if (argumentPairs.Length > 0)
            {
                throw new CliUsageException($"--arg {argumentPairs[0].Split('=')[0]}: --arg binds a modifier's parameter, so it needs --variant (a kernel with modifiers, see `kdsl list`).");
            }
        }
        catch (CliUsageException e)
        {
            return Refuse(e.Message);
        }

        NpyArray<Half> Read(FileInfo file, string name) => file.Exists ? NpyFile.ReadHalf(file.FullName) : throw new CliUsageException($"--{name}: no file '{file.FullName}'.");
        NpyArray<Half> q, k, v;
        try
        {
            (q, k, v) = (Read(qFile, "q"), Read(kFile, "k"), Read(vFile, "v"));
        }
        catch (Exception e) when (e is CliUsageException or InvalidDataException)
        {
            return Refuse(e.Message);
        }
        foreach (var (name, array) in new[] { ("q", q), ("k", k), ("v", v) })
        {
            if (array.Shape.Length != 4)
            {
                AnsiConsole.MarkupLine($"[red]--{name} must be 4-D ({layout}); it has shape ({string.Join(", ", array.Shape)}).[/]");
                return 2;
            }
        }
        int Heads(NpyArray<Half> x) => layout == TensorLayout.BHSD ? x.Shape[1] : x.Shape[2];
        int Tokens(NpyArray<Half> x) => layout == TensorLayout.BHSD ? x.Shape[2] : x.Shape[1];
        var shape = new AttentionShape(q.Shape[0], Heads(q), Heads(k), Tokens(q), Tokens(k), q.Shape[3], kernel?.Causal ?? options.Causal, layout: layout);
        shape.CheckLengths(q.Data.Length, k.Data.Length, v.Data.Length);
        if (options.Tile is { } tile && !Int8Attention.TilesFor(Element.F16, shape.HeadDim, options).Contains(tile))
        {
            var declared = string.Join("; ", Int8Attention.TilesFor(Element.F16, shape.HeadDim, options));
            AnsiConsole.MarkupLine(Markup.Escape($"--tile '{tile}' is not declared for D = {shape.HeadDim} with these options; declared: {declared}."));
            return 2;
        }
        Variant? variant = null;
        if (kernel is not null)
        {
            try
            {
                if (kernel.HeadDim != shape.HeadDim)
                {
                    throw new CliUsageException($"--variant {KernelVariants.ShortName(kernel.Name)} is for D = {kernel.HeadDim}; the tensors have D = {shape.HeadDim}.");
                }
                variant = new Variant(kernel, values!, KernelVariants.CpuModifiers(kernel, values!));
                KernelVariants.Probe(kernel, variant.Modifiers, shape);
            }
            catch (CliUsageException e)
            {
                return Refuse(e.Message);
            }
        }
        var modifiers = variant?.Modifiers ?? AttentionModifiers.None;

        Half[] o;
        string engine;
        if (CudaDevice.TryOpen(0, out var device, out var reason))
        {
            using (device)
            {
                if (variant is not null && !variant.Kernel.RunsOn(device.ComputeCapability))
                {
                    var family = variant.Kernel.Name[..variant.Kernel.Name.LastIndexOf('.')] + ".";
                    var others = Int8Attention.Kernels.Where(x => x.Name.StartsWith(family, StringComparison.Ordinal) && x.Input == Element.F16 && x.RunsOn(device.ComputeCapability));
                    return Refuse($"--variant {KernelVariants.ShortName(variant.Kernel.Name)} does not run on {device.Name} ({device.ArchName}); " +
                        $"of its family these do: {string.Join(", ", others.Select(x => KernelVariants.ShortName(x.Name)).DefaultIfEmpty("none"))}.");
                }
                engine = $"{device.Name} ({device.ArchName})" + (variant is null ? "" : $", kernel {KernelVariants.ShortName(variant.Kernel.Name)}");
                o = AnsiConsole.Status().Start($"INT8 attention on {Markup.Escape(device.Name)}...", _ => OnGpu(device, shape, options, variant, q.Data, k.Data, v.Data));
            }
        }
        else
        {
            AnsiConsole.MarkupLine("[yellow]No CUDA GPU found[/]; running the CPU reference of the same int8 algorithm instead" +
                (variant is null ? "." : ", with the kernel's C# modifier methods."));
            AnsiConsole.MarkupLine($"[grey]{Markup.Escape(reason.Split('\n')[0])}[/]");
            engine = "CPU reference (exact int8 algorithm)" + (variant is null ? "" : $" of {KernelVariants.ShortName(variant.Kernel.Name)}");
            var pv = variant is null ? options.Pv == PvPrecision.Float16 : variant.Kernel.FloatPv;
            var cpuOptions = new Int8AttentionOptions
            {
                BlockM = variant?.Kernel.QScaleRows ?? AttentionVariant.QScaleRows,
                // The kernel's online-softmax step where its K scales divide it (the reference's rounding follows its blocks).
                BlockN = variant is { Kernel: var x } && x.BlockN % x.KScaleKeys == 0 && x.BlockN < 512 ? x.BlockN : AttentionVariant.KScaleKeys,
                KScaleKeys = variant?.Kernel.KScaleKeys ?? 0,
                Pv = pv ? PvMode.F16 : PvMode.U8,
                KMeanSlices = shape.HeadDim == 64 ? QuantizeKSmoothBlock64D64.MeanSlices : QuantizeKSmoothBlock64D128.MeanSlices,
            };
            o = AnsiConsole.Status().Start("INT8 attention on the CPU...", _ =>
                Int8AttentionReference.Forward(shape, q.Data, k.Data, v.Data, cpuOptions, modifiers).Output.Select(BitConverter.UInt16BitsToHalf).ToArray());
        }
        NpyFile.Write(outFile.FullName, o, q.Shape);
        AnsiConsole.MarkupLine($"Wrote {Markup.Escape(outFile.FullName)} ({string.Join("×", q.Shape)}, {layout}) from {Markup.Escape(engine)}.");

        if (reference)
        {
            var expected = AnsiConsole.Status().Start("float64 reference...", _ => Float64Attention.Forward(shape, q.Data, k.Data, v.Data, modifiers: modifiers));
            var error = ErrorMetrics.Compare(o.Select(x => (double)x).ToArray(), expected.Output);
            var with = variant is null ? "" : $" with the same modifiers ({KernelVariants.DescribeModifiers(variant.Kernel)})";
            AnsiConsole.MarkupLine(Markup.Escape($"Against float64 attention{with}: relative L2 {error.RelativeL2:E3}, cosine {error.Cosine:F6}, max |Δ| {error.MaxAbs:E3}."));
        }
        return 0;
    }

    private static string Describe(AttentionKernelInfo kernel) =>
        $"{KernelVariants.ShortName(kernel.Name)}: {(kernel.Causal ? "causal, " : "")}{(kernel.FloatPv ? "16-bit" : "u8")} P·V, {kernel.VStrategy}, {kernel.Tile}";

    private static int Refuse(string message)
    {
        AnsiConsole.MarkupLine($"[red]{Markup.Escape(message)}[/]");
        return 2;
    }

    private static Half[] OnGpu(CudaDevice device, AttentionShape shape, AttentionOptions options, Variant? variant, Half[] q, Half[] k, Half[] v)
    {
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        using var dq = device.Upload<Half>(q);
        using var dk = device.Upload<Half>(k);
        using var dv = device.Upload<Half>(v);
        using var dout = device.Allocate<Half>(q.Length);
        TensorView<Half> View(DeviceBuffer<Half> buffer, int heads, int tokens, TensorStrides s) =>
            new(buffer, [shape.Batch, heads, tokens, shape.HeadDim], [s.Batch, s.Head, s.Token, 1]);
        var (vq, vk, vv, vo) = (View(dq, shape.HeadsQ, shape.TokensQ, shape.QStrides), View(dk, shape.HeadsKv, shape.TokensKv, shape.KvStrides),
            View(dv, shape.HeadsKv, shape.TokensKv, shape.KvStrides), View(dout, shape.HeadsQ, shape.TokensQ, shape.QStrides));
        if (variant is null)
        {
            attention.Forward(stream, vq, vk, vv, vo, options);
        }
        else
        {
            var arrays = new List<IDisposable>();
            try
            {
                var arguments = new ModifierArguments();
                foreach (var (name, value) in variant.Values)
                {
                    switch (value)
                    {
                        case int i: arguments.Set(name, i); break;
                        case float f: arguments.Set(name, f); break;
                        case int[] ints: { var buffer = device.Upload<int>(ints); arrays.Add(buffer); arguments.Set(name, buffer); break; }
                        case float[] floats: { var buffer = device.Upload<float>(floats); arrays.Add(buffer); arguments.Set(name, buffer); break; }
                    }
                }
                attention.Forward(stream, variant.Kernel, vq, vk, vv, vo, arguments);
                stream.Synchronize();  // before the argument arrays are freed
            }
            finally
            {
                arrays.ForEach(a => a.Dispose());
            }
        }
        stream.Synchronize();
        return dout.ToArray();
    }
}

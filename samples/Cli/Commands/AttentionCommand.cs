using System.CommandLine;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.IO;
using KernelDsl.Attention.Quantization;
using KernelDsl.Attention.Reference;
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
        var command = new Command("attention", "Run INT8 attention on .npy files and report its error against float64.") { q, k, v, output, layout, causal, pv, strategy, tile, noReference };
        command.SetAction(parse => Run(parse.GetValue(q)!, parse.GetValue(k)!, parse.GetValue(v)!, parse.GetValue(output)!, parse.GetValue(layout),
            new AttentionOptions { Causal = parse.GetValue(causal), Pv = parse.GetValue(pv), V = parse.GetValue(strategy), Tile = parse.GetValue(tile) }, !parse.GetValue(noReference)));
        return command;
    }

    private static int Run(FileInfo qFile, FileInfo kFile, FileInfo vFile, FileInfo outFile, TensorLayout layout, AttentionOptions options, bool reference)
    {
        var (q, k, v) = (NpyFile.ReadHalf(qFile.FullName), NpyFile.ReadHalf(kFile.FullName), NpyFile.ReadHalf(vFile.FullName));
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
        var shape = new AttentionShape(q.Shape[0], Heads(q), Heads(k), Tokens(q), Tokens(k), q.Shape[3], options.Causal, layout: layout);
        shape.CheckLengths(q.Data.Length, k.Data.Length, v.Data.Length);
        if (options.Tile is { } tile && !Int8Attention.TilesFor(Element.F16, shape.HeadDim, options).Contains(tile))
        {
            var declared = string.Join("; ", Int8Attention.TilesFor(Element.F16, shape.HeadDim, options));
            AnsiConsole.MarkupLine(Markup.Escape($"--tile '{tile}' is not declared for D = {shape.HeadDim} with these options; declared: {declared}."));
            return 2;
        }

        Half[] o;
        string engine;
        if (CudaDevice.TryOpen(0, out var device, out var reason))
        {
            using (device)
            {
                engine = $"{device.Name} ({device.ArchName})";
                o = AnsiConsole.Status().Start($"INT8 attention on {Markup.Escape(device.Name)}...", _ => OnGpu(device, shape, options, q.Data, k.Data, v.Data));
            }
        }
        else
        {
            AnsiConsole.MarkupLine("[yellow]No CUDA GPU found[/]; running the CPU reference of the same int8 algorithm instead.");
            AnsiConsole.MarkupLine($"[grey]{Markup.Escape(reason.Split('\n')[0])}[/]");
            engine = "CPU reference (exact int8 algorithm)";
            var cpuOptions = new Int8AttentionOptions
            {
                BlockM = AttentionVariant.QScaleRows,
                BlockN = AttentionVariant.KScaleKeys,
                Pv = options.Pv == PvPrecision.Float16 ? PvMode.F16 : PvMode.U8,
                KMeanSlices = shape.HeadDim == 64 ? QuantizeKSmoothBlock64D64.MeanSlices : QuantizeKSmoothBlock64D128.MeanSlices,
            };
            o = AnsiConsole.Status().Start("INT8 attention on the CPU...", _ =>
                Int8AttentionReference.Forward(shape, q.Data, k.Data, v.Data, cpuOptions).Output.Select(BitConverter.UInt16BitsToHalf).ToArray());
        }
        NpyFile.Write(outFile.FullName, o, q.Shape);
        AnsiConsole.MarkupLine($"Wrote {Markup.Escape(outFile.FullName)} ({string.Join("×", q.Shape)}, {layout}) from {Markup.Escape(engine)}.");

        if (reference)
        {
            var expected = AnsiConsole.Status().Start("float64 reference...", _ => Float64Attention.Forward(shape, q.Data, k.Data, v.Data));
            var error = ErrorMetrics.Compare(o.Select(x => (double)x).ToArray(), expected.Output);
            AnsiConsole.MarkupLine($"Against float64 attention: relative L2 {error.RelativeL2:E3}, cosine {error.Cosine:F6}, max |Δ| {error.MaxAbs:E3}.");
        }
        return 0;
    }

    private static Half[] OnGpu(CudaDevice device, AttentionShape shape, AttentionOptions options, Half[] q, Half[] k, Half[] v)
    {
        using var stream = device.CreateStream();
        using var attention = new Int8Attention(device);
        using var dq = device.Upload<Half>(q);
        using var dk = device.Upload<Half>(k);
        using var dv = device.Upload<Half>(v);
        using var dout = device.Allocate<Half>(q.Length);
        TensorView<Half> View(DeviceBuffer<Half> buffer, int heads, int tokens, TensorStrides s) =>
            new(buffer, [shape.Batch, heads, tokens, shape.HeadDim], [s.Batch, s.Head, s.Token, 1]);
        attention.Forward(stream, View(dq, shape.HeadsQ, shape.TokensQ, shape.QStrides), View(dk, shape.HeadsKv, shape.TokensKv, shape.KvStrides),
            View(dv, shape.HeadsKv, shape.TokensKv, shape.KvStrides), View(dout, shape.HeadsQ, shape.TokensQ, shape.QStrides), options);
        stream.Synchronize();
        return dout.ToArray();
    }
}

using System.CommandLine;
using KernelDsl.Attention.FlashAttention;
using KernelDsl.Attention.IO;
using KernelDsl.Attention.Reference;
using KernelDsl.Launching;
using Spectre.Console;

namespace KernelDsl.Cli.Commands;

/// <summary>
/// <c>kdsl attention</c>: INT8 attention on .npy files (f16, [B, H, S, D] or [B, S, H, D]), written to a .npy in the
/// same layout, with its error against a float64 reference. Every input is checked before any work. On a machine
/// without a GPU it runs the CPU reference of the declared kernel the GPU path would select (and names it), so it
/// serves exactly the configurations the library serves, and refuses NaN and ±Inf inputs as the library does.
/// </summary>
internal static class AttentionCommand
{
    public static Command Create()
    {
        var q = new Option<FileInfo>("--q") { Description = "Queries, f16 .npy.", Required = true };
        var k = new Option<FileInfo>("--k") { Description = "Keys, f16 .npy.", Required = true };
        var v = new Option<FileInfo>("--v") { Description = "Values, f16 .npy.", Required = true };
        var output = new Option<FileInfo>("--out") { Description = "Where to write O (f16 .npy, same layout as q); its directory must exist.", Required = true };
        var layout = new Option<TensorLayout>("--layout") { Description = "BHSD ([B, H, S, D]) or BSHD ([B, S, H, D]).", DefaultValueFactory = _ => TensorLayout.BHSD };
        var causal = new Option<bool>("--causal") { Description = "Causal mask, bottom-right aligned." };
        var pv = new Option<PvPrecision>("--pv") { Description = "U8 (fast), E4M3 (fp8 P·V, Hopper: P keeps a relative precision) or Float16 (accuracy).", DefaultValueFactory = _ => PvPrecision.U8 };
        var strategy = new Option<VStrategy?>("--v-strategy")
        {
            Description = $"How V reaches the u8 P·V MMA (docs/V_TRANSPOSE.md): {string.Join(", ", Enum.GetNames<VStrategy>())}; only the declared ones run (`kdsl list`). " +
                "By default the default kernel's: on Hopper at D = 64 and 128 the wgmma form's (Pretransposed), elsewhere TransPrmt.",
        };
        var tile = new Option<string?>("--tile")
        {
            Description = "A declared tile, by its short name (e.g. 128x64-w8-s2, wgmma-s3) or its description (see `kdsl list`); by default the mode's first " +
                "declared for this GPU's own architecture (wgmma on Hopper), else its first.",
        };
        var autotune = new Option<bool>("--autotune") { Description = "u8 P·V: time every declared V strategy and tile for this GPU and shape once (remembered on disk) and run the fastest." };
        var noReference = new Option<bool>("--no-reference") { Description = "Skip the float64 reference (it is O(S²) on the CPU)." };
        var variant = new Option<string?>("--variant")
        {
            Description = "Run this attention kernel (a name from `kdsl list`, or a unique suffix such as SlidingWindow.D128Wgmma) with its modifiers, " +
                "or name a family (SlidingWindow) to run the fastest of its u8 forms on this GPU (timed once per shape); " +
                "it fixes the masking, P·V mode, V strategy and tile, so --causal, --pv, --v-strategy, --tile and --autotune may not be given with it.",
        };
        var arguments = new Option<string[]>("--arg")
        {
            Description = "A runtime argument of the variant's modifiers, name=value (repeatable): an int or float, or a 1-D int32/float32 .npy file as name=@file.npy.",
        };
        var command = new Command("attention", "Run INT8 attention on .npy files and report its error against float64.")
        {
            q, k, v, output, layout, causal, pv, strategy, tile, autotune, noReference, variant, arguments,
        };
        command.SetAction(parse => Run(new Request(parse.GetValue(q)!, parse.GetValue(k)!, parse.GetValue(v)!, parse.GetValue(output)!, parse.GetValue(layout),
            new AttentionOptions { Causal = parse.GetValue(causal), Pv = parse.GetValue(pv), V = parse.GetValue(strategy), Tile = parse.GetValue(tile), Autotune = parse.GetValue(autotune) },
            !parse.GetValue(noReference), parse.GetValue(variant), parse.GetValue(arguments) ?? [],
            Given: new[]
            {
                ("--causal", parse.GetValue(causal)),
                ("--pv", parse.GetResult(pv) is { Implicit: false }),
                ("--v-strategy", parse.GetResult(strategy) is { Implicit: false }),
                ("--tile", parse.GetValue(tile) is not null),
                ("--autotune", parse.GetValue(autotune)),
            }.Where(o => o.Item2).Select(o => o.Item1).ToArray())));
        return command;
    }

    /// <summary>The command line, parsed. <paramref name="Given"/>: the mode options given explicitly.</summary>
    private sealed record Request(FileInfo Q, FileInfo K, FileInfo V, FileInfo Out, TensorLayout Layout, AttentionOptions Options, bool Reference,
        string? VariantName, string[] ArgumentPairs, string[] Given);

    /// <summary>The kernel --variant names, with its modifiers' arguments as parsed and bound to the C# methods.</summary>
    /// <param name="Forms">For a family name, its u8 forms, of which the GPU runs the fastest (<see cref="Int8Attention.Fastest"/>); Kernel is then the first f16 one.</param>
    private sealed record Variant(AttentionKernelInfo Kernel, IReadOnlyDictionary<string, object> Values, AttentionModifiers Modifiers, IReadOnlyList<AttentionKernelInfo>? Forms);

    /// <exception cref="CliUsageException">Any argument or input file is wrong; raised before any work.</exception>
    private static int Run(Request request)
    {
        var options = request.Options;
        var forms = request.VariantName is { } familyName ? KernelVariants.ResolveFamily(familyName, Int8Attention.Kernels) : null;
        var kernel = forms is not null ? forms.FirstOrDefault(f => f.Input == Element.F16) ?? forms[0]
            : request.VariantName is { } name ? KernelVariants.Resolve(name, Int8Attention.Kernels) : null;
        CheckModeOptions(kernel, options, request);
        var values = kernel is null ? null : KernelVariants.ParseArguments(kernel, request.ArgumentPairs,
            forms is null ? null : "family " + KernelVariants.ShortName(KernelVariants.FamilyOf(kernel)));
        CheckOutIsNoInput(request);
        CliApp.CheckOutputFile(request.Out, "--out");
        var (q, k, v) = (Read(request.Q, "--q"), Read(request.K, "--k"), Read(request.V, "--v"));
        var shape = ShapeOf(q, k, v, request.Layout, kernel?.Causal ?? options.Causal);
        if (kernel is null)
        {
            // A mode nothing declares is refused first (it has no tiles either), then a tile the mode does not declare.
            Select(shape.HeadDim, options with { Tile = null }, null);
            if (options.Tile is { } tileName)
            {
                options = options with { Tile = ResolveTile(tileName, shape.HeadDim, options) };
            }
        }

        CudaDevice.TryOpen(0, out var device, out var noDevice);
        using var _ = device;
        Variant? variant = null;
        if (kernel is not null)
        {
            if (forms is not null)
            {
                // A family: its forms for these tensors that run here compete on the GPU (the first stands for them on the
                // CPU); without a GPU, all of them are what a GPU would choose from.
                var family = KernelVariants.ShortName(KernelVariants.FamilyOf(kernel));
                var forTensors = forms.Where(f => f.Input == Element.F16 && f.HeadDim == shape.HeadDim).ToArray();
                if (forTensors.Length == 0)
                {
                    throw new CliUsageException($"--variant {family} has no f16 form for D = {shape.HeadDim}; its forms: {string.Join(", ", forms.Select(f => $"{KernelVariants.ShortName(f.Name)} (D = {f.HeadDim}, {f.Input})"))}.");
                }
                forms = device is null ? forTensors : forTensors.Where(f => f.RunsOn(device.ComputeCapability)).ToArray();
                if (forms.Count == 0)
                {
                    throw new CliUsageException($"No f16 D = {shape.HeadDim} form of --variant {family} runs on {device!.Name} ({device.ArchName}): " +
                        $"{string.Join(", ", forTensors.Select(f => KernelVariants.ShortName(f.Name)))} are built for other GPUs.");
                }
                kernel = forms[0];
            }
            else if (kernel.HeadDim != shape.HeadDim)
            {
                throw new CliUsageException($"--variant {KernelVariants.ShortName(kernel.Name)} is for D = {kernel.HeadDim}; the tensors have D = {shape.HeadDim}: choose a D = {shape.HeadDim} kernel (`kdsl list`).");
            }
            else if (device is not null && !kernel.RunsOn(device.ComputeCapability))
            {
                var others = Int8Attention.NestedIn(KernelVariants.FamilyOf(kernel)).Where(x => x.Input == Element.F16 && x.HeadDim == shape.HeadDim && x.RunsOn(device.ComputeCapability));
                throw new CliUsageException($"--variant {KernelVariants.ShortName(kernel.Name)} does not run on {device.Name} ({device.ArchName}); " +
                    $"of its family these do: {string.Join(", ", others.Select(x => KernelVariants.ShortName(x.Name)).DefaultIfEmpty("none"))}.");
            }
            variant = new Variant(kernel, values!, KernelVariants.CpuModifiers(kernel, values!), forms);
            KernelVariants.Probe(kernel, variant.Modifiers, shape);
        }
        // The kernel the library selects for this mode (on this GPU, or the first declared one for the CPU reference):
        // a mode nothing declares is refused here, on either path.
        var selected = kernel ?? Select(shape.HeadDim, options, device?.ComputeCapability);
        var modifiers = variant?.Modifiers ?? AttentionModifiers.None;

        Half[] o;
        string engine;
        if (device is not null)
        {
            using var attention = new Int8Attention(device);
            engine = $"{device.Name} ({device.ArchName})";
            try
            {
                o = CliProgress.Status($"INT8 attention on {device.Name}...", () => OnGpu(device, attention, shape, options, variant, q.Data, k.Data, v.Data));
            }
            catch (NonFiniteInputException e)
            {
                throw Refusal(e);
            }
            engine += attention.LastFormTuning is { } fastest
                ? (fastest.Result.Milliseconds.Count == 1
                    ? $", the only form of the family that runs here: {KernelVariants.ShortName(fastest.Kernel.Name)}"
                    : $", the fastest of {fastest.Result.Milliseconds.Count} forms ({(fastest.Result.Source == TuningSource.Measured ? "timed now" : "decision read from disk")}): {KernelVariants.ShortName(fastest.Kernel.Name)}")
                : attention.LastTuning is { } tuning
                ? $", autotuned ({(tuning.Result.Source == TuningSource.Measured ? "timed now" : "decision read from disk")}): {tuning.Strategy} [{KernelVariants.TileName(tuning.Tile)}]"
                : $", kernel {Describe(selected)}";
        }
        else
        {
            // Int8 codes cannot carry NaN or ±Inf: the library counts them and throws by default, and so does this path.
            var (nq, nk, nv) = (NonFinite(q.Data), NonFinite(k.Data), NonFinite(v.Data));
            if (nq + nk + nv > 0)
            {
                throw Refusal(new NonFiniteInputException(nq, nk, nv));
            }
            AnsiConsole.MarkupLine($"[yellow]No CUDA GPU found[/]: {Markup.Escape(noDevice.Split('\n')[0].Trim())}");
            if (options.Autotune)
            {
                // Short enough for one line at 80 columns (Spectre wraps there when redirected); the next line names the kernel.
                AnsiConsole.MarkupLine("[yellow]--autotune skipped: it times kernels on a GPU; this runs the default kernel.[/]");
            }
            engine = $"the CPU reference of {Describe(selected)}: {selected.PElement switch { Element.U8 => "the exact int8 algorithm", Element.E4M3 => "int8 Q·Kᵀ with fp8 P·V", _ => "int8 Q·Kᵀ with 16-bit P·V" }}" +
                (variant is null ? "" : ", with the kernel's C# modifier methods") +
                (variant?.Forms is { Count: > 1 } familyForms ? $" (for the family's {familyForms.Count} f16 u8 forms of this head dim, of which a GPU runs the fastest it can)" : "");
            var reference = Int8Attention.ReferenceOptions(selected);
            o = CliProgress.Status("INT8 attention on the CPU...", () =>
                Int8AttentionReference.Forward(shape, q.Data, k.Data, v.Data, reference, modifiers).Output.Select(BitConverter.UInt16BitsToHalf).ToArray());
        }
        NpyFile.Write(request.Out.FullName, o, q.Shape);
        AnsiConsole.MarkupLine(Markup.Escape($"Wrote {request.Out.FullName} ({string.Join("×", q.Shape)}, {request.Layout}) from {engine}."));

        if (request.Reference)
        {
            var expected = CliProgress.Status("float64 reference...", () => Float64Attention.Forward(shape, q.Data, k.Data, v.Data, modifiers: modifiers));
            var actual = o.Select(x => (double)x).ToArray();
            var with = variant is null ? "" : $" with the same modifiers ({KernelVariants.DescribeModifiers(variant.Kernel)})";
            // A row that sees no key has O = 0 and LSE = −∞. When no row sees one, both outputs are zero and the metrics
            // would read as a perfect score (relative L2 0, cosine 1) of nothing: say what happened instead.
            var blind = expected.Lse.Count(double.IsNegativeInfinity);
            if (blind == expected.Lse.Length)
            {
                var nonZero = actual.Count(x => x != 0);
                var what = $"The mask{(variant?.Kernel.MaskModifier is { } mask ? " " + KernelVariants.ShortName(mask) : "")} hides every key of every row: O = 0, LSE = −∞";
                if (nonZero > 0)
                {
                    return CliApp.Error(CliApp.Failure, $"{what}, but {nonZero} of {actual.Length} output elements are not 0 (max |O| {actual.Max(Math.Abs):E3}).");
                }
                AnsiConsole.MarkupLine(Markup.Escape($"{what}; the output is all zeros, as float64's, so there is no error to measure."));
                return 0;
            }
            var error = ErrorMetrics.Compare(actual, expected.Output);
            AnsiConsole.MarkupLine(Markup.Escape($"Against float64 attention{with}: relative L2 {error.RelativeL2:E3}, cosine {error.Cosine:F6}, max |Δ| {error.MaxAbs:E3}." +
                (blind > 0 ? $" {blind} of {expected.Lse.Length} rows see no key (O = 0 there)." : "")));
        }
        return 0;
    }

    /// <summary>--variant fixes the mode; --arg needs a variant; --v-strategy and --autotune apply to u8 P·V only.</summary>
    private static void CheckModeOptions(AttentionKernelInfo? kernel, AttentionOptions options, Request request)
    {
        if (kernel is not null)
        {
            if (request.Given.Length > 0)
            {
                throw new CliUsageException($"--variant fixes the masking, P·V mode, V strategy and tile ({Describe(kernel)}): drop {string.Join(", ", request.Given)}.");
            }
            if (kernel.Input != Element.F16)
            {
                throw new CliUsageException($"--variant {KernelVariants.ShortName(kernel.Name)} takes {kernel.Input} tensors; kdsl attention reads f16 .npy files: choose an f16 kernel (`kdsl list`).");
            }
            return;
        }
        if (request.ArgumentPairs.Length > 0)
        {
            throw new CliUsageException($"--arg {request.ArgumentPairs[0].Split('=')[0]}: --arg binds a modifier's parameter, so it needs --variant (a kernel with modifiers, see `kdsl list`).");
        }
        if (options.Pv != PvPrecision.U8 && request.Given.Contains("--v-strategy"))
        {
            throw new CliUsageException($"--v-strategy chooses how V reaches the u8 P·V MMA; --pv {options.Pv} has no such choice: drop --v-strategy, or --pv.");
        }
        if (options.Autotune)
        {
            var fixedByTuning = request.Given.Where(g => g is "--v-strategy" or "--tile").ToArray();
            if (options.Pv != PvPrecision.U8)
            {
                throw new CliUsageException($"--autotune chooses among the u8 P·V kernels; --pv {options.Pv} has one kernel per tile: drop --autotune, or --pv.");
            }
            if (fixedByTuning.Length > 0)
            {
                throw new CliUsageException($"--autotune chooses the V strategy and tile itself: drop {string.Join(" and ", fixedByTuning)}, or --autotune.");
            }
        }
    }

    /// <summary>--out must not name an input: O written there would replace the tensor it came from.</summary>
    /// <exception cref="CliUsageException">--out resolves (full path, a link followed) to the file of --q, --k or --v.</exception>
    private static void CheckOutIsNoInput(Request request)
    {
        var comparison = OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase;
        var output = Resolve(request.Out);
        foreach (var (option, file) in new[] { ("--q", request.Q), ("--k", request.K), ("--v", request.V) })
        {
            if (string.Equals(Resolve(file), output, comparison))
            {
                throw new CliUsageException($"--out '{request.Out.FullName}' is the file {option} reads{(file.FullName == request.Out.FullName ? "" : $" ('{file.FullName}')")}: " +
                    "writing O there would overwrite an input; give another --out.");
            }
        }

        static string Resolve(FileInfo file)
        {
            try
            {
                return file.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? file.FullName;
            }
            catch (IOException)
            {
                return file.FullName;
            }
        }
    }

    /// <summary>An f16 .npy tensor, or a usage error naming the option, what is wrong and the fix.</summary>
    private static NpyArray<Half> Read(FileInfo file, string option)
    {
        CliApp.CheckInputFile(file, option, "an f16 .npy file");
        try
        {
            return NpyFile.ReadHalf(file.FullName);
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"{option}: {e.Message}");
        }
    }

    /// <summary>
    /// The problem's shape, checking each tensor's rank and every dimension's agreement by name (B, H, S, D in the
    /// layout's order): q, k and v share B and D, v has k's shape, and k's heads divide q's (GQA).
    /// </summary>
    private static AttentionShape ShapeOf(NpyArray<Half> q, NpyArray<Half> k, NpyArray<Half> v, TensorLayout layout, bool causal)
    {
        string[] names = layout == TensorLayout.BHSD ? ["B", "H", "S", "D"] : ["B", "S", "H", "D"];
        var form = $"[{string.Join(", ", names)}] ({layout}{(layout == TensorLayout.BHSD ? "; --layout BSHD for [B, S, H, D]" : "")})";
        var tensors = new[] { ("--q", q), ("--k", k), ("--v", v) };
        foreach (var (option, array) in tensors)
        {
            if (array.Shape.Length != 4)
            {
                throw new CliUsageException($"{option} must be 4-D {form}; it has shape ({string.Join(", ", array.Shape)}).");
            }
            if (Array.IndexOf(array.Shape, 0) is var zero and >= 0)
            {
                throw new CliUsageException($"{option} has {names[zero]} = 0; every dimension must be positive.");
            }
        }
        int Dim(NpyArray<Half> array, string name) => array.Shape[Array.IndexOf(names, name)];
        void Same(string option, NpyArray<Half> array, string against, NpyArray<Half> other, string name, string why)
        {
            if (Dim(array, name) != Dim(other, name))
            {
                throw new CliUsageException($"{option} has {name} = {Dim(array, name)} but {against} has {name} = {Dim(other, name)}: {why}.");
            }
        }
        foreach (var (option, array) in tensors.Skip(1))
        {
            Same(option, array, "--q", q, "B", "q, k and v need the same batch B");
            Same(option, array, "--q", q, "D", "q, k and v need the same head dim D");
        }
        Same("--v", v, "--k", k, "H", "v needs k's heads H");
        Same("--v", v, "--k", k, "S", "v needs one value per key: k's S");
        if (Dim(q, "H") % Dim(k, "H") != 0)
        {
            throw new CliUsageException($"--k has H = {Dim(k, "H")} heads, which does not divide --q's H = {Dim(q, "H")}: each k/v head serves a whole group of query heads (GQA).");
        }
        return new AttentionShape(Dim(q, "B"), Dim(q, "H"), Dim(k, "H"), Dim(q, "S"), Dim(k, "S"), Dim(q, "D"), causal, layout: layout);
    }

    /// <summary>The tile's description from its short name or description, among those declared for the mode.</summary>
    private static string ResolveTile(string tile, int headDim, AttentionOptions options)
    {
        var declared = Int8Attention.TilesFor(Element.F16, headDim, options with { Tile = null });
        return declared.FirstOrDefault(t => t == tile || KernelVariants.TileName(t) == tile)
            ?? throw new CliUsageException($"--tile '{tile}' is not declared for {Mode(headDim, options)}; " +
                (declared.Count == 0 ? "no tile is." : $"declared: {string.Join(", ", declared.Select(KernelVariants.TileName))}."));
    }

    /// <summary>
    /// The kernel <see cref="Int8Attention"/> selects for the mode (with a compute capability: one that device runs), or
    /// a usage error naming what is declared: the head dims, or this head dim's V strategies.
    /// </summary>
    private static AttentionKernelInfo Select(int headDim, AttentionOptions options, int? computeCapability)
    {
        try
        {
            return Int8Attention.Select(Element.F16, headDim, options with { Autotune = false }, computeCapability).Kernel;
        }
        catch (ArgumentException)
        {
            if (!Int8Attention.HeadDims.Contains(headDim))
            {
                throw new CliUsageException($"No attention kernel is declared for D = {headDim} (the tensors' last dimension); declared head dims: {string.Join(", ", Int8Attention.HeadDims)}.");
            }
            var strategies = Enum.GetValues<VStrategy>().Where(s => Int8Attention.TilesFor(Element.F16, headDim, options with { V = s, Tile = null }).Count > 0).ToList();
            if (options.Pv == PvPrecision.U8 && options.V is { } given && !strategies.Contains(given))
            {
                throw new CliUsageException($"--v-strategy {options.V}: no kernel is declared for {Mode(headDim, options)}; " +
                    $"declared strategies for it: {(strategies.Count == 0 ? "none" : string.Join(", ", strategies))}.");
            }
            if (computeCapability is { } cc && Int8Attention.TilesFor(Element.F16, headDim, options with { Tile = null }).Count > 0)
            {
                var runs = Int8Attention.TilesFor(Element.F16, headDim, options with { Tile = null }, cc);
                throw new CliUsageException($"No kernel declared for {Mode(headDim, options)}{(options.Tile is { } t ? $", tile {KernelVariants.TileName(t)}," : "")} runs on sm_{cc}" +
                    (runs.Count > 0 ? $"; these tiles do: {string.Join(", ", runs.Select(KernelVariants.TileName))}." : ": try another mode (`kdsl list`)."));
            }
            throw new CliUsageException($"No kernel is declared for {Mode(headDim, options)} (`kdsl list` shows the declared modes).");
        }
    }

    private static string Mode(int headDim, AttentionOptions options) =>
        $"f16 D = {headDim}, {(options.Causal ? "causal" : "non-causal")}, {options.Pv switch { PvPrecision.U8 => $"u8 P·V with {(options.V is { } given ? given.ToString() : "the default V strategy")}", PvPrecision.E4M3 => "fp8 P·V", _ => "16-bit P·V" }}";

    private static long NonFinite(Half[] data) => data.LongCount(x => !Half.IsFinite(x));

    /// <summary>The library's refusal of NaN/±Inf inputs as a usage error naming the first tensor that holds any.</summary>
    private static CliUsageException Refusal(NonFiniteInputException e) => new(
        $"--{e.ParamName} holds NaN or ±Inf (elements: q {e.QCount}, k {e.KCount}, v {e.VCount}); int8 quantization cannot carry them, " +
        "so Int8Attention refuses them by default: replace them first (e.g. numpy.nan_to_num).");

    private static string Describe(AttentionKernelInfo kernel) =>
        $"{KernelVariants.ShortName(kernel.Name)} ({(kernel.Causal ? "causal, " : "")}{kernel.PElement switch { Element.U8 => $"u8 P·V, {kernel.VStrategy}", Element.E4M3 => "fp8 P·V", _ => "16-bit P·V" }}, tile {kernel.TileName})";

    private static Half[] OnGpu(CudaDevice device, Int8Attention attention, AttentionShape shape, AttentionOptions options, Variant? variant, Half[] q, Half[] k, Half[] v)
    {
        using var stream = device.CreateStream();
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
                AttentionKernelInfo kernel;
                try
                {
                    kernel = variant.Forms is { } forms ? attention.Fastest(stream, forms, vq, vk, vv, vo, arguments) : variant.Kernel;
                }
                catch (ArgumentException e) when (e is not NonFiniteInputException)
                {
                    // The forms' own refusal (they differ, or none takes these tensors): a usage error, said plainly.
                    throw new CliUsageException($"--variant: {KernelVariants.WithoutParameter(e)}");
                }
                attention.Forward(stream, kernel, vq, vk, vv, vo, arguments);
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

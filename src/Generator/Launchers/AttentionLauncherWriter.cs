using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>
/// The attention kernel's launcher: quantized Q/K (and V, unless P·V runs in f16) with their scales in, O and LSE out.
/// The host API (quantize → pick variant → launch) builds on it; it checks every argument itself.
/// </summary>
public static class AttentionLauncherWriter
{
    private const string Guard = ModuleWriter.Launching + ".LaunchGuard";

    /// <summary>
    /// The members this writer generates and the locals of Launch and LaunchWith: names a modifier parameter would clash
    /// with or shadow (KDSL0650). LauncherNameTests holds the list to what the writer writes.
    /// </summary>
    public static readonly string[] ReservedNames =
    [
        "arguments", "qMap", "kMap", "vMap", "tiles", "Module", "KernelName", "CudaSource", "ThreadsPerBlock", "SharedMemoryBytes", "MinimumSm",
        "HeadDim", "BlockM", "QScaleRows", "BlockN", "KScaleKeys", "PScale", "IsCausal", "F16PV", "QuantizesQ", "Tile", "TileName", "PretransposedV",
        "MaxSequence", "Info", "Launch", "LaunchWith",
    ];

    public static string Write(AttentionPlan plan)
    {
        var spec = plan.Spec;
        return CSharpFile.Write(spec.Type, w =>
        {
            ModuleWriter.Write(w, spec, [new EntryPointInfo("KernelName", spec.KernelPrefix, plan.Threads, plan.SharedMemoryBytes)],
            [
                ("HeadDim", spec.HeadDim, "Channels per head."),
                ("BlockM", spec.BlockM, "Query rows per block."),
                ("QScaleRows", plan.QScaleRows, "Query rows per Q scale: Q's quantize kernel must use BlockRows = QScaleRows."),
                ("BlockN", spec.BlockN, "Keys per step."),
                ("KScaleKeys", plan.KScaleKeys, "Keys per K scale: K's quantize kernel must use BlockRows = KScaleKeys."),
                ("PScale", plan.PScale, "The fixed scale P is quantized with (1 when P stays 16-bit)."),
            ]);
            w.Line($"/// <summary>Causal masking, bottom-right aligned.</summary>");
            w.Line($"public const bool IsCausal = {(spec.Causal ? "true" : "false")};");
            w.Line($"/// <summary>P·V runs on 16-bit float P and the V input, f16 or bf16 (the accuracy mode); otherwise on 8-bit codes of P and V.</summary>");
            w.Line($"public const bool F16PV = {(plan.FloatPv ? "true" : "false")};");
            w.Line($"/// <summary>Q comes as {spec.Output.CudaName()} with strides and the kernel quantizes it, one scale per row; otherwise Q is int8 from its quantize kernel.</summary>");
            w.Line($"public const bool QuantizesQ = {(plan.QuantizesQ ? "true" : "false")};");
            w.Line($"/// <summary>The tile configuration, as the autotuner reports it.</summary>");
            w.Line($"public const string Tile = \"{plan.Tile}\";");
            w.Line($"/// <summary>The tile's short ASCII name, as command lines take it.</summary>");
            w.Line($"public const string TileName = \"{plan.TileName}\";");
            w.Line($"/// <summary>V arrives transposed [B][H][D][S_pad] in π order (Recipe C).</summary>");
            w.Line($"public const bool PretransposedV = {(plan.PretransposedV ? "true" : "false")};");
            if (Cuda.ModifierWriter.UsesFloatPositions(spec.Score))
            {
                w.Line($"/// <summary>The longest sequence Launch takes: {Cuda.ModifierWriter.FloatPositionRule}.</summary>");
                w.Line($"public const int MaxSequence = {Cuda.ModifierWriter.FloatPositionLimit};");
            }
            w.Line();
            WriteInfo(w, plan);
            w.Line();
            WriteLaunch(w, plan);
        });
    }

    /// <summary>How V reaches P·V, in the host API's words (VStrategy).</summary>
    public static string VStrategyOf(AttentionPlan plan) =>
        plan.FloatPv ? "TransPrmt"
        : plan.InKernelTransposedV ? "InKernelTranspose"
        : plan.PretransposedV ? "Pretransposed"
        : plan.VAtom == CopyAtomKind.LdsmPrmtMovmatrix ? "Movmatrix"
        : "TransPrmt";

    /// <summary>The catalog entry: what this kernel computes, its modes, tile and modifiers, and its by-name launch.</summary>
    private static void WriteInfo(CodeWriter w, AttentionPlan plan)
    {
        var spec = plan.Spec;
        string Method(ModifierSpec? m) => m is null ? "null" : CSharpFile.Literal(m.DeclaringType.Replace("global::", "") + "." + m.MethodName);
        w.Line($"/// <summary>This kernel as the attention catalog lists it (registered when the assembly loads).</summary>");
        w.Line($"public static {ModuleWriter.Launching}.AttentionKernelInfo Info {{ get; }} = new()");
        w.Raw("{");
        w.Indent();
        w.Line($"Name = {CSharpFile.Literal(spec.Type.FullName)},");
        w.Line($"Module = Module,");
        w.Line($"Input = global::KernelDsl.Element.{(spec.Output == Element.BF16 ? "BF16" : "F16")},");
        w.Line($"HeadDim = HeadDim, BlockM = BlockM, BlockN = BlockN, QScaleRows = QScaleRows, KScaleKeys = KScaleKeys, QuantizesQ = QuantizesQ,");
        w.Line($"Causal = IsCausal, PElement = global::KernelDsl.Element.{plan.Pv.AElement.ToString().ToUpperInvariant()}, PretransposedV = PretransposedV, Lse = {(spec.Lse ? "true" : "false")},");
        w.Line($"VStrategy = {CSharpFile.Literal(VStrategyOf(plan))},");
        w.Line($"Tile = Tile, TileName = TileName,");
        w.Line($"ScoreModifier = {Method(spec.Score)},");
        w.Line($"MaskModifier = {Method(spec.Mask)},");
        if (Cuda.ModifierWriter.UsesFloatPositions(spec.Score))
        {
            w.Line($"MaxSequence = MaxSequence,");
        }
        var extents = AttentionSignature.ArrayExtents(spec).ToLookup(e => e.Array, e => CSharpFile.Literal(e.Extent));
        var parameters = AttentionSignature.RuntimeParameters(spec)
            .Select(p => $"new({CSharpFile.Literal(p.Name)}, typeof({(p.Type == ScalarType.Int ? "int" : "float")}), {(p.IsArray ? "true" : "false")}, [{string.Join(", ", extents[p.Name])}]{(p.Positive ? ", Positive: true" : "")})");
        w.Line($"Parameters = [{string.Join(", ", parameters)}],");
        w.Line($"Launch = LaunchWith,");
        w.Outdent();
        w.Raw("};");
    }

    private static void WriteLaunch(CodeWriter w, AttentionPlan plan)
    {
        var spec = plan.Spec;
        var signature = plan.Signature;
        w.Line($"/// <summary>");
        if (plan.QuantizesQ)
        {
            w.Line($"/// O = softmax(Q·Kᵀ)·V for {spec.QInput.CudaName()} Q [B][Hq][Sq][D] with element strides, which the kernel quantizes one row at a time after");
            w.Line($"/// multiplying it by <paramref name=\"qScaleMultiplier\"/> (softmax scale · log2 e), adding its NaN and Inf count to <paramref name=\"nonFiniteQ\"/> if");
            w.Line($"/// given; int8 K [B][Hkv][Sk][D] (contiguous, from its quantize kernel) with per-block scales,");
        }
        else
        {
            w.Line($"/// O = softmax(Q·Kᵀ)·V for int8 Q [B][Hq][Sq][D] and K [B][Hkv][Sk][D] (contiguous, from the quantize kernels) with");
            w.Line($"/// per-block scales (Q's with softmax scale · log2 e folded in),");
        }
        var vCodes = plan.Fp8Pv ? "e4m3" : "int8";
        w.Line($"/// V {(plan.FloatPv ? $"{plan.VElement.CudaName()} with element strides vStrideB/vStrideH and row stride vLd" : plan.PretransposedV ? $"{vCodes} [B][Hkv][D][vLd] (vLd = padded tokens)" : $"{vCodes} with strides vStrideB/vStrideH and row stride vLd")},");
        w.Line($"/// O {(spec.Output == Element.BF16 ? "bf16 (raw bits)" : "f16")} with element strides. <paramref name=\"kMean\"/> (K's channel mean) {(spec.Score is null ? "corrects the LSE for smoothing" : "gives the score modifier the unsmoothed score")}; <paramref name=\"lse\"/> [B][Hq][Sq] may be null.");
        foreach (var parameter in AttentionSignature.RuntimeParameters(spec))
        {
            w.Line($"/// <paramref name=\"{parameter.Name}\"/>: {(parameter.IsArray ? "a read-only device array" : "a scalar")} the modifiers read.");
        }
        w.Line($"/// </summary>");
        w.Block($"public static void Launch({signature.CSharpParameters})", () =>
        {
            LauncherSections.WriteReferenceChecks(w, signature);
            LauncherSections.WriteModifierArgumentChecks(w, AttentionSignature.RuntimeParameters(spec));
            if (!spec.Lse)
            {
                w.Line($"if (lse is not null) throw new global::System.ArgumentException(\"'lse' must be null: this variant is declared with Lse = false and writes none.\", nameof(lse));");
            }
            foreach (var dim in new[] { "batch", "headsQ", "headsKv", "seqQ", "seqK" })
            {
                w.Line($"{Guard}.Positive({dim}, nameof({dim}));");
            }
            if (Cuda.ModifierWriter.UsesFloatPositions(spec.Score))
            {
                foreach (var dim in new[] { "seqQ", "seqK" })
                {
                    w.Line($"{Guard}.AtMost({dim}, MaxSequence, nameof({dim}), \"{Cuda.ModifierWriter.FloatPositionRule}\");");
                }
            }
            w.Line($"{Guard}.MultipleOf(headsQ, headsKv, nameof(headsQ), \"each KV head serves a whole number of query heads (GQA)\");");
            if (!plan.Persistent)
            {
                w.Line($"{Guard}.AtMost(headsQ, 65535, nameof(headsQ), \"query heads are the grid's y extent\");");
                w.Line($"{Guard}.AtMost(batch, 65535, nameof(batch), \"the batch is the grid's z extent\");");
            }
            foreach (var stride in new[] { "vStrideB", "vStrideH", "oStrideB", "oStrideH" }.Concat(plan.QuantizesQ ? ["qStrideB", "qStrideH"] : []))
            {
                w.Line($"{Guard}.AtLeast({stride}, 0, nameof({stride}), \"zero\");");
            }
            if (plan.QuantizesQ)
            {
                w.Line($"{Guard}.AtLeast(qStrideS, HeadDim, nameof(qStrideS), \"the head dim\");");
                foreach (var stride in new[] { "qStrideB", "qStrideH", "qStrideS" })
                {
                    w.Line($"{Guard}.MultipleOf({stride}, 8, nameof({stride}), \"Q's rows are read in 16-byte chunks\");");
                }
                w.Line($"{Guard}.Holds(q, (batch - 1) * qStrideB + (headsQ - 1) * qStrideH + (seqQ - 1) * qStrideS + HeadDim, nameof(q), \"Q with the strides given\");");
                w.Line($"{Guard}.FinitePositive(qScaleMultiplier, nameof(qScaleMultiplier));");
                w.Line($"if (nonFiniteQ is not null) {Guard}.Holds(nonFiniteQ, 1, nameof(nonFiniteQ), \"one counter\");");
            }
            else
            {
                w.Line($"{Guard}.Holds(q, (long)batch * headsQ * seqQ * HeadDim, nameof(q), \"Q [B][Hq][Sq][D]\");");
                w.Line($"{Guard}.Holds(qScale, (long)batch * headsQ * ((seqQ + QScaleRows - 1) / QScaleRows), nameof(qScale), \"one scale per QScaleRows query rows\");");
            }
            w.Line($"{Guard}.Holds(k, (long)batch * headsKv * seqK * HeadDim, nameof(k), \"K [B][Hkv][Sk][D]\");");
            w.Line($"{Guard}.Holds(kScale, (long)batch * headsKv * ((seqK + KScaleKeys - 1) / KScaleKeys), nameof(kScale), \"one scale per KScaleKeys keys\");");
            if (!plan.FloatPv)
            {
                w.Line($"{Guard}.Holds(vScale, (long)batch * headsKv * HeadDim, nameof(vScale), \"one scale per channel\");");
            }
            var kMeanOptional = signature.Host.First(p => p.Name == AttentionSignature.Names.KMean).Optional;
            w.Line($"{(kMeanOptional ? "if (kMean is not null) " : "")}{Guard}.Holds(kMean, (long)batch * headsKv * HeadDim, nameof(kMean), \"one mean per channel\");");
            w.Line($"if (lse is not null) {Guard}.Holds(lse, (long)batch * headsQ * seqQ, nameof(lse), \"one LSE per query row\");");
            w.Line($"{Guard}.Aligned(q, 16, nameof(q));");
            w.Line($"{Guard}.Aligned(k, 16, nameof(k));");
            w.Line($"{Guard}.Aligned(v, 16, nameof(v));");
            if (plan.PretransposedV)
            {
                w.Line($"{Guard}.AtLeast(vLd, seqK, nameof(vLd), \"the number of keys\");");
                w.Line($"{Guard}.MultipleOf(vLd, 16, nameof(vLd), \"rows of the transposed V are copied in 16-byte chunks\");");
                w.Line($"{Guard}.MultipleOf(vStrideB, 16, nameof(vStrideB), \"V's rows must stay 16-byte aligned\");");
                w.Line($"{Guard}.MultipleOf(vStrideH, 16, nameof(vStrideH), \"V's rows must stay 16-byte aligned\");");
                w.Line($"{Guard}.Holds(v, (batch - 1) * vStrideB + (headsKv - 1) * vStrideH + HeadDim * vLd, nameof(v), \"V [B][Hkv][D][vLd]\");");
            }
            else
            {
                w.Line($"{Guard}.AtLeast(vLd, HeadDim, nameof(vLd), \"the head dim\");");
                w.Line($"{Guard}.MultipleOf(vLd, {16 / plan.VBytes}, nameof(vLd), \"rows of V are copied in 16-byte chunks\");");
                w.Line($"{Guard}.MultipleOf(vStrideB, {16 / plan.VBytes}, nameof(vStrideB), \"V's rows must stay 16-byte aligned\");");
                w.Line($"{Guard}.MultipleOf(vStrideH, {16 / plan.VBytes}, nameof(vStrideH), \"V's rows must stay 16-byte aligned\");");
                w.Line($"{Guard}.Holds(v, (batch - 1) * vStrideB + (headsKv - 1) * vStrideH + (seqK - 1) * vLd + HeadDim, nameof(v), \"V with the strides given\");");
            }
            w.Line($"{Guard}.AtLeast(oStrideS, HeadDim, nameof(oStrideS), \"the head dim\");");
            if (plan.StagesOutput)
            {
                foreach (var stride in new[] { "oStrideB", "oStrideH", "oStrideS" })
                {
                    w.Line($"{Guard}.MultipleOf({stride}, 8, nameof({stride}), \"O's rows are stored in 16-byte pieces\");");
                }
                w.Line($"{Guard}.Aligned(o, 16, nameof(o));");
            }
            w.Line($"{Guard}.Holds(o, (batch - 1) * oStrideB + (headsQ - 1) * oStrideH + (seqQ - 1) * oStrideS + HeadDim, nameof(o), \"O with the strides given\");");
            WriteModifierArrayChecks(w, spec);
            w.Line();
            if (plan.WarpSpecialized)
            {
                WriteTensorMaps(w, plan);
            }
            if (plan.Persistent)
            {
                // One block an SM (or a block a tile, when there are fewer tiles), each walking the tiles.
                w.Line($"var tiles = (long)((seqQ + BlockM - 1) / BlockM) * headsQ * batch;");
                w.Line($"{Guard}.AtMost(tiles, int.MaxValue / 2, nameof(batch), \"the persistent grid numbers its query blocks × heads × batch tiles in int, with room for a round past the last\");");
                LauncherSections.WriteLaunch(w, signature, "KernelName", "(int)global::System.Math.Min(tiles, stream.Device.SmCount)");
            }
            else
            {
                LauncherSections.WriteLaunch(w, signature, "KernelName", "(seqQ + BlockM - 1) / BlockM, headsQ, batch");
            }
        });
        w.Line();
        w.Line($"/// <summary><see cref=\"Launch\"/> with every argument read from <paramref name=\"arguments\"/> by its parameter name.</summary>");
        w.Block($"public static void LaunchWith({ModuleWriter.Launching}.AttentionKernelArguments arguments)", () =>
        {
            var reads = signature.Host.Select(p => p.Kind == HostKind.Stream ? "arguments.Stream" : $"arguments.Get<{p.DeclaredType}>({CSharpFile.Literal(p.Name)})");
            w.Line($"Launch({string.Join(", ", reads)});");
        });
    }

    /// <summary>
    /// A modifier array indexed directly by b, h, q or k must hold that many elements (batch, query heads, query or key
    /// tokens): the launcher checks what the modifiers' bodies show (<see cref="AttentionSignature.ArrayExtents"/>),
    /// before the kernel could read past the end.
    /// </summary>
    private static void WriteModifierArrayChecks(CodeWriter w, AttentionSpec spec)
    {
        foreach (var e in AttentionSignature.ArrayExtents(spec))
        {
            w.Line($"{Guard}.Holds({e.Array}, {e.Extent}, nameof({e.Array}), \"{e.What}: the modifier indexes it by {e.Index}\");");
        }
    }

    /// <summary>
    /// The wgmma form's TMA descriptors for Q, K and V (qMap, kMap, vMap), encoded for this launch's buffers: boxes of one block each,
    /// swizzled as the kernel's layouts are; rows past a sequence's end come back as zeros.
    /// </summary>
    private static void WriteTensorMaps(CodeWriter w, AttentionPlan plan)
    {
        var spec = plan.Spec;
        string Swizzle(int rowBytes) => KernelDsl.Generator.Model.TmaSwizzle.TensorMapName(rowBytes);
        const string Map = "global::KernelDsl.TensorMap";
        w.Line($"// {(plan.QuantizesQ ? "" : "Q [B·Hq][Sq][D] and ")}K [B·Hkv][Sk][D] as rank-3 maps, V as rank 4: a box never crosses a head.");
        if (!plan.QuantizesQ)
        {
            w.Line($"var qMap = {Map}.EncodeTiled(q, [HeadDim, seqQ, (long)batch * headsQ], [HeadDim, (long)seqQ * HeadDim], [HeadDim, BlockM, 1], global::KernelDsl.TensorMapSwizzle.{Swizzle(spec.HeadDim)});");
        }
        w.Line($"var kMap = {Map}.EncodeTiled(k, [HeadDim, seqK, (long)batch * headsKv], [HeadDim, (long)seqK * HeadDim], [HeadDim, BlockN, 1], global::KernelDsl.TensorMapSwizzle.{Swizzle(spec.HeadDim)});");
        if (plan.InKernelTransposedV)
        {
            w.Line($"// Recipe D: V as it comes, [B][Hkv][Sk][D] with row stride vLd; the kernel transposes each block itself.");
            w.Line($"var vMap = {Map}.EncodeTiled(v, [HeadDim, seqK, headsKv, batch], [vLd, vStrideH, vStrideB], [HeadDim, BlockN, 1, 1], global::KernelDsl.TensorMapSwizzle.{Swizzle(spec.HeadDim)});");
        }
        else
        {
            w.Line($"var vMap = {Map}.EncodeTiled(v, [vLd, HeadDim, headsKv, batch], [vLd, vStrideH, vStrideB], [BlockN, HeadDim, 1, 1], global::KernelDsl.TensorMapSwizzle.{Swizzle(plan.VRowBytes)});");
        }
    }
}

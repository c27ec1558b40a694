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
                ("PScale", plan.PScale, "The fixed scale P is quantized with (1 when P stays f16)."),
            ]);
            w.Line($"/// <summary>Causal masking, bottom-right aligned.</summary>");
            w.Line($"public const bool Causal = {(spec.Causal ? "true" : "false")};");
            w.Line($"/// <summary>P·V runs on 16-bit float P and the V input (the accuracy mode); otherwise V is int8.</summary>");
            w.Line($"public const bool F16PV = {(plan.F16Pv ? "true" : "false")};");
            w.Line($"/// <summary>The tile configuration, as the autotuner reports it.</summary>");
            w.Line($"public const string Tile = \"{plan.Tile}\";");
            w.Line($"/// <summary>V arrives transposed [B][H][D][S_pad] in π order (Recipe C).</summary>");
            w.Line($"public const bool PretransposedV = {(plan.PretransposedV ? "true" : "false")};");
            w.Line();
            WriteLaunch(w, plan);
        });
    }

    private static void WriteLaunch(CodeWriter w, AttentionPlan plan)
    {
        var spec = plan.Spec;
        var vType = !plan.F16Pv ? "sbyte" : plan.VElement == Element.BF16 ? "ushort" : "global::System.Half";
        var oType = spec.Output == Element.BF16 ? "ushort" : "global::System.Half";
        var vScale = plan.F16Pv ? "" : "global::KernelDsl.DeviceBuffer<float> vScale, ";
        w.Line($"/// <summary>");
        w.Line($"/// O = softmax(Q·Kᵀ)·V for int8 Q [B][Hq][Sq][D] and K [B][Hkv][Sk][D] (contiguous, from the quantize kernels) with");
        w.Line($"/// per-block scales (Q's with softmax scale · log2 e folded in), V {(plan.F16Pv ? $"{plan.VElement.CudaName()} with element strides vStrideB/vStrideH and row stride vLd" : plan.PretransposedV ? "int8 [B][Hkv][D][vLd] (vLd = padded tokens)" : "int8 with strides vStrideB/vStrideH and row stride vLd")},");
        w.Line($"/// O {(spec.Output == Element.BF16 ? "bf16 (raw bits)" : "f16")} with element strides. <paramref name=\"kMean\"/> (K's channel mean) corrects the LSE for smoothing; <paramref name=\"lse\"/> [B][Hq][Sq] may be null.");
        w.Line($"/// </summary>");
        w.Block($"public static void Launch(global::KernelDsl.CudaStream stream, global::KernelDsl.DeviceBuffer<sbyte> q, global::KernelDsl.DeviceBuffer<sbyte> k, global::KernelDsl.DeviceBuffer<{vType}> v, global::KernelDsl.DeviceBuffer<float> qScale, global::KernelDsl.DeviceBuffer<float> kScale, {vScale}global::KernelDsl.DeviceBuffer<float>? kMean, global::KernelDsl.DeviceBuffer<{oType}> o, global::KernelDsl.DeviceBuffer<float>? lse, int batch, int headsQ, int headsKv, int seqQ, int seqK, long vStrideB, long vStrideH, long vLd, long oStrideB, long oStrideH, long oStrideS)", () =>
        {
            w.Line($"{Guard}.Stream(stream, nameof(stream));");
            foreach (var buffer in new[] { "q", "k", "v", "qScale", "kScale", "o" })
            {
                w.Line($"{Guard}.Buffer({buffer}, nameof({buffer}));");
            }
            if (!plan.F16Pv)
            {
                w.Line($"{Guard}.Buffer(vScale, nameof(vScale));");
            }
            w.Line($"if (kMean is not null) {Guard}.Buffer(kMean, nameof(kMean));");
            if (spec.Lse)
            {
                w.Line($"if (lse is not null) {Guard}.Buffer(lse, nameof(lse));");
            }
            else
            {
                w.Line($"if (lse is not null) throw new global::System.ArgumentException(\"'lse' must be null: this variant is declared with Lse = false and writes none.\", nameof(lse));");
            }
            foreach (var dim in new[] { "batch", "headsQ", "headsKv", "seqQ", "seqK" })
            {
                w.Line($"{Guard}.Positive({dim}, nameof({dim}));");
            }
            w.Line($"{Guard}.MultipleOf(headsQ, headsKv, nameof(headsQ), \"each KV head serves a whole number of query heads (GQA)\");");
            w.Line($"{Guard}.AtMost(headsQ, 65535, nameof(headsQ), \"query heads are the grid's y extent\");");
            w.Line($"{Guard}.AtMost(batch, 65535, nameof(batch), \"the batch is the grid's z extent\");");
            foreach (var stride in new[] { "vStrideB", "vStrideH", "oStrideB", "oStrideH" })
            {
                w.Line($"{Guard}.AtLeast({stride}, 0, nameof({stride}), \"zero\");");
            }
            w.Line($"{Guard}.Holds(q, (long)batch * headsQ * seqQ * HeadDim, nameof(q), \"Q [B][Hq][Sq][D]\");");
            w.Line($"{Guard}.Holds(k, (long)batch * headsKv * seqK * HeadDim, nameof(k), \"K [B][Hkv][Sk][D]\");");
            w.Line($"{Guard}.Holds(qScale, (long)batch * headsQ * ((seqQ + QScaleRows - 1) / QScaleRows), nameof(qScale), \"one scale per QScaleRows query rows\");");
            w.Line($"{Guard}.Holds(kScale, (long)batch * headsKv * ((seqK + KScaleKeys - 1) / KScaleKeys), nameof(kScale), \"one scale per KScaleKeys keys\");");
            if (!plan.F16Pv)
            {
                w.Line($"{Guard}.Holds(vScale, (long)batch * headsKv * HeadDim, nameof(vScale), \"one scale per channel\");");
            }
            w.Line($"if (kMean is not null) {Guard}.Holds(kMean, (long)batch * headsKv * HeadDim, nameof(kMean), \"one mean per channel\");");
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
            w.Line($"{Guard}.Holds(o, (batch - 1) * oStrideB + (headsQ - 1) * oStrideH + (seqQ - 1) * oStrideS + HeadDim, nameof(o), \"O with the strides given\");");
            w.Line();
            // The wgmma form takes Q, K, V as tensor maps (their strides are inside them); the mma.sync form takes pointers and V's strides.
            string operands, vStrides;
            if (plan.WarpSpecialized)
            {
                WriteTensorMaps(w, plan);
                (operands, vStrides) = (".AddValue(qMap).AddValue(kMap).AddValue(vMap)", "");
            }
            else
            {
                (operands, vStrides) = (".Add(q).Add(k).Add(v)", ".Add(vStrideB).Add(vStrideH).Add(vLd)");
            }
            var vScaleArg = plan.F16Pv ? ".AddNullPointer()" : ".Add(vScale)";
            w.Line($"var arguments = new {ModuleWriter.Launching}.KernelArguments(){operands}.Add(qScale).Add(kScale){vScaleArg};");
            w.Line($"if (kMean is null) arguments.AddNullPointer(); else arguments.Add(kMean);");
            w.Line($"arguments.Add(o);");
            w.Line($"if (lse is null) arguments.AddNullPointer(); else arguments.Add(lse);");
            w.Line($"arguments.Add(headsQ).Add(headsKv).Add(seqQ).Add(seqK){vStrides}.Add(oStrideB).Add(oStrideH).Add(oStrideS);");
            w.Line($"stream.Launch(Module, KernelName, {ModuleWriter.Launching}.Dim3.Of((seqQ + BlockM - 1) / BlockM, headsQ, batch), arguments);");
        });
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
        w.Line($"// Q [B·Hq][Sq][D] and K [B·Hkv][Sk][D] as rank-3 maps, V as rank 4: a box never crosses a head.");
        w.Line($"var qMap = {Map}.EncodeTiled(q, [HeadDim, seqQ, (long)batch * headsQ], [HeadDim, (long)seqQ * HeadDim], [HeadDim, BlockM, 1], global::KernelDsl.TensorMapSwizzle.{Swizzle(spec.HeadDim)});");
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

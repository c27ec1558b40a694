using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>
/// The attention kernel's one signature: quantized Q/K (and V), their scales, K's channel mean, O and LSE, the shape,
/// V's and O's strides, then each modifier's runtime parameters. Both kernel forms and the launcher are written from it;
/// the host API binds to it by the names in <see cref="Names"/>.
/// </summary>
public static class AttentionSignature
{
    /// <summary>The launcher's parameter names, which the host API's generic binding uses as keys.</summary>
    public static class Names
    {
        public const string Stream = "stream", Q = "q", K = "k", V = "v", QScale = "qScale", KScale = "kScale", VScale = "vScale",
            KMean = "kMean", O = "o", Lse = "lse", Batch = "batch", HeadsQ = "headsQ", HeadsKv = "headsKv", SeqQ = "seqQ", SeqK = "seqK",
            VStrideB = "vStrideB", VStrideH = "vStrideH", VLd = "vLd", OStrideB = "oStrideB", OStrideH = "oStrideH", OStrideS = "oStrideS",
            QStrideB = "qStrideB", QStrideH = "qStrideH", QStrideS = "qStrideS", QScaleMultiplier = "qScaleMultiplier", NonFiniteQ = "nonFiniteQ";

        /// <summary>Every fixed name: a modifier parameter may not take one.</summary>
        public static readonly string[] All = [Stream, Q, K, V, QScale, KScale, VScale, KMean, O, Lse, Batch, HeadsQ, HeadsKv, SeqQ, SeqK,
            VStrideB, VStrideH, VLd, OStrideB, OStrideH, OStrideS, QStrideB, QStrideH, QStrideS, QScaleMultiplier, NonFiniteQ];
    }

    public static KernelSignature Of(AttentionPlan plan)
    {
        var spec = plan.Spec;
        var vElement = plan.VElement.CSharpName();
        var oElement = spec.Output.CSharpName();
        var signature = new SignatureBuilder();
        void Operand(string name, string element, string role, string cudaName, string cudaType)
        {
            // The wgmma form reads Q, K, V through TMA: the launcher encodes a tensor map per operand.
            if (plan.WarpSpecialized)
            {
                signature.Host(new HostParameter(name, HostKind.Buffer, element, false, role));
                signature.Kernel(new KernelParameter(name + "_map", "kdsl_tensor_map", Passing.TensorMap, name));
            }
            else
            {
                signature.Buffer(name, element, role, cudaName, cudaType);
            }
        }

        signature.Stream("the stream the kernel runs on");
        if (plan.QuantizesQ)
        {
            // The consumer warps read Q's rows with plain 16-byte loads and quantize them: a pointer and element strides.
            signature.Buffer(Names.Q, oElement, $"Q [B][Hq][Sq][D] {spec.QInput.CudaName()} with element strides, quantized in the kernel", "Q", "const u16* __restrict__");
        }
        else
        {
            Operand(Names.Q, "sbyte", "Q [B][Hq][Sq][D] int8", "Q", "const s8* __restrict__");
        }
        Operand(Names.K, "sbyte", "K [B][Hkv][Sk][D] int8, smoothed", "K", "const s8* __restrict__");
        var vCodes = plan.Fp8Pv ? "e4m3" : "int8";
        Operand(Names.V, vElement, plan.FloatPv ? "V as it comes" : plan.PretransposedV ? $"V {vCodes} [B][Hkv][D][vLd], π order" : $"V {vCodes}", "V",
            $"const {(plan.FloatPv ? "u16" : plan.Fp8Pv ? "u8" : "s8")}* __restrict__");
        if (!plan.QuantizesQ)
        {
            signature.Buffer(Names.QScale, "float", "one scale per QScaleRows query rows, softmax scale · log2 e folded in", "q_scale", "const float* __restrict__");
        }
        signature.Buffer(Names.KScale, "float", "one scale per KScaleKeys keys", "k_scale", "const float* __restrict__");
        if (plan.FloatPv)
        {
            signature.Kernel(new KernelParameter("v_scale", "const float* __restrict__", Passing.NullPointer, null));
        }
        else
        {
            signature.Buffer(Names.VScale, "float", "one scale per channel", "v_scale", "const float* __restrict__");
        }
        signature.Buffer(Names.KMean, "float", "K's channel mean [B][Hkv][D]", "k_mean", "const float* __restrict__", optional: spec.Score is null);
        signature.Buffer(Names.O, oElement, "O with element strides", "O", "u16* __restrict__");
        signature.Buffer(Names.Lse, "float", "LSE [B][Hq][Sq], natural log", "lse", "float* __restrict__", optional: true);
        // The grid's z extent, except on a persistent grid, whose blocks walk every (query block, head, batch) tile.
        signature.Scalar(Names.Batch, "int", plan.Persistent ? "batch" : "batch (the grid's z extent)", plan.Persistent ? "batch" : null);
        signature.Scalar(Names.HeadsQ, "int", "query heads", "heads_q");
        signature.Scalar(Names.HeadsKv, "int", "KV heads", "heads_kv");
        signature.Scalar(Names.SeqQ, "int", "query tokens", "seq_q");
        signature.Scalar(Names.SeqK, "int", "key tokens", "seq_k");
        // TMA maps carry V's strides in the wgmma form; the launcher still needs them to encode the map.
        var vStrides = plan.WarpSpecialized ? null : new[] { "v_stride_b", "v_stride_h", "v_ld" };
        signature.Scalar(Names.VStrideB, "long", "V's batch stride, elements", vStrides?[0]);
        signature.Scalar(Names.VStrideH, "long", "V's head stride, elements", vStrides?[1]);
        signature.Scalar(Names.VLd, "long", "V's row stride, elements", vStrides?[2]);
        signature.Scalar(Names.OStrideB, "long", "O's batch stride, elements", "o_stride_b");
        signature.Scalar(Names.OStrideH, "long", "O's head stride, elements", "o_stride_h");
        signature.Scalar(Names.OStrideS, "long", "O's row stride, elements", "o_stride_s");
        if (plan.QuantizesQ)
        {
            signature.Scalar(Names.QStrideB, "long", "Q's batch stride, elements", "q_stride_b");
            signature.Scalar(Names.QStrideH, "long", "Q's head stride, elements", "q_stride_h");
            signature.Scalar(Names.QStrideS, "long", "Q's row stride, elements", "q_stride_s");
            signature.Scalar(Names.QScaleMultiplier, "float", "what Q is multiplied by before it is quantized: softmax scale · log2 e", "q_scale_multiplier");
            signature.Buffer(Names.NonFiniteQ, "uint", "a counter the kernel adds Q's NaN and Inf count to", "nonfinite_q", "unsigned int*", optional: true);
        }
        foreach (var (hostParameter, kernelParameter) in RuntimeParameters(spec).Select(ModifierSignature.Parameter))
        {
            signature.Host(hostParameter);
            signature.Kernel(kernelParameter);
        }
        return signature.Build();
    }

    /// <summary>The runtime parameters of the score modifier then the mask, each name once (a name both share is one argument).</summary>
    public static IEnumerable<ModifierParameter> RuntimeParameters(AttentionSpec spec) => ModifierSignature.RuntimeParameters(spec.Score, spec.Mask);

    /// <summary>
    /// What a modifier array must cover, from the bodies: an array indexed by a bare b, h, q or k holds at least the batch,
    /// query heads, query or key tokens (<paramref name="spec"/>'s launcher parameter names as the extents), in a stable order.
    /// Other indexings are the caller's to keep in range.
    /// </summary>
    public static IEnumerable<(string Array, string Extent, string What, string Index)> ArrayExtents(AttentionSpec spec) =>
        ModifierSignature.ArrayExtents(spec.Score, spec.Mask, Extents);

    private static readonly Dictionary<ParameterRole, (string Extent, string What)> Extents = new()
    {
        [ParameterRole.Batch] = (Names.Batch, "one element per batch entry"),
        [ParameterRole.Head] = (Names.HeadsQ, "one element per query head"),
        [ParameterRole.Query] = (Names.SeqQ, "one element per query token"),
        [ParameterRole.Key] = (Names.SeqK, "one element per key token"),
    };
}

using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>FlashAttentionForward spec → CUDA module text: prelude, PTX helpers, layouts, loaders, kernel.</summary>
public static class AttentionEmitter
{
    public static string Emit(AttentionPlan plan) => plan.WarpSpecialized ? EmitWarpSpecialized(plan) : EmitWarpLevel(plan);

    private static string EmitWarpLevel(AttentionPlan plan)
    {
        var spec = plan.Spec;
        var v = plan.ComposeV(plan.ComposeP());
        var kernel = new AttentionKernelWriter(plan, v);
        var w = new CodeWriter();
        var vAtom = plan.VAtom!.Value;
        CudaPrelude.Write(w, spec,
            $"INT8 FlashAttention forward, head dim {spec.HeadDim}{(spec.Causal ? ", causal (bottom-right aligned)" : "")}: S = Q·Kᵀ on {plan.Qk.Ptx},",
            $"online softmax in exp2, P {(plan.FloatPv ? $"kept {plan.Pv.AElement.CudaName()}" : $"quantized to {plan.Pv.AElement.CudaName()} (×{plan.PScale})")}, O = P·V on {plan.Pv.Ptx}.",
            $"Block {spec.BlockM} query rows × {spec.BlockN} keys per step, {spec.Warps} warps (16 rows each), {spec.Stages} K/V stage(s), {plan.SharedMemoryBytes} bytes of shared memory.",
            $"V: {vAtom} ({CopyAtom.Get(vAtom).Instructions}), P in {plan.POrder} key order.");

        PtxHelper[] pPacking = plan.FloatPv ? [PtxHelper.HalfPack] : [PtxHelper.Prmt, PtxHelper.BytePack];
        var helpers = new[] { PtxHelper.IntMath, PtxHelper.SoftmaxMath, PtxHelper.F16Convert, PtxHelper.Bf16Convert, PtxHelper.FloatBias }
            .Concat(pPacking)
            .Concat(PtxHelpers.For(CopyAtomKind.CpAsync16));
        foreach (var atom in spec.CopyAtoms)
        {
            helpers = helpers.Concat(PtxHelpers.For(atom.Atom));
        }
        PtxHelpers.Write(w, helpers, [plan.Qk, plan.Pv], biasedStart: true);
        w.Line();
        w.Line($"// ---- Shared-memory layouts ----");
        LayoutWriter.Write(w, spec.LayoutOf(Operand.Q)!, spec.BlockM, spec.HeadDim);
        LayoutWriter.Write(w, spec.LayoutOf(Operand.K)!, spec.BlockN, spec.HeadDim);
        LayoutWriter.Write(w, spec.LayoutOf(Operand.V)!, plan.VRows, plan.VRowBytes);
        ModifierWriter.WriteModifiers(w, spec.Score, spec.Mask);
        w.Line();
        kernel.WriteLoaders(w);
        w.Line();
        kernel.WriteKernel(w);
        return w.ToString();
    }

    private static string EmitWarpSpecialized(AttentionPlan plan)
    {
        var spec = plan.Spec;
        var kernel = new WgmmaAttentionKernelWriter(plan);
        var w = new CodeWriter();
        CudaPrelude.Write(w, spec,
            $"INT8 FlashAttention forward for Hopper, head dim {spec.HeadDim}{(spec.Causal ? ", causal (bottom-right aligned)" : "")}: warp-specialized, 1 producer + {plan.ConsumerWarpgroups} consumer warpgroup{(plan.ConsumerWarpgroups == 1 ? "" : "s")}{(plan.MinBlocksPerSm == 1 ? "" : $", {plan.MinBlocksPerSm} blocks per SM")}{(plan.Persistent ? ", a persistent grid of one block an SM walking the tiles" : "")}.",
            plan.QuantizesQ
                ? $"Producer: TMA loads of K, V per stage onto mbarriers. Consumers: Q read as {spec.QInput.CudaName()} and quantized per row, S = Q·Kᵀ on {plan.Qk.Ptx} (shared × shared),"
                : $"Producer: TMA loads of Q ({(plan.Persistent ? "per tile, two buffers" : "once")}) and K, V per stage onto mbarriers. Consumers: S = Q·Kᵀ on {plan.Qk.Ptx} (shared × shared),",
            $"online softmax in exp2, P quantized to {plan.Pv.AElement.CudaName()} (×{plan.PScale}) in registers, O = P·V on {plan.Pv.Ptx} (registers × shared).",
            $"Block {spec.BlockM} query rows × {spec.BlockN} keys per step, {spec.Stages} K/V stages, {plan.SharedMemoryBytes} bytes of shared memory (with {AttentionPlan.TmaAlignment} for alignment{(plan.SharesKeyBlockRange ? $", {plan.Barriers} mbarriers and the key-block range" : $" and {plan.Barriers} mbarriers")}).",
            plan.InKernelTransposedV
                ? "V: loaded by TMA as it comes, then rewritten [channel][key] in π order by the producer warps (Recipe D: ldmatrix.trans + prmt + stmatrix)."
                : "V: transposed beforehand to [channel][key] in π order (Recipe C) and loaded by TMA as wgmma's K-major B.");
        var helpers = new[] { PtxHelper.IntMath, PtxHelper.SoftmaxMath, PtxHelper.F16Convert, PtxHelper.Bf16Convert, PtxHelper.FloatBias, PtxHelper.Prmt, plan.Fp8Pv ? PtxHelper.E4m3Pack : PtxHelper.BytePack, PtxHelper.Warpgroup }
            .Concat(PtxHelpers.For(CopyAtomKind.Tma))
            .Concat(plan.InKernelTransposedV ? PtxHelpers.For(CopyAtomKind.LdsmTransPrmt).Concat(PtxHelpers.For(CopyAtomKind.Stmatrix)) : [])
            .Concat(plan.QuantizesQ ? [PtxHelper.Global16, PtxHelper.Shared16] : []);
        PtxHelpers.Write(w, helpers, [plan.Qk, plan.Pv]);
        w.Line();
        if (plan.QuantizesQ)
        {
            // The Quantize family's own helpers, as it writes them: the kernel rounds Q exactly as a Q quantize kernel would.
            QuantizeKernelWriter.HelpersFor(spec, spec.QInput, subtractChannelMean: false).WriteHelpers(w);
            w.Line();
        }
        w.Line($"// ---- Shared-memory layouts (TMA writes them; the LSE reads Q back through this function) ----");
        LayoutWriter.Write(w, spec.LayoutOf(Operand.Q)!, spec.BlockM, spec.HeadDim);
        if (plan.InKernelTransposedV)
        {
            LayoutWriter.Write(w, spec.LayoutOf(Operand.V)!, plan.VRows, plan.VRowBytes);
            LayoutWriter.Write(w, kernel.StagingLayout, spec.BlockN, spec.HeadDim, WgmmaAttentionKernelWriter.StagingFunction);
        }
        ModifierWriter.WriteModifiers(w, spec.Score, spec.Mask);
        w.Line();
        kernel.WriteKernel(w);
        return w.ToString();
    }
}

using System.Collections.Generic;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>Quantize spec → CUDA module text. Sections in order: prelude, PTX helpers, quantize helpers, kernels in launch order.</summary>
public static class QuantizeEmitter
{
    public static string Emit(QuantizePlan plan)
    {
        var spec = plan.Spec;
        var w = new CodeWriter();
        var kernel = new QuantizeKernelWriter(plan);
        var scales = plan.PerChannel
            ? $"one float scale per (batch·head, channel): [B·H][{spec.HeadDim}]"
            : $"one float scale per (batch·head, tile of {spec.BlockRows} tokens): [B·H][ceil(S / {spec.BlockRows})]";
        var codes = spec.Output == Element.E4M3 ? "e4m3 (scale absmax / 448)" : "int8";
        var output = spec.Transposed
            ? $"{codes} [B][H][{spec.HeadDim}][S_pad], S_pad = S rounded up to {spec.TransposePad}, tokens in {spec.TransposedOrder} order, padding zero"
            : $"{codes} [B][H][S][{spec.HeadDim}]";
        CudaPrelude.Write(w, spec,
            $"{spec.Input.CudaName()} [B, H, S, {spec.HeadDim}] (any strides for B, H, S; channels contiguous) → {output};",
            $"{scales}." + (spec.SubtractChannelMean ? " The per-(batch, head) channel mean over tokens is subtracted first and written out." : ""),
            $"{spec.Threads} threads per block; kernels in launch order: {string.Join(", ", Symbols(plan))}.",
            $"The quantize kernel adds the number of NaN/Inf elements it read to *nonfinite (unless null); the {QuantizePlan.CountNonFinite.Suffix} kernel only counts them.");

        var helpers = new List<PtxHelper> { PtxHelper.IntMath, PtxHelper.Global16, PtxHelpers.ToFloatHelper(spec.Input) };
        if (!plan.PerChannel)
        {
            helpers.Add(PtxHelper.WarpReduce);
        }
        if (spec.Output == Element.E4M3)
        {
            helpers.Add(PtxHelper.E4m3Pack);
        }
        PtxHelpers.Write(w, helpers, []);
        w.Line();
        kernel.WriteHelpers(w);
        foreach (var entry in plan.EntryPoints)
        {
            w.Line();
            if (entry == QuantizePlan.ChannelMean)
            {
                kernel.WriteChannelMean(w);
            }
            else if (entry == QuantizePlan.ClearScales)
            {
                kernel.WriteClearScales(w);
            }
            else if (entry == QuantizePlan.ChannelAbsmax)
            {
                kernel.WriteChannelAbsmax(w);
            }
            else if (entry == QuantizePlan.ChannelScale)
            {
                kernel.WriteChannelScale(w);
            }
            else if (entry == QuantizePlan.CountNonFinite)
            {
                kernel.WriteCountNonFinite(w);
            }
            else
            {
                kernel.WriteQuantize(w);
            }
        }
        return w.ToString();
    }

    private static IEnumerable<string> Symbols(QuantizePlan plan)
    {
        foreach (var kernel in plan.Kernels)
        {
            yield return plan.Symbol(kernel);
        }
    }
}

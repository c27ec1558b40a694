using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The online softmax both attention forms share, on a thread's S accumulators <c>sacc[STiles][4]</c> (n8 tiles laid
/// out as mma.sync's m16n8 C fragment, which is also each warp's share of a wgmma): masks, block maximum, O rescale,
/// P quantized (or kept 16-bit) with its row sums, and P packed into the P·V MMA's A registers.
/// </summary>
/// <param name="rowOrigin">The block-relative first query row of the warp's 16.</param>
public sealed class AttentionSoftmaxWriter(AttentionPlan plan, CodeWriter w, string rowOrigin)
{
    private readonly AttentionSpec _spec = plan.Spec;

    /// <summary>S tiles that share one K scale.</summary>
    private int TilesPerScale => plan.KScaleKeys / plan.QkWarp.N;

    /// <summary>Whether key (jt, r) of block j is outside the sequence, or above the causal diagonal for its row.</summary>
    private string KeyMasked => _spec.Causal
        ? $"key >= seq_k || key > m0 + {rowOrigin} + g + 8 * (r >> 1) + (seq_k - seq_q)"
        : "key >= seq_k";

    /// <summary>A loop over this thread's scores whose body runs only for masked keys.</summary>
    private void WriteForMaskedKeys(string body)
    {
        w.Line($"#pragma unroll");
        w.Line($"for (int jt = 0; jt < {plan.STiles}; ++jt)");
        w.Line($"    #pragma unroll");
        w.Line($"    for (int r = 0; r < 4; ++r) {{ const int key = j * {_spec.BlockN} + jt * 8 + 2 * t + (r & 1); if ({KeyMasked}) {body} }}");
    }

    /// <summary>The scale of tile jt's scores: q_sc · its K block's scale.</summary>
    private string ScaleOf(string tile) => plan.KScalesPerBlock == 1 ? "sc" : $"sc[({tile}) / {TilesPerScale}]";

    public void WriteSoftmax()
    {
        var s = _spec;
        w.Line($"// Online softmax in the log2 domain (softmax scale · log2 e is folded into q_scale).");
        if (plan.KScalesPerBlock == 1)
        {
            w.Line($"const float sc = q_sc * k_scale[bhk * k_tiles + j];");
        }
        else
        {
            w.Line($"// {plan.KScalesPerBlock} K scales per block of {s.BlockN} keys; one past the last key's scale is never read (its keys are masked).");
            w.Line($"float sc[{plan.KScalesPerBlock}];");
            w.Line($"#pragma unroll");
            w.Line($"for (int ks = 0; ks < {plan.KScalesPerBlock}; ++ks) sc[ks] = j * {plan.KScalesPerBlock} + ks < k_tiles ? q_sc * k_scale[bhk * k_tiles + j * {plan.KScalesPerBlock} + ks] : 1.f;");
        }
        var crossing = s.Causal
            ? $"(j + 1) * {s.BlockN} > seq_k || (j + 1) * {s.BlockN} - 1 > m0 + (seq_k - seq_q)"
            : $"(j + 1) * {s.BlockN} > seq_k";
        w.Line($"// Only a block that crosses the end of the keys{(s.Causal ? " or the causal diagonal" : "")} compares keys; the others skip the masks.");
        w.Line($"const bool masked = {crossing};");
        w.Line($"float xs[{plan.STiles}][4];  // bias + S as floats, −∞ where masked");
        w.Line($"#pragma unroll");
        w.Line($"for (int jt = 0; jt < {plan.STiles}; ++jt) {{ xs[jt][0] = __int_as_float(sacc[jt][0]); xs[jt][1] = __int_as_float(sacc[jt][1]); xs[jt][2] = __int_as_float(sacc[jt][2]); xs[jt][3] = __int_as_float(sacc[jt][3]); }}");
        w.Block($"if (masked)", () => WriteForMaskedKeys("xs[jt][r] = -KDSL_INF;"));
        // A balanced tree: fmaxf is exact, so the order is free and the dependency chain is log2 deep.
        string Tree(int half, int first, int count) => MaxTree(Enumerable.Range(first, count).SelectMany(jt => new[] { $"xs[{jt}][{2 * half}]", $"xs[{jt}][{2 * half + 1}]" }).ToList());
        if (plan.KScalesPerBlock == 1)
        {
            w.Line($"float block_max[2] = {{{Tree(0, 0, plan.STiles)},");
            w.Line($"                       {Tree(1, 0, plan.STiles)}}};");
        }
        else
        {
            // Each group's maximum is scaled by its own K scale before the groups meet; scales are positive, so −∞ stays −∞.
            string Scaled(int half, int group) => $"({Tree(half, group * TilesPerScale, TilesPerScale)} - KDSL_FLOAT_BIAS) * sc[{group}]";
            string Groups(int half) => MaxTree(Enumerable.Range(0, plan.KScalesPerBlock).Select(g => Scaled(half, g)).ToList());
            w.Line($"float block_max[2] = {{{Groups(0)},");
            w.Line($"                       {Groups(1)}}};");
        }
        w.Line($"float alpha[2], base[2];");
        w.Line($"bool grew = false;");
        w.Line($"#pragma unroll");
        w.Block($"for (int hh = 0; hh < 2; ++hh)", () =>
        {
            w.Line($"block_max[hh] = fmaxf(block_max[hh], __shfl_xor_sync(0xffffffffu, block_max[hh], 1));");
            w.Line($"block_max[hh] = fmaxf(block_max[hh], __shfl_xor_sync(0xffffffffu, block_max[hh], 2));");
            if (plan.KScalesPerBlock == 1)
            {
                w.Line($"const float new_max = fmaxf(row_max[hh], block_max[hh] == -KDSL_INF ? -KDSL_INF : (block_max[hh] - KDSL_FLOAT_BIAS) * sc);");
            }
            else
            {
                w.Line($"const float new_max = fmaxf(row_max[hh], block_max[hh]);  // already scaled");
            }
            w.Line($"base[hh] = new_max == -KDSL_INF ? 0.f : new_max;  // a fully masked row so far: keep exp2 finite");
            w.Line($"alpha[hh] = new_max > row_max[hh] ? kdsl_exp2(row_max[hh] - base[hh]) : 1.f;");
            w.Line($"grew |= new_max > row_max[hh];");
            w.Line($"row_max[hh] = new_max;");
            w.Line($"row_sum[hh] *= alpha[hh];");
        });
        w.Line($"// O is rescaled only when a row of the warp saw a new maximum; past the first blocks that is rare.");
        w.Block($"if (__any_sync(0xffffffffu, grew))", () =>
        {
            w.Line($"#pragma unroll");
            w.Line($"for (int i = 0; i < {plan.OTiles}; ++i) {{ o[i][0] *= alpha[0]; o[i][1] *= alpha[0]; o[i][2] *= alpha[1]; o[i][3] *= alpha[1]; }}");
        });
        var exp = $"kdsl_exp2(fmaf(xs[jt][r] - KDSL_FLOAT_BIAS, {ScaleOf("jt")}, -base[r >> 1]))";
        if (plan.F16Pv)
        {
            w.Line($"// P stays 16-bit (accuracy mode), rounded to {plan.Pv.AElement.CudaName()} when packed for the MMA. The row sum adds P before that");
            w.Line($"// rounding: round-to-nearest-even is unbiased, and it spares two conversions per score. Masked keys give 2^-∞ = 0.");
            w.Line($"float p[{plan.STiles}][4];");
            w.Line($"#pragma unroll");
            w.Line($"for (int jt = 0; jt < {plan.STiles}; ++jt)");
            w.Line($"    #pragma unroll");
            w.Line($"    for (int r = 0; r < 4; ++r) {{ p[jt][r] = {exp}; row_sum[r >> 1] += p[jt][r]; }}");
        }
        else
        {
            w.Line($"// P in [0, 1] quantized to {plan.Pv.AElement.CudaName()}: the biased FFMA rounds {plan.PScale}·P to the nearest even integer, kept in the");
            w.Line($"// low byte. The row sum adds the quantized values, as integers (the biases cancel mod 2^32).");
            w.Line($"u32 p[{plan.STiles}][4];");
            w.Line($"#pragma unroll");
            w.Line($"for (int jt = 0; jt < {plan.STiles}; ++jt)");
            w.Line($"    #pragma unroll");
            w.Line($"    for (int r = 0; r < 4; ++r) p[jt][r] = __float_as_uint(fmaf({exp}, {plan.PScale}.f, KDSL_FLOAT_BIAS));  // masked: 2^-∞ = 0");
            w.Line($"u32 p_sum[2] = {{0u, 0u}};");
            w.Line($"#pragma unroll");
            w.Line($"for (int jt = 0; jt < {plan.STiles}; ++jt) {{ p_sum[0] += p[jt][0] + p[jt][1]; p_sum[1] += p[jt][2] + p[jt][3]; }}");
            w.Line($"row_sum[0] += (float)(int)(p_sum[0] - {2 * plan.STiles}u * KDSL_FLOAT_BIAS_BITS);");
            w.Line($"row_sum[1] += (float)(int)(p_sum[1] - {2 * plan.STiles}u * KDSL_FLOAT_BIAS_BITS);");
        }
    }

    /// <summary>P packed from the S accumulators into the P·V MMA's A registers, <c>name[PvSteps][4]</c>, per FragmentComposition.PackingOf.</summary>
    public void WritePackP(string name = "pa", bool declare = true)
    {
        var pv = plan.PvWarp;
        var elementsPerReg = 4 / pv.AElement.SizeInBytes();
        var sTilesPerStep = pv.K / plan.QkWarp.N;
        if (declare)
        {
            w.Line($"u32 {name}[{plan.PvSteps}][4];");
        }
        w.Line($"#pragma unroll");
        w.Block($"for (int kk = 0; kk < {plan.PvSteps}; ++kk)", () =>
        {
            for (var reg = 0; reg < pv.ARegisters; reg++)
            {
                var values = Enumerable.Range(0, elementsPerReg).Select(e =>
                {
                    var (tile, accumulator) = FragmentComposition.PackingOf(pv, reg, e);
                    return $"p[kk * {sTilesPerStep} + {tile}][{accumulator}]";
                }).ToArray();
                // 8-bit P: byte 0 of four biased floats, gathered by prmt (pairs, then the two pairs).
                var packed = elementsPerReg == 4
                    ? $"kdsl_prmt(kdsl_prmt({values[0]}, {values[1]}, 0x0040u), kdsl_prmt({values[2]}, {values[3]}, 0x0040u), 0x5410u)"
                    : $"kdsl_pack_{(pv.AElement == Element.BF16 ? "bf16" : "f16")}x2({values[0]}, {values[1]})";
                w.Line($"{name}[kk][{reg}] = {packed};");
            }
        });
    }

    private static string MaxTree(IReadOnlyList<string> values) => values.Count == 1
        ? values[0]
        : $"fmaxf({MaxTree(values.Take(values.Count / 2).ToList())}, {MaxTree(values.Skip(values.Count / 2).ToList())})";
}

using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using N = KernelDsl.Generator.Cuda.AttentionNames;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// Q quantized inside the wgmma kernel (<c>QInput = F16/BF16</c>): each consumer warp reads its 16 query rows as they
/// come, quantizes each row with a scale of its own and writes the codes into the shared Q tile, in the layout TMA would
/// have written. The arithmetic is the Q quantize kernel's (kdsl_prep, kdsl_scale_of, kdsl_inv_of, kdsl_quant, whose
/// text <see cref="AttentionEmitter"/> takes from <see cref="QuantizeKernelWriter"/>) with one row per scale, so the
/// CPU reference's per-row Q scales are the kernel's bit for bit. Defines <c>q_sc[2]</c>, the scales of the thread's
/// rows g and g + 8, which the softmax and the epilogue read per row.
/// </summary>
/// <param name="rowOrigin">The block-relative first query row of the warp's 16.</param>
public sealed class QueryQuantizeWriter(AttentionPlan plan, CodeWriter w, string rowOrigin)
{
    public void Write()
    {
        var d = plan.Spec.HeadDim;
        // Two lanes per row, each half the row's channels: D / 2 values in D / 16 chunks of 16 bytes.
        var chunks = d / 16;
        var half = d / 2;
        w.Line($"// Q quantized here, one scale per row: this warp's 16 rows, two lanes a row, {half} channels a lane. Each row: v = q · q_scale_multiplier");
        w.Line($"// (softmax scale · log2 e), scale = max |v| / 127, codes rne(v / scale) — the Q quantize kernel's steps with one row per");
        w.Line($"// scale — written to {N.SharedQ} as TMA lays Q out. Rows past seq_q quantize zeros (scale 1, codes 0).");
        w.Line($"float {N.QScale}[2];  // the scales of rows g and g + 8");
        w.Raw("{");
        w.Indent();
        {
            w.Line($"const int q_row = {rowOrigin} + ({N.Lane} >> 1), q_col = ({N.Lane} & 1) * {half};  // block-relative row, first channel");
            w.Line($"u32 q_raw[{chunks}][4];");
            w.Block($"if ({N.FirstRow} + q_row < seq_q)", () =>
            {
                w.Line($"const u16* const src = Q + {N.Batch} * q_stride_b + {N.Head} * q_stride_h + (long long)({N.FirstRow} + q_row) * q_stride_s + q_col;");
                w.Line($"#pragma unroll");
                w.Line($"for (int c = 0; c < {chunks}; ++c) kdsl_ld16(src + 8 * c, q_raw[c]);  // all in flight before the first is used");
            });
            w.Block($"else", () =>
            {
                w.Line($"#pragma unroll");
                w.Line($"for (int c = 0; c < {chunks}; ++c) q_raw[c][0] = q_raw[c][1] = q_raw[c][2] = q_raw[c][3] = 0u;");
            });
            w.Line($"float amax = 0.0f;");
            w.Line($"int n_nonfinite = 0;");
            w.Line($"#pragma unroll");
            w.Block($"for (int c = 0; c < {chunks}; ++c)", () =>
            {
                w.Line($"float v[8];");
                w.Line($"n_nonfinite += kdsl_nonfinite8(q_raw[c]);");
                w.Line($"kdsl_unpack8(q_raw[c], v);");
                w.Line($"#pragma unroll");
                w.Line($"for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf(kdsl_prep(v[j], q_scale_multiplier)));");
            });
            w.Line($"kdsl_report_nonfinite(nonfinite_q, n_nonfinite);");
            w.Line($"amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, 1));  // and the row's other half (max is exact in any order)");
            w.Line($"const float scale = kdsl_scale_of(amax), inv = kdsl_inv_of(scale);");
            w.Line($"#pragma unroll");
            w.Block($"for (int c = 0; c < {chunks}; c += 2)", () =>
            {
                w.Line($"u32 code[4] = {{0u, 0u, 0u, 0u}};  // 16 channels, 4 a word");
                w.Line($"#pragma unroll");
                w.Block($"for (int k = 0; k < 2; ++k)", () =>
                {
                    w.Line($"float v[8];");
                    w.Line($"kdsl_unpack8(q_raw[c + k], v);");
                    w.Line($"#pragma unroll");
                    w.Line($"for (int j = 0; j < 8; ++j) code[2 * k + j / 4] |= kdsl_byte(kdsl_quant(kdsl_prep(v[j], q_scale_multiplier), inv), 8 * (j % 4));");
                });
                w.Line($"kdsl_sts16(sq_addr + {LayoutWriter.FunctionName(Operand.Q)}(q_row, q_col + 8 * c), code[0], code[1], code[2], code[3]);");
            });
            w.Line($"// Lanes 2r and 2r + 1 hold row r's scale; this thread's accumulator rows are g and g + 8.");
            w.Line($"{N.QScale}[0] = __shfl_sync(0xffffffffu, scale, 2 * {N.Group});");
            w.Line($"{N.QScale}[1] = __shfl_sync(0xffffffffu, scale, 2 * {N.Group} + 16);");
        }
        w.Outdent();
        w.Raw("}");
        w.Line($"kdsl_fence_proxy_async();  // the codes went through the generic proxy; wgmma reads shared memory through the async one");
        w.Line($"kdsl_bar_sync({N.QueryQuantizeBarrier} + cg, 128);  // the warpgroup's 64 rows are all written before its first wgmma reads them");
    }
}

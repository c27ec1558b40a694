using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The KvStatistics family's CUDA: K's channel mean and V's channel scale over all tokens, from one read of K and V
/// together spread over many blocks (docs/PERF_NOTES.md §10). The partials kernel gives each block one slice of
/// SliceTokens tokens of one (batch, head); the combine kernel adds the slices in slice order within groups of SliceGroup, then the groups. Every sum is a rounded
/// float32 add in a fixed order, so the CPU reference (QuantizeReference with MeanSliceTokens) repeats the mean bit for bit.
/// </summary>
public static class KvStatisticsKernelWriter
{
    public static string Write(KvStatisticsPlan plan)
    {
        var spec = plan.Spec;
        var (d, t, cpr, lanes, slice) = (plan.HeadDim, plan.Threads, plan.ChunksPerRow, plan.Lanes, plan.SliceTokens);
        var w = new CodeWriter();
        CudaPrelude.Write(w, spec,
            $"K and V, {spec.Input.CudaName()} [B, H, S, {d}] each (any strides for B, H, S; channels contiguous), read once together →",
            $"K's channel mean [B·H][{d}] float32 and V's channel scale [B·H][{d}] (absmax / {plan.LargestVCode}, 1 where that is 0), over all S tokens.",
            $"{t} threads per block; kernels in launch order: {plan.PartialsSymbol}, {plan.CombineSymbol}.",
            "The partials kernel adds the number of NaN/Inf elements of K and of V to *k_nonfinite and *v_nonfinite (unless null).");
        PtxHelpers.Write(w, [PtxHelper.IntMath, PtxHelper.Global16, PtxHelpers.ToFloatHelper(spec.Input)], []);
        w.Line();
        // The Quantize family's reading, counting and scale helpers as that family writes them: V's scale is rounded
        // exactly as the per-operand kernels round it, so the codes kernels see the same scales.
        var helpers = QuantizeKernelWriter.HelpersFor(spec, spec.Input, subtractChannelMean: false, spec.VOutput, transposed: true);
        helpers.WriteReadHelpers(w);
        helpers.WriteScaleHelpers(w);
        WriteCombineHelper(w, d);
        w.Line();

        w.Line($"// One block per (batch·head, slice of {slice} tokens): blockIdx.x = bh · slices + slice. Thread t reads chunk t % {cpr}");
        w.Line($"// (8 channels) of the slice's tokens t / {cpr}, + {lanes}, + {2 * lanes}, ... of K and of V. K: each lane adds its tokens in token order,");
        w.Line($"// then the {lanes} lane sums are added in lane order. V: the absmax, exact in any order. partials holds K's sums");
        w.Line($"// [parts][{d}] then V's maxima [parts][{d}], parts = B·H·slices.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({t})");
        KernelSignatureWriter.WriteDeclaration(w, plan.PartialsSymbol, plan.Partials);
        w.Raw("{");
        w.Indent();
        {
            w.Line($"__shared__ float lane_sum[{lanes}][{d}];");
            w.Line($"__shared__ float lane_max[{lanes}][{d}];");
            w.Line($"const int slices = (S + {slice - 1}) / {slice};");
            w.Line($"const int bh = blockIdx.x / slices, s0 = (blockIdx.x % slices) * {slice};");
            w.Line($"const int b = bh / heads, h = bh % heads;");
            w.Line($"const int rows = kdsl_min({slice}, S - s0);");
            w.Line($"const u16* const ks = k + b * k_stride_b + h * k_stride_h + s0 * k_stride_s;");
            w.Line($"// V may be absent (null): K's mean alone, for a mode that reads V as it is and counts nothing. Uniform over the grid.");
            w.Line($"const bool with_v = v != 0;");
            w.Line($"const u16* const vs = with_v ? v + b * v_stride_b + h * v_stride_h + s0 * v_stride_s : v;");
            WriteSlicePartials(w, plan, KvStatisticsPlan.LoadsInFlight, "blockIdx.x");
        }
        w.Outdent();
        w.Raw("}");
        w.Line();

        w.Line($"// One thread per (batch·head, channel): the slices' K sums added in slice order within groups of {KvStatisticsPlan.SliceGroup}, the groups in order, then one division by S; the");
        w.Line($"// slices' V maxima → the channel's scale. Consecutive threads read consecutive channels of each slice.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({t})");
        KernelSignatureWriter.WriteDeclaration(w, plan.CombineSymbol, plan.Combine);
        w.Raw("{");
        w.Indent();
        {
            w.Line($"const long long i = (long long)blockIdx.x * {t} + threadIdx.x;");
            w.Line($"if (i >= (long long)parts / slices * {d}) return;");
            w.Line($"const long long bh = i / {d}, c = i % {d};");
            w.Line($"const float* const k_part = partials + bh * slices * {d} + c;");
            w.Line($"const float* const v_part = k_part + (long long)parts * {d};");
            w.Line($"float total = 0.0f, amax = 0.0f;");
            w.Block($"for (int g = 0; g < slices; g += {KvStatisticsPlan.SliceGroup})", () =>
            {
                w.Line($"float group_sum, group_max;");
                w.Line($"kdsl_combine_rows(k_part, v_part, g, kdsl_min({KvStatisticsPlan.SliceGroup}, slices - g), group_sum, group_max);");
                w.Line($"total = __fadd_rn(total, group_sum);");
                w.Line($"amax = fmaxf(amax, group_max);");
            });
            WriteChannelStatistics(w, "i", "kdsl_scale_of");
        }
        w.Outdent();
        w.Raw("}");
        return w.ToString();
    }
    /// <summary>
    /// One slice's K sums and V maxima, in the order the CPU reference repeats: each lane adds its tokens in token order,
    /// then the lanes are added in lane order; the result is part <paramref name="part"/> of partials. Needs in scope: rows,
    /// ks and vs (the slice's first token of K and V), with_v, k_nonfinite, v_nonfinite and the shared lane_sum and
    /// lane_max. Ends with the block's NaN/Inf report.
    /// </summary>
    /// <param name="parts">The name of the partials' count, declared by the caller; null: declared here as the grid's size.</param>
    /// <param name="inFlight">Tokens whose loads a thread issues before it adds any (the adds keep token order either way).</param>
    internal static void WriteSlicePartials(CodeWriter w, KvStatisticsPlan plan, int inFlight, string part, string? parts = null)
    {
        var (d, t, cpr, lanes, slice) = (plan.HeadDim, plan.Threads, plan.ChunksPerRow, plan.Lanes, plan.SliceTokens);
        inFlight = System.Math.Min(inFlight, (slice + lanes - 1) / lanes);
        w.Line($"const int chunk = threadIdx.x % {cpr}, lane = threadIdx.x / {cpr};");
        w.Line($"int k_bad = 0, v_bad = 0;");
        w.Block($"if (lane < {lanes})", () =>
        {
            w.Line($"float sum[8] = {{0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f}};");
            w.Line($"float amax[8] = {{0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f}};");
            w.Line($"// {inFlight} tokens' K and V loads are issued before any is reduced (one at a time leaves DRAM idle); the adds keep token order.");
            w.Block($"for (int r = lane; r < rows; r += {inFlight * lanes})", () =>
            {
                w.Line($"u32 k_raw[{inFlight}][4], v_raw[{inFlight}][4];");
                w.Line($"#pragma unroll");
                w.Block($"for (int u = 0; u < {inFlight}; ++u)", () =>
                {
                    w.Line($"if (r + u * {lanes} >= rows) continue;");
                    w.Line($"kdsl_ld16(ks + (r + u * {lanes}) * k_stride_s + chunk * 8, k_raw[u]);");
                    w.Line($"if (with_v) kdsl_ld16(vs + (r + u * {lanes}) * v_stride_s + chunk * 8, v_raw[u]);");
                });
                w.Line($"u32 k_any = 0u, v_any = 0u;  // nonzero once a token here holds a NaN or Inf");
                w.Line($"#pragma unroll");
                w.Block($"for (int u = 0; u < {inFlight}; ++u)", () =>
                {
                    w.Line($"if (r + u * {lanes} >= rows) continue;  // continue, not break: a loop left early is not unrolled, and the raw arrays would go to local memory");
                    w.Line($"k_any |= kdsl_nonfinite_any8(k_raw[u]);");
                    w.Line($"float kv[8];");
                    w.Line($"kdsl_unpack8(k_raw[u], kv);");
                    w.Line($"#pragma unroll");
                    w.Line($"for (int j = 0; j < 8; ++j) sum[j] = __fadd_rn(sum[j], kv[j]);");
                    w.Block($"if (with_v)", () =>
                    {
                        w.Line($"v_any |= kdsl_nonfinite_any8(v_raw[u]);");
                        w.Line($"float vv[8];");
                        w.Line($"kdsl_unpack8(v_raw[u], vv);");
                        w.Line($"#pragma unroll");
                        w.Line($"for (int j = 0; j < 8; ++j) amax[j] = fmaxf(amax[j], fabsf(vv[j]));");
                    });
                });
                w.Line($"// Rare: these tokens hold a NaN or Inf, so count them one value at a time.");
                w.Block($"if ((k_any | v_any) != 0u)", () =>
                {
                    w.Line($"#pragma unroll");
                    w.Block($"for (int u = 0; u < {inFlight}; ++u)", () =>
                    {
                        w.Line($"if (r + u * {lanes} >= rows) continue;");
                        w.Line($"k_bad += kdsl_nonfinite8(k_raw[u]);");
                        w.Line($"if (with_v) v_bad += kdsl_nonfinite8(v_raw[u]);");
                    });
                });
            });
            w.Line($"#pragma unroll");
            w.Line($"for (int j = 0; j < 8; ++j) {{ lane_sum[lane][chunk * 8 + j] = sum[j]; lane_max[lane][chunk * 8 + j] = amax[j]; }}");
        });
        w.Line($"// Every thread reaches these (the counts' warp vote needs all 32 lanes).");
        w.Line($"kdsl_report_nonfinite(k_nonfinite, k_bad);");
        w.Line($"kdsl_report_nonfinite(v_nonfinite, v_bad);");
        w.Line($"__syncthreads();");
        if (parts is null)
        {
            w.Line($"const long long parts = (long long)gridDim.x;");
        }
        w.Block($"for (int c = threadIdx.x; c < {d}; c += {t})", () =>
        {
            w.Line($"float total = 0.0f, amax = 0.0f;");
            w.Block($"for (int i = 0; i < {lanes}; ++i)", () =>
            {
                w.Line($"total = __fadd_rn(total, lane_sum[i][c]);");
                w.Line($"amax = fmaxf(amax, lane_max[i][c]);");
            });
            w.Line($"partials[(long long){part} * {d} + c] = total;");
            w.Line($"partials[({parts ?? "parts"} + {part}) * {d} + c] = amax;");
        });
    }

    /// <summary>
    /// kdsl_combine_rows: rows [first, first + count) of K's [rows][D] sums added in row order and V's maxima maxed, read
    /// from L2 (other blocks wrote them). The mean's slices are combined in groups of <see cref="KvStatisticsPlan.SliceGroup"/>:
    /// the slices of a group in order, then the groups in order, so a single pass can combine each group as it completes.
    /// </summary>
    internal static void WriteCombineHelper(CodeWriter w, int headDim)
    {
        w.Raw($$"""
            // 4 bytes at the L2 (the .cg path skips L1, which other SMs' writes do not update).
            static __device__ __forceinline__ float kdsl_ld_cg(const float* p)
            {
                float v;
                asm volatile("ld.global.cg.f32 %0, [%1];\n" : "=f"(v) : "l"(p) : "memory");
                return v;
            }
            static __device__ __forceinline__ void kdsl_combine_rows(const float* k_rows, const float* v_rows, int first, int count, float& sum, float& amax)
            {
                sum = 0.0f;
                amax = 0.0f;
                // 8 rows' loads in flight before their adds, then the adds in row order.
                for (int base = first; base < first + count; base += 8)
                {
                    float k_row[8], v_row[8];
                    #pragma unroll
                    for (int i = 0; i < 8; ++i)
                    {
                        if (base + i >= first + count) continue;
                        k_row[i] = kdsl_ld_cg(k_rows + (long long)(base + i) * {{headDim}});
                        v_row[i] = kdsl_ld_cg(v_rows + (long long)(base + i) * {{headDim}});
                    }
                    #pragma unroll
                    for (int i = 0; i < 8; ++i)
                    {
                        if (base + i >= first + count) continue;
                        sum = __fadd_rn(sum, k_row[i]);
                        amax = fmaxf(amax, v_row[i]);
                    }
                }
            }
            """);
    }


    /// <summary>
    /// A channel's mean and V scale from its total and absmax (in scope as total and amax), written at <paramref name="at"/>:
    /// one division by S, and <paramref name="scaleOf"/> (the V codes' absmax → scale). The two-pass combine and the single
    /// pass's head finish both write it, so their bits agree.
    /// </summary>
    internal static void WriteChannelStatistics(CodeWriter w, string at, string scaleOf)
    {
        w.Line($"k_mean[{at}] = __fdiv_rn(total, (float)S);");
        w.Line($"v_scale[{at}] = {scaleOf}(amax);");
    }
}

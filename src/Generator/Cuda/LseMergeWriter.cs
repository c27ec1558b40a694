using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>The LseMerge family's CUDA module.</summary>
public static class LseMergeWriter
{
    public static string WriteCuda(LseMergeSpec spec)
    {
        var w = new CodeWriter();
        var d = spec.HeadDim;
        var warps = spec.Threads / 32;
        CudaPrelude.Write(w, spec,
            $"Split-KV merge, head dim {d}: lse = log Σ exp(lse_i), O = Σ exp(lse_i − lse)·O_i over the partials; one warp per query row.",
            "A partial whose LSE is −∞ saw no key and weighs nothing; a row no partial saw gets O = 0 and LSE = −∞.");
        PtxHelpers.Write(w, [PtxHelper.F16Convert, PtxHelper.SoftmaxMath, PtxHelper.Global16], []);
        w.Line();
        w.Line($"extern \"C\" __global__ void __launch_bounds__({spec.Threads})");
        w.Block($"{spec.KernelPrefix}({new LseMergePlan(spec).Signature.CudaParameters})", () =>
        {
            w.Line($"const int lane = threadIdx.x & 31;");
            w.Line($"const long long row = (long long)blockIdx.x * {warps} + (threadIdx.x >> 5);");
            w.Line($"if (row >= rows) return;");
            w.Line($"float m = -KDSL_INF;");
            w.Line($"for (int p = 0; p < partials; ++p) m = fmaxf(m, partial_lse[p * rows + row]);");
            w.Line($"// Weights relative to the largest LSE, so nothing overflows; in exp2 with log2 e folded in.");
            w.Line($"float sum = 0.f;");
            w.Line($"if (m != -KDSL_INF)");
            w.Line($"    for (int p = 0; p < partials; ++p) sum += kdsl_exp2((partial_lse[p * rows + row] - m) * 1.44269504f);");
            w.Line($"const float inv_sum = sum > 0.f ? 1.f / sum : 0.f;");
            w.Line($"#pragma unroll");
            w.Block($"for (int c = lane * 8; c < {d}; c += 256)", () =>
            {
                w.Line($"float acc[8] = {{0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}};");
                w.Block($"for (int p = 0; p < partials && sum > 0.f; ++p)", () =>
                {
                    w.Line($"const float weight = kdsl_exp2((partial_lse[p * rows + row] - m) * 1.44269504f) * inv_sum;");
                    w.Line($"if (weight == 0.f) continue;  // also skips a −∞ partial, whose O may be anything");
                    w.Line($"u32 x[4];");
                    w.Line($"kdsl_ld16(partial_o + (p * rows + row) * {d} + c, x);");
                    w.Line($"#pragma unroll");
                    w.Line($"for (int i = 0; i < 8; ++i) acc[i] += weight * kdsl_f16_to_f32((u16)(x[i >> 1] >> (16 * (i & 1))));");
                });
                w.Line($"u32 y[4];");
                w.Line($"#pragma unroll");
                w.Line($"for (int i = 0; i < 4; ++i) y[i] = (u32)kdsl_f32_to_f16(acc[2 * i]) | ((u32)kdsl_f32_to_f16(acc[2 * i + 1]) << 16);");
                w.Line($"kdsl_st16(O + row * {d} + c, y[0], y[1], y[2], y[3]);");
            });
            w.Line($"if (lane == 0) lse[row] = sum > 0.f ? m + kdsl_log2(sum) * 0.69314718f : -KDSL_INF;");
        });
        return w.ToString();
    }
}

using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The KvSinglePass family's CUDA: the KvStatistics partials and the KvCodes tiles in one kernel, from one read of K and V
/// (docs/PERF_NOTES.md §15). Each block takes a ticket (its slice, in the order blocks start), copies the slice's K and V
/// into shared memory with cp.async, writes the slice's partial statistics, and arrives at its group of slices and its
/// head: the last arrival of a group combines the group, the last group of a head combines the head and raises the head's
/// flag. Every block of the head waits for that flag, then writes its codes from shared memory. The statistics and the
/// codes are the two-pass families' own sections (<see cref="KvStatisticsKernelWriter"/>, <see cref="KvCodesKernelWriter"/>),
/// so the mean, the scales and the codes equal theirs bit for bit.
/// </summary>
public static class KvSinglePassKernelWriter
{
    /// <summary>Shared-memory loads a statistics lane issues before adding: few, since their latency is short and registers are not.</summary>
    private const int SharedLoadsInFlight = 2;

    public static string Write(KvSinglePassPlan plan)
    {
        var spec = plan.Spec;
        var statistics = plan.Statistics;
        var codes = plan.Codes;
        var (d, t, slice, cpr, group, tile) = (plan.HeadDim, plan.Threads, plan.SliceTokens, plan.ChunksPerRow, KvSinglePassPlan.SliceGroup, codes.Tile);
        var lanes = statistics.Lanes;
        var w = new CodeWriter();
        var vLayout = spec.VTransposed
            ? $"[B][H][{d}][s_pad] (s_pad = S rounded up to {spec.TransposePad}, tokens in {spec.TransposedOrder} order, padding zero)"
            : $"[B][H][S][{d}]";
        CudaPrelude.Write(w, spec,
            $"K and V, {spec.Input.CudaName()} [B, H, S, {d}] each (any strides for B, H, S; channels contiguous), read once →",
            $"K's channel mean and V's channel scale [B·H][{d}] float32 (absmax / {statistics.LargestVCode}), K int8 [B][H][S][{d}] of k − mean with one scale per {tile} tokens,",
            $"and V {(spec.VOutput == Element.E4M3 ? "e4m3" : "int8")} {vLayout}. {t} threads and {plan.SliceBytes} bytes of dynamic shared memory per block,",
            $"one block per (batch·head, slice of {slice} tokens); kernel: {plan.Symbol}. sync must be zero at launch.");
        KvCodesKernelWriter.WriteHelpers(w, plan.Codes, [PtxHelper.SharedAddress, PtxHelper.CpAsync]);
        // V's scale as the statistics pass writes it (its own largest code), beside K's int8 kdsl_scale_of.
        QuantizeKernelWriter.HelpersFor(spec, spec.Input, subtractChannelMean: false, spec.VOutput, transposed: true).WriteScaleOf(w, "kdsl_v_scale_of");
        KvStatisticsKernelWriter.WriteCombineHelper(w, d);
        w.Raw($$"""
            struct __align__(16) kdsl_chunk { u32 x, y, z, w; };
            // Chunk c (8 channels) of token r of a slice: rows are swizzled so that one chunk of consecutive tokens spans the banks.
            static __device__ __forceinline__ void kdsl_lds16(const kdsl_chunk* slice, int r, int c, u32 (&w)[4])
            {
                const kdsl_chunk x = slice[r * {{cpr}} + (c ^ (r & {{KvSinglePassPlan.Swizzle}}))];
                w[0] = x.x; w[1] = x.y; w[2] = x.z; w[3] = x.w;
            }
            static __device__ __forceinline__ unsigned int kdsl_ld_acquire(const unsigned int* p)
            {
                unsigned int v;
                asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
                return v;
            }
            static __device__ __forceinline__ void kdsl_st_release(unsigned int* p, unsigned int v)
            {
                asm volatile("st.release.gpu.global.u32 [%0], %1;\n" :: "l"(p), "r"(v) : "memory");
            }
            static __device__ __forceinline__ void kdsl_nanosleep(unsigned int ns) { asm volatile("nanosleep.u32 %0;\n" :: "r"(ns)); }
            """);
        w.Line();

        w.Line($"// sync: [0] the ticket; then each (bh, group)'s arrivals [B·H·groups]; each bh's groups closed [B·H]; each bh's flag [B·H].");
        w.Line($"// partials: the slices' K sums [parts][{d}] and V maxima [parts][{d}], then the groups' K sums [B·H·groups][{d}] and V maxima.");
        w.Line($"// A block waits only for blocks of its own (batch, head), whose tickets are consecutive: the launcher keeps a head's");
        w.Line($"// slices within half of what the device holds at once, so they are all resident, or will be, while the rest drain.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({t})");
        KernelSignatureWriter.WriteDeclaration(w, plan.Symbol, plan.Signature);
        w.Raw("{");
        w.Indent();
        {
            w.Line($"extern __shared__ __align__(16) kdsl_chunk kv_slice[];  // K's slice [{slice}][{cpr}] chunks, then V's");
            w.Line($"__shared__ float lane_sum[{lanes}][{d}];");
            w.Line($"__shared__ float lane_max[{lanes}][{d}];");
            w.Line($"__shared__ float mean_s[{d}];");
            w.Line($"__shared__ int work_s, last_s;");
            KvCodesKernelWriter.WriteTileState(w, codes);
            w.Line($"if (threadIdx.x == 0) work_s = (int)atomicAdd(sync, 1u);");
            w.Line($"__syncthreads();");
            w.Line($"const int work = work_s;  // the slice, in the order blocks start: a head's slices start together");
            w.Line($"const int slices = (S + {slice - 1}) / {slice}, groups = (slices + {group - 1}) / {group};");
            w.Line($"const int bh = work / slices, slice = work % slices, first = slice * {slice};");
            w.Line($"const int b = bh / heads, h = bh % heads;");
            w.Line($"const int rows = kdsl_min({slice}, S - first);");
            w.Line($"const long long all_parts = (long long)gridDim.x, heads_all = all_parts / slices;");
            w.Line($"const u16* const ks = k + b * k_stride_b + h * k_stride_h;");
            w.Line($"const u16* const vs = v + b * v_stride_b + h * v_stride_h;");
            w.Line($"const kdsl_chunk* const k_slice = kv_slice;");
            w.Line($"const kdsl_chunk* const v_slice = kv_slice + {slice * cpr};");
            w.Line();
            w.Line($"// The slice's K and V into shared memory, every copy in flight at once (cp.async holds no registers).");
            w.Block($"for (int e = threadIdx.x; e < rows * {cpr}; e += {t})", () =>
            {
                w.Line($"const int r = e / {cpr}, c = e % {cpr}, at = r * {cpr} + (c ^ (r & {KvSinglePassPlan.Swizzle}));");
                w.Line($"kdsl_cp_async_16(kdsl_smem(k_slice + at), ks + (long long)(first + r) * k_stride_s + c * 8, 16);");
                w.Line($"kdsl_cp_async_16(kdsl_smem(v_slice + at), vs + (long long)(first + r) * v_stride_s + c * 8, 16);");
            });
            w.Line($"kdsl_cp_async_commit();");
            w.Line($"kdsl_cp_async_wait<0>();");
            w.Line($"__syncthreads();");
            w.Line();
            w.Line($"// The slice's partial statistics, as the statistics pass's partials kernel writes them.");
            w.Raw("{  // its own scope: the statistics' lane and chunk are not the codes'");
            w.Indent();
            w.Line($"const bool with_v = true;");
            KvStatisticsKernelWriter.WriteSlicePartials(w, statistics,
                new KvStatisticsKernelWriter.SliceSource((tensor, row, target) => $"kdsl_lds16({tensor}_slice, {row}, chunk, {target});", SharedLoadsInFlight), "work");
            w.Outdent();
            w.Raw("}");
            w.Line();
            w.Line($"// Arrive: the last slice of a group adds the group's slices in order; the last group of a head adds the groups,");
            w.Line($"// writes the mean and the scales, and raises the head's flag.");
            w.Line($"float* const group_partials = partials + 2 * all_parts * {d};");
            w.Line($"unsigned int* const closed = sync + 1 + heads_all * groups;");
            w.Line($"unsigned int* const ready = closed + heads_all;");
            w.Line($"const int g = slice / {group}, in_group = kdsl_min({group}, slices - g * {group});");
            w.Line($"__threadfence();  // this block's partials, before its arrival");
            w.Line($"__syncthreads();");
            w.Line($"if (threadIdx.x == 0) last_s = atomicAdd(sync + 1 + (long long)bh * groups + g, 1u) == (unsigned int)(in_group - 1);");
            w.Line($"__syncthreads();");
            w.Block($"if (last_s)", () =>
            {
                w.Line($"__threadfence();");
                w.Block($"for (int c = threadIdx.x; c < {d}; c += {t})", () =>
                {
                    w.Line($"float sum, amax;");
                    w.Line($"kdsl_combine_rows(partials + (long long)bh * slices * {d} + c, partials + (all_parts + (long long)bh * slices) * {d} + c, g * {group}, in_group, sum, amax);");
                    w.Line($"group_partials[((long long)bh * groups + g) * {d} + c] = sum;");
                    w.Line($"group_partials[((heads_all + bh) * groups + g) * {d} + c] = amax;");
                });
                w.Line($"__threadfence();");
                w.Line($"__syncthreads();");
                w.Line($"if (threadIdx.x == 0) last_s = atomicAdd(closed + bh, 1u) == (unsigned int)(groups - 1);");
                w.Line($"__syncthreads();");
                w.Block($"if (last_s)", () =>
                {
                    w.Line($"__threadfence();");
                    w.Block($"for (int c = threadIdx.x; c < {d}; c += {t})", () =>
                    {
                        w.Line($"float total, amax;");
                        w.Line($"kdsl_combine_rows(group_partials + (long long)bh * groups * {d} + c, group_partials + (heads_all + bh) * groups * {d} + c, 0, groups, total, amax);");
                        w.Line($"k_mean[(long long)bh * {d} + c] = __fdiv_rn(total, (float)S);");
                        w.Line($"v_scale[(long long)bh * {d} + c] = kdsl_v_scale_of(amax);");
                    });
                    w.Line($"__threadfence();");
                    w.Line($"__syncthreads();");
                    w.Line($"if (threadIdx.x == 0) kdsl_st_release(ready + bh, 1u);");
                });
            });
            w.Line($"if (threadIdx.x == 0) while (kdsl_ld_acquire(ready + bh) == 0u) kdsl_nanosleep(100);");
            w.Line($"__syncthreads();");
            w.Block($"for (int c = threadIdx.x; c < {d}; c += {t})", () =>
            {
                w.Line($"mean_s[c] = kdsl_ld_cg(k_mean + (long long)bh * {d} + c);");
                w.Line($"inv[c] = kdsl_inv_of(kdsl_ld_cg(v_scale + (long long)bh * {d} + c));");
            });
            w.Line($"__syncthreads();  // mean_s and inv, before any tile reads them");
            w.Line();
            w.Line($"// The codes, tile by tile, from the shared slice{(spec.VTransposed ? " (the last slice also writes the padding's zero codes)" : "")}.");
            w.Line($"const int end = kdsl_min(first + {slice}, {(spec.VTransposed ? "s_pad" : "S")});");
            w.Block($"for (int s0 = first; s0 < end; s0 += {tile})", () =>
            {
                w.Line($"const int tile = s0 / {tile};");
                w.Line($"const int rows = kdsl_min({tile}, S - s0);{(spec.VTransposed ? "  // at most 0 in a tile of padding alone" : "")}");
                KvCodesKernelWriter.WriteTile(w, codes, new KvCodesKernelWriter.TileSource(
                    (tensor, row, channel, target) => $"kdsl_lds16({tensor}_slice, s0 - first + {row}, ({channel}) / 8, {target});",
                    channel => $"mean_s[{channel}]"));
                w.Line($"__syncthreads();  // warp_max{(spec.VTransposed ? " and the staged tile are" : " is")} rewritten by the next tile");
            });
        }
        w.Outdent();
        w.Raw("}");
        return w.ToString();
    }
}

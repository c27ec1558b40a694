using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The KvSinglePass family's CUDA: the KvStatistics partials and the KvCodes tiles in one launch, so that DRAM serves K
/// and V once and the codes' second read comes from L2 (docs/PERF_NOTES.md §15). Each block takes a ticket in the order
/// blocks start; the tickets interleave a head's statistics blocks with the codes blocks of the head <c>lead</c> heads
/// before it. A statistics block writes its slice's partials and arrives at its group of
/// slices and its head: the last arrival of a group combines the group, the last group of a head combines the head and
/// raises the head's flag. It never waits. A codes block waits for its head's flag, which only statistics blocks with
/// smaller tickets (started before it) raise, so the launch cannot deadlock however few blocks are resident. The codes
/// re-read K and V from L2 where the lead keeps a head's read and re-read within what L2 holds (runs 79–80: with a lead of
/// one device-full of statistics blocks they did not, and the launch was slower than the two passes; PERF_NOTES §15). The
/// statistics and the codes are the two-pass families' own sections (<see cref="KvStatisticsKernelWriter"/>,
/// <see cref="KvCodesKernelWriter"/>), so the mean, the scales and the codes equal theirs bit for bit.
/// </summary>
public static class KvSinglePassKernelWriter
{
    public static string Write(KvSinglePassPlan plan)
    {
        var spec = plan.Spec;
        var statistics = plan.Statistics;
        var codes = plan.Codes;
        var (d, t, slice, group, tile) = (plan.HeadDim, plan.Threads, plan.SliceTokens, KvStatisticsPlan.SliceGroup, codes.Tile);
        var lanes = statistics.Lanes;
        var w = new CodeWriter();
        var vLayout = spec.VTransposed
            ? $"[B][H][{d}][s_pad] (s_pad = S rounded up to {spec.TransposePad}, tokens in {spec.TransposedOrder} order, padding zero)"
            : $"[B][H][S][{d}]";
        CudaPrelude.Write(w, spec,
            $"K and V, {spec.Input.CudaName()} [B, H, S, {d}] each (any strides for B, H, S; channels contiguous) →",
            $"K's channel mean and V's channel scale [B·H][{d}] float32 (absmax / {statistics.LargestVCode}), K int8 [B][H][S][{d}] of k − mean with one scale per {tile} tokens,",
            $"and V {(spec.VOutput == Element.E4M3 ? "e4m3" : "int8")} {vLayout}. {t} threads per block; per (batch·head), one statistics block per slice of {slice} tokens",
            $"and one codes block per tile of {tile} tokens; kernel: {plan.Symbol}. sync must be zero at launch.");
        KvCodesKernelWriter.WriteHelpers(w, plan.Codes, []);
        // e4m3 V's scale (absmax / 448) beside K's int8 kdsl_scale_of; int8 V's is K's.
        var vScaleOf = spec.VOutput == Element.E4M3 ? "kdsl_v_scale_of" : "kdsl_scale_of";
        if (spec.VOutput == Element.E4M3)
        {
            QuantizeKernelWriter.HelpersFor(spec, spec.Input, subtractChannelMean: false, spec.VOutput, transposed: true).WriteScaleOf(w, vScaleOf);
        }
        KvStatisticsKernelWriter.WriteCombineHelper(w, d);
        w.Raw("""
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

        w.Line($"// Tickets: the statistics of heads 0 .. lead − 1; then, for each later head h, its statistics followed by the codes of");
        w.Line($"// head h − lead; then the codes of the last lead heads. sync: [0] the ticket; each (bh, group)'s arrivals [B·H·groups];");
        w.Line($"// each bh's closed groups [B·H]; each bh's flag [B·H]. partials: the slices' K sums [B·H·slices][{d}] and V maxima, then");
        w.Line($"// the groups' K sums [B·H·groups][{d}] and V maxima.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({t}, {KvSinglePassPlan.MinBlocksPerSm})");
        KernelSignatureWriter.WriteDeclaration(w, plan.Symbol, plan.Signature);
        w.Raw("{");
        w.Indent();
        {
            w.Line($"__shared__ float lane_sum[{lanes}][{d}];");
            w.Line($"__shared__ float lane_max[{lanes}][{d}];");
            w.Line($"__shared__ float mean_s[{d}];");
            w.Line($"__shared__ int work_s, last_s;");
            KvCodesKernelWriter.WriteTileState(w, codes);
            w.Line($"if (threadIdx.x == 0) work_s = (int)atomicAdd(sync, 1u);");
            w.Line($"__syncthreads();");
            w.Line($"if (work_s >= (int)gridDim.x) __trap();  // sync was not zeroed: a wrong ticket would write past the buffers and wait forever");
            w.Line($"const int slices = (S + {slice - 1}) / {slice}, groups = (slices + {group - 1}) / {group};");
            w.Line($"const int tiles = ({(spec.VTransposed ? "s_pad" : "S")} + {tile - 1}) / {tile};");
            w.Line($"const int heads_all = gridDim.x / (slices + tiles);");
            w.Line($"unsigned int* const closed = sync + 1 + (long long)heads_all * groups;");
            w.Line($"unsigned int* const ready = closed + heads_all;");
            w.Line($"// The ticket's role: statistics of (bh, slice), or codes of (bh, tile).");
            w.Line($"long long rest = work_s;");
            w.Line($"int bh, index;");
            w.Line($"bool stats;");
            w.Block($"if (rest < (long long)lead * slices)", () =>
            {
                w.Line($"stats = true; bh = (int)(rest / slices); index = (int)(rest % slices);");
            }, close: "}");
            w.Block($"else if ((rest -= (long long)lead * slices) < (long long)(heads_all - lead) * (slices + tiles))", () =>
            {
                w.Line($"const int round = (int)(rest / (slices + tiles)), at = (int)(rest % (slices + tiles));");
                w.Line($"stats = at < slices;");
                w.Line($"bh = stats ? lead + round : round;");
                w.Line($"index = stats ? at : at - slices;");
            }, close: "}");
            w.Block($"else", () =>
            {
                w.Line($"rest -= (long long)(heads_all - lead) * (slices + tiles);");
                w.Line($"stats = false; bh = heads_all - lead + (int)(rest / tiles); index = (int)(rest % tiles);");
            });
            w.Line($"const int b = bh / heads, h = bh % heads;");
            w.Line();
            w.Block($"if (stats)", () =>
            {
                w.Line($"// A slice's partial statistics, as the statistics pass's partials kernel writes them.");
                w.Line($"const int slice = index, s0 = slice * {slice};");
                w.Line($"const int rows = kdsl_min({slice}, S - s0);");
                w.Line($"const u16* const ks = k + b * k_stride_b + h * k_stride_h + s0 * k_stride_s;");
                w.Line($"const u16* const vs = v + b * v_stride_b + h * v_stride_h + s0 * v_stride_s;");
                w.Line($"const bool with_v = true;");
                w.Line($"const int part = bh * slices + slice;");
                w.Line($"const long long parts = (long long)heads_all * slices;");
                KvStatisticsKernelWriter.WriteSlicePartials(w, statistics, plan.LoadsInFlight, "part", "parts");
                w.Line();
                w.Line($"// Arrive: the last slice of a group adds the group's slices in order; the last group of a head adds the groups,");
                w.Line($"// writes the mean and the scales, and raises the head's flag.");
                w.Line($"float* const group_partials = partials + 2 * parts * {d};");
                w.Line($"const int g = slice / {group}, in_group = kdsl_min({group}, slices - g * {group});");
                w.Line($"__threadfence();  // this block's partials, before its arrival");
                w.Line($"__syncthreads();");
                w.Line($"if (threadIdx.x == 0) last_s = atomicAdd(sync + 1 + (long long)bh * groups + g, 1u) == (unsigned int)(in_group - 1);");
                w.Line($"__syncthreads();");
                w.Line($"if (!last_s) return;");
                w.Line($"__threadfence();");
                w.Block($"for (int c = threadIdx.x; c < {d}; c += {t})", () =>
                {
                    w.Line($"float sum, amax;");
                    w.Line($"kdsl_combine_rows(partials + (long long)bh * slices * {d} + c, partials + (parts + (long long)bh * slices) * {d} + c, g * {group}, in_group, sum, amax);");
                    w.Line($"group_partials[((long long)bh * groups + g) * {d} + c] = sum;");
                    w.Line($"group_partials[((long long)(heads_all + bh) * groups + g) * {d} + c] = amax;");
                });
                w.Line($"__threadfence();");
                w.Line($"__syncthreads();");
                w.Line($"if (threadIdx.x == 0) last_s = atomicAdd(closed + bh, 1u) == (unsigned int)(groups - 1);");
                w.Line($"__syncthreads();");
                w.Line($"if (!last_s) return;");
                w.Line($"__threadfence();");
                w.Block($"for (int c = threadIdx.x; c < {d}; c += {t})", () =>
                {
                    w.Line($"float total, amax;");
                    w.Line($"kdsl_combine_rows(group_partials + (long long)bh * groups * {d} + c, group_partials + (long long)(heads_all + bh) * groups * {d} + c, 0, groups, total, amax);");
                    KvStatisticsKernelWriter.WriteChannelStatistics(w, $"(long long)bh * {d} + c", vScaleOf);
                });
                w.Line($"__threadfence();");
                w.Line($"__syncthreads();");
                w.Line($"if (threadIdx.x == 0) kdsl_st_release(ready + bh, 1u);");
                w.Line($"return;");
            });
            w.Line();
            w.Line($"// A codes block: its head's statistics, then the tile, read again (from L2, {KvSinglePassPlan.LeadWhy}).");
            w.Line($"if (threadIdx.x == 0) while (kdsl_ld_acquire(ready + bh) == 0u) kdsl_nanosleep(200);");
            w.Line($"__syncthreads();");
            w.Block($"for (int c = threadIdx.x; c < {d}; c += {t})", () =>
            {
                w.Line($"mean_s[c] = kdsl_ld_cg(k_mean + (long long)bh * {d} + c);");
                w.Line($"inv[c] = kdsl_inv_of(kdsl_ld_cg(v_scale + (long long)bh * {d} + c));");
            });
            w.Line($"const int tile = index, s0 = tile * {tile};");
            w.Line($"const int rows = kdsl_min({tile}, S - s0);{(spec.VTransposed ? "  // at most 0 in a tile of padding alone" : "")}");
            w.Line($"const u16* const ks = k + b * k_stride_b + h * k_stride_h;");
            w.Line($"const u16* const vs = v + b * v_stride_b + h * v_stride_h;");
            w.Line($"__syncthreads();  // mean_s and inv, before the tile reads them");
            KvCodesKernelWriter.WriteTile(w, codes, channel => $"mean_s[{channel}]");
        }
        w.Outdent();
        w.Raw("}");
        return w.ToString();
    }
}

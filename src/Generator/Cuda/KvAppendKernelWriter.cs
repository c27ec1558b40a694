using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The KvCacheAppend family's CUDA: one block per (work item, KV head, K or V); a work item is one page that a sequence's
/// new tokens touch. The block gathers the page's originals (the staged ones of a partial page, then the new ones),
/// requantizes the whole page and writes its codes and statistics. The float steps are the Quantize family's own helpers
/// (written by <see cref="QuantizeKernelWriter"/>) in an order the CPU reference (KvCacheQuantization) repeats bit for bit.
/// A second kernel only counts the new tokens' NaN and Inf, for the cache's check before an append.
/// </summary>
public static class KvAppendKernelWriter
{
    public static string Write(KvAppendPlan plan)
    {
        var spec = plan.Spec;
        var (d, ps, t, cpr) = (plan.HeadDim, plan.PageSize, plan.Threads, plan.ChunksPerRow);
        var convert = PtxHelpers.ToFloat(spec.Input);
        var w = new CodeWriter();
        CudaPrelude.Write(w, spec,
            $"Paged INT8 KV cache append, {spec.Input.CudaName()} input, head dim {d}, pages of {ps} tokens (docs/KV_CACHE.md).",
            $"Per page and KV head: K codes int8 [{ps}][{d}] of k − mean with one scale, K mean float [{d}]; V codes int8 [{ps}][{d}], V scale float [{d}].",
            "Slots past a page's last token hold code 0. The staging buffers keep the originals of each sequence's last, partial page.");
        PtxHelpers.Write(w, [PtxHelper.IntMath, PtxHelper.Global16, PtxHelpers.ToFloatHelper(spec.Input), PtxHelper.WarpReduce], []);
        w.Line();
        // The Quantize family's helpers as that family writes them (kdsl_scale_of, kdsl_inv_of, kdsl_quant, kdsl_st8,
        // kdsl_unpack8; K is centred with kdsl_prep's subtraction, QuantizeKernelWriter.Unscaled): the cache rounds exactly
        // as the prefill's quantize kernels do.
        QuantizeKernelWriter.HelpersFor(spec, spec.Input, subtractChannelMean: true).WriteHelpers(w);
        w.Line();
        w.Line($"// One block per (work item, KV head, K or V). Work item fields, {KvAppendPlan.ItemFields.Count} ints: {string.Join(", ", KvAppendPlan.ItemFields)}.");
        w.Line($"// The page's slots [0, start) come from the staging slot, [start, fill) from rows source, source + 1, ... of the new tokens.");
        w.Line($"// The block of a sequence's first touched page is the only one that reads its staging slot; after reading, it writes");
        w.Line($"// slots [stage_from, stage_to) of that slot from rows stage_source, ...: the originals of the sequence's new partial page.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({t})");
        KernelSignatureWriter.WriteDeclaration(w, plan.AppendSymbol, plan.Signature);
        w.Raw("{");
        w.Indent();
        {
            w.Line($"struct __align__(16) kdsl_chunk {{ u32 x, y, z, w; }};");
            w.Line($"__shared__ __align__(16) u16 page[{ps} * {d}];  // the page's originals, token-major");
            w.Line($"__shared__ float channel[{d}];                 // K: the page's channel mean; V: 1 / scale of each channel");
            w.Line($"__shared__ float warp_max[{plan.Warps}];");
            w.Line($"const int* const item = work + (long long)blockIdx.x * {KvAppendPlan.ItemFields.Count};");
            w.Line($"const int page_id = item[0], start = item[1], fill = item[2], source = item[3], slot = item[4];");
            w.Line($"const int stage_from = item[5], stage_to = item[6], stage_source = item[7];");
            w.Line($"const int h = blockIdx.y;");
            w.Line($"const bool is_v = blockIdx.z != 0;");
            w.Line($"const u16* const x = is_v ? v_new : k_new;");
            w.Line($"u16* const staged = (is_v ? v_staging : k_staging) + ((long long)slot * heads_kv + h) * {ps * d};");
            w.Line($"s8* const codes = (is_v ? v_codes : k_codes) + ((long long)page_id * heads_kv + h) * {ps * d};");
            w.Line($"const long long stats = ((long long)page_id * heads_kv + h) * {d};");
            w.Line();
            w.Line($"// Gather: 8 channels (16 bytes) per load. A new token's row of head h lands in one page, so this block is the only");
            w.Line($"// one that counts it; staged originals were counted when they were appended, and the staging rewrite below counts nothing.");
            w.Line($"int n_nonfinite = 0;");
            w.Block($"for (int e = threadIdx.x; e < fill * {cpr}; e += {t})", () =>
            {
                w.Line($"const int r = e / {cpr}, c = (e % {cpr}) * 8;");
                w.Line($"u32 raw[4];");
                w.Line($"kdsl_ld16(r < start ? staged + r * {d} + c : x + ((long long)(source + r - start) * heads_kv + h) * {d} + c, raw);");
                w.Line($"if (r >= start) n_nonfinite += kdsl_nonfinite8(raw);");
                w.Line($"*(kdsl_chunk*)(page + r * {d} + c) = kdsl_chunk{{raw[0], raw[1], raw[2], raw[3]}};");
            });
            w.Line($"kdsl_report_nonfinite(nonfinite == 0 ? nonfinite : nonfinite + blockIdx.z, n_nonfinite);  // K's counter, then V's");
            w.Line($"__syncthreads();  // every staged read is done: the staging slot may now be rewritten");
            w.Block($"for (int e = threadIdx.x; e < (stage_to - stage_from) * {cpr}; e += {t})", () =>
            {
                w.Line($"const int r = stage_from + e / {cpr}, c = (e % {cpr}) * 8;");
                w.Line($"u32 raw[4];");
                w.Line($"kdsl_ld16(x + ((long long)(stage_source + r - stage_from) * heads_kv + h) * {d} + c, raw);");
                w.Line($"kdsl_st16(staged + r * {d} + c, raw[0], raw[1], raw[2], raw[3]);");
            });
            w.Line();
            w.Block($"if (!is_v)", () =>
            {
                w.Line($"// K mean: channel c's tokens added in token order in float32, then one division by the page's token count.");
                w.Block($"for (int c = threadIdx.x; c < {d}; c += {t})", () =>
                {
                    w.Line($"float sum = 0.0f;");
                    w.Line($"for (int r = 0; r < fill; ++r) sum = __fadd_rn(sum, {convert}(page[r * {d} + c]));");
                    w.Line($"const float mean = __fdiv_rn(sum, (float)fill);");
                    w.Line($"channel[c] = mean;");
                    w.Line($"k_mean[stats + c] = mean;");
                });
                w.Line($"__syncthreads();");
                w.Line($"// One scale per page: absmax of k − mean over the page's tokens (max is exact in any order).");
                w.Line($"float amax = 0.0f;");
                w.Block($"for (int e = threadIdx.x; e < fill * {cpr}; e += {t})", () =>
                {
                    WriteUnpack(w, d, cpr);
                    w.Line($"#pragma unroll");
                    w.Line($"for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf({QuantizeKernelWriter.Unscaled("v[j]", "channel[c + j]")}));");
                });
                w.Line($"amax = kdsl_warp_max(amax);");
                w.Line($"if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = amax;");
                w.Line($"__syncthreads();");
                w.Line($"amax = warp_max[0];");
                w.Line($"#pragma unroll");
                w.Line($"for (int i = 1; i < {plan.Warps}; ++i) amax = fmaxf(amax, warp_max[i]);");
                w.Line($"const float scale = kdsl_scale_of(amax), inv = kdsl_inv_of(scale);");
                w.Line($"if (threadIdx.x == 0) k_scale[(long long)page_id * heads_kv + h] = scale;");
                WriteCodes(w, d, ps, t, cpr, QuantizeKernelWriter.Unscaled("v[j]", "channel[c + j]"), "inv");
            }, close: "}");
            w.Block($"else", () =>
            {
                w.Line($"// V: one scale per channel over the page's tokens.");
                w.Block($"for (int c = threadIdx.x; c < {d}; c += {t})", () =>
                {
                    w.Line($"float amax = 0.0f;");
                    w.Line($"for (int r = 0; r < fill; ++r) amax = fmaxf(amax, fabsf({convert}(page[r * {d} + c])));");
                    w.Line($"const float scale = kdsl_scale_of(amax);");
                    w.Line($"channel[c] = kdsl_inv_of(scale);");
                    w.Line($"v_scale[stats + c] = scale;");
                });
                w.Line($"__syncthreads();");
                WriteCodes(w, d, ps, t, cpr, "v[j]", "channel[c + j]");
            });
        }
        w.Outdent();
        w.Raw("}");
        w.Line();
        WriteCount(w, plan);
        return w.ToString();
    }

    /// <summary>The count-only kernel: every 16-byte chunk of the new K (blockIdx.y = 0) or V (1), grid-strided, nothing written.</summary>
    private static void WriteCount(CodeWriter w, KvAppendPlan plan)
    {
        var t = plan.Threads;
        w.Line($"// The new tokens' NaN/Inf count alone, before an append that must change nothing when a value is bad: k_new and v_new");
        w.Line($"// read as flat arrays of 16-byte chunks, K's count added to nonfinite[0] and V's to nonfinite[1].");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({t})");
        KernelSignatureWriter.WriteDeclaration(w, plan.CountSymbol, plan.CountSignature);
        w.Raw("{");
        w.Indent();
        w.Line($"const u16* const x = blockIdx.y != 0 ? v_new : k_new;");
        w.Line($"int n_nonfinite = 0;");
        w.Block($"for (long long e = (long long)blockIdx.x * {t} + threadIdx.x; e < chunks; e += (long long)gridDim.x * {t})", () =>
        {
            w.Line($"u32 raw[4];");
            w.Line($"kdsl_ld16(x + e * 8, raw);");
            w.Line($"n_nonfinite += kdsl_nonfinite8(raw);");
        });
        w.Line($"kdsl_report_nonfinite(nonfinite + blockIdx.y, n_nonfinite);");
        w.Outdent();
        w.Raw("}");
    }

    /// <summary>Token r's channels c to c + 7 of the shared page, widened into v.</summary>
    private static void WriteUnpack(CodeWriter w, int d, int cpr)
    {
        w.Line($"const int r = e / {cpr}, c = (e % {cpr}) * 8;");
        w.Line($"const kdsl_chunk q = *(const kdsl_chunk*)(page + r * {d} + c);");
        w.Line($"const u32 raw[4] = {{q.x, q.y, q.z, q.w}};");
        w.Line($"float v[8];");
        w.Line($"kdsl_unpack8(raw, v);");
    }

    /// <summary>Every slot of the page: codes of its tokens, 0 past the last, 8 channels per 8-byte store.</summary>
    private static void WriteCodes(CodeWriter w, int d, int ps, int t, int cpr, string value, string inverse)
    {
        w.Line($"// Codes of every slot, 0 past the page's last token, so a reader of whole pages sees defined values.");
        w.Block($"for (int e = threadIdx.x; e < {ps * cpr}; e += {t})", () =>
        {
            w.Line($"u32 lo = 0, hi = 0;");
            w.Block($"if (e < fill * {cpr})", () =>
            {
                WriteUnpack(w, d, cpr);
                w.Line($"#pragma unroll");
                w.Line($"for (int j = 0; j < 4; ++j) lo |= kdsl_byte(kdsl_quant({value}, {inverse}), 8 * j);");
                w.Line($"#pragma unroll");
                w.Line($"for (int j = 4; j < 8; ++j) hi |= kdsl_byte(kdsl_quant({value}, {inverse}), 8 * (j - 4));");
            });
            w.Line($"kdsl_st8(codes + (e / {cpr}) * {d} + (e % {cpr}) * 8, lo, hi);");
        });
    }
}

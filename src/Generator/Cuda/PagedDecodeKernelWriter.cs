using System.Globalization;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The PagedDecode family's CUDA: a decode kernel over the paged INT8 cache and the merge of its splits.
/// <para>
/// Decode: one block per (KV head × row tile, split, sequence). A row tile is 16 rows of (query token, query head of the
/// KV head's group), so GQA's heads share every K and V byte a block reads. The block quantizes its Q rows to int8 (one
/// scale per row, the prefill's quantize helpers), then each warp walks its own pages of the split's contiguous range —
/// page w, w + warps, ... — through its own cp.async stages with its own online softmax: no block barrier inside the
/// key loop. Per page: S = Q·Kᵀ on int8 MMAs, score = (qscale·kscale·S + q·mean)·σ·log₂e, P rounded to u8 (×255) in the
/// S accumulators' π key order, P·V on u8·s8 MMAs with V through ldmatrix.trans + prmt, each page's int32 product times
/// its channel scales into float O. At the end the warps merge through shared memory and the block writes its split's
/// normalized O and LSE.
/// </para>
/// <para>
/// Queries come per sequence as running totals (cuQueries), so one launch serves decode steps (1 to 16 tokens) and
/// chunked prefill (a chunk's tokens attending to the cache, which already holds them): causal is bottom-right.
/// </para>
/// <para>
/// Modifiers (a [ScoreModifier] or [MaskModifier] of a type around the declaration) see each row's absolute position in
/// its sequence as q (length − n + j), the key's as k, the sequence's index in the batch as b and the query head as h. The
/// score modifier gets the natural-log score σ·q·k and its result is scaled by log₂e, as the prefill kernels do. The mask
/// ANDs with causal; its block classifier bounds the pages a tile visits (the splits share only those), and a page it
/// shows whole runs without per-score mask code.
/// </para>
/// <para>
/// Merge: one warp per output row combines the splits by their LSE and writes O in the declared element (and LSE). With
/// one split the decode kernel writes O and LSE itself, bit for bit what the merge would, and the merge is not launched.
/// </para>
/// </summary>
public static class PagedDecodeKernelWriter
{
    public const string DecodeSuffix = "_decode";
    public const string MergeSuffix = "_merge";

    /// <summary>Warps (output rows) per block of the merge kernel.</summary>
    public const int MergeWarps = 4;

    /// <summary>Splits whose LSE and O a merge lane loads before adding the first.</summary>
    private const int MergeSplitsInFlight = 8;

    public static string Write(PagedDecodePlan plan)
    {
        var spec = plan.Spec;
        var d = plan.HeadDim;
        var composition = plan.ComposeV();
        if (!composition.Succeeded)
        {
            throw new System.InvalidOperationException("The decode kernel's V program does not feed its P·V MMA: " + string.Join(" ", composition.Errors));
        }
        var w = new CodeWriter();
        CudaPrelude.Write(w, spec,
        [
            $"Paged INT8 KV cache decode attention, {spec.Input.CudaName()} Q and O, head dim {d}, pages of {plan.PageSize} tokens (docs/KV_CACHE.md).",
            $"Split-KV: a block per (KV head × 16-row tile of (query token, grouped query head), split, sequence); {plan.Warps} warps, each with its own pages,",
            $"{plan.Stages} cp.async stages and online softmax. S = Q·Kᵀ on {plan.Qk.Ptx}, P (×{plan.PScale}, π key order) · V on {plan.Pv.Ptx},",
            $"V through ldmatrix.trans + prmt; {plan.SharedMemoryBytes} bytes of shared memory. The merge kernel combines the splits by LSE (one split: the decode kernel writes O).",
            .. new[] { spec.Score, spec.Mask }.OfType<ModifierSpec>().Select(m =>
                $"{(m.Kind == ModifierKind.Score ? "Score modifier" : "Mask")} C# {m.DeclaringType.Replace("global::", "")}.{m.MethodName}, with q and k the positions in the cache."),
        ]);
        var convert = PtxHelpers.ToFloatHelper(spec.Input);
        var helpers = new[] { PtxHelper.IntMath, PtxHelper.SoftmaxMath, convert, PtxHelper.HalfPack, PtxHelper.BytePack, PtxHelper.WarpReduce, PtxHelper.FloatBias, PtxHelper.GridDependency }
            .Concat(PagedDecodePlan.Atoms.SelectMany(PtxHelpers.For));
        PtxHelpers.Write(w, helpers, [plan.Qk, plan.Pv]);
        w.Raw("""
            // One float (the page's K scale) beside the page's 16-byte copies.
            static __device__ __forceinline__ void kdsl_cp_async_4(u32 dst, const void* src)
            {
                asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" :: "r"(dst), "l"(src) : "memory");
            }
            """);
        w.Line();
        // The Quantize family's helpers as that family writes them: Q rounds to int8 exactly as the prefill's Q does.
        QuantizeKernelWriter.HelpersFor(spec, spec.Input, subtractChannelMean: false).WriteHelpers(w);
        w.Line();
        w.Line($"// ---- Shared-memory layouts ----");
        LayoutWriter.Write(w, plan.Layout(Operand.Q), PagedDecodePlan.Rows, d);
        LayoutWriter.Write(w, plan.Layout(Operand.K), plan.StageKeys, d);
        LayoutWriter.Write(w, plan.Layout(Operand.V), plan.StageKeys, d);
        ModifierWriter.WriteModifiers(w, spec.Score, spec.Mask);
        w.Line();
        new DecodeWriter(plan, composition.Channels!, w).Write();
        w.Line();
        WriteMerge(w, plan);
        return w.ToString();
    }

    /// <summary>A lane's channels of a row, as Q's loads and the split merge access them.</summary>
    private static ChannelVector LaneVector(PagedDecodePlan plan) => new(plan.LaneChannels, plan.PackPairHelper);

    private static void WriteMerge(CodeWriter w, PagedDecodePlan plan)
    {
        var d = plan.HeadDim;
        var lane = LaneVector(plan);
        var perLane = lane.Channels;
        w.Line($"// Split-KV merge: one warp per output row; lse = log Σ exp(lse_s), O = Σ exp(lse_s − lse)·O_s over the splits (each O_s");
        w.Line($"// normalized). A split that saw no key has LSE −∞ and weighs nothing. Rows are [Σ queries][heads_q], Q's order.");
        w.Line($"// Four blocks a SM are enough: with that bound ptxas keeps a group's loads ahead of their adds (with the default one it");
        w.Line($"// sank each split's loads to just before its adds, to save registers).");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({32 * MergeWarps}, 4)");
        KernelSignatureWriter.WriteDeclaration(w, plan.Spec.KernelPrefix + MergeSuffix, plan.MergeSignature);
        w.Raw("{");
        w.Indent();
        {
            w.Line($"// Launched as a programmatic dependent of the decode kernel (sm_90): resident early, it reads the splits once that kernel has ended.");
            w.Line($"kdsl_wait_prerequisite();");
            w.Line($"const int lane = threadIdx.x & 31;");
            w.Line($"const long long row = (long long)blockIdx.x * {MergeWarps} + (threadIdx.x >> 5);");
            w.Line($"if (row >= rows) return;");
            var vector = lane.Float;
            w.Line($"// The splits' LSE, one a lane, 32 splits a round trip (a split at a time, unrolled by 8, took two round trips for");
            w.Line($"// 16 splits), then the warp's maximum: the same maximum in any order.");
            w.Line($"float m = -KDSL_INF;");
            w.Line($"#pragma unroll 1");
            w.Line($"for (int s = lane; s < splits; s += 32) m = fmaxf(m, partial_lse[(long long)s * rows + row]);");
            w.Line($"m = kdsl_warp_max(m);");
            w.Line($"float sum = 0.f, acc[{perLane}];");
            w.Line($"#pragma unroll");
            w.Line($"for (int i = 0; i < {perLane}; ++i) acc[i] = 0.f;");
            w.Block($"if (m != -KDSL_INF)", () =>
            {
                w.Line($"// The splits' loads do not depend on each other: eight splits' LSE and O go out before the first is added (one at a");
                w.Line($"// time cost a memory latency a split, 7.5 µs for 16 splits at B = 1 in run 82). A lane's {perLane} channels are one");
                w.Line($"// {vector} (partial_o is 16-byte aligned, checked by the launcher); the LSE come again from the L1.");
                w.Block($"for (int s0 = 0; s0 < splits; s0 += {MergeSplitsInFlight})", () =>
                {
                    w.Line($"float split_lse[{MergeSplitsInFlight}];");
                    w.Line($"{vector} v[{MergeSplitsInFlight}];");
                    w.Line($"#pragma unroll");
                    w.Block($"for (int j = 0; j < {MergeSplitsInFlight}; ++j)", () =>
                    {
                        w.Line($"const int s = kdsl_min(s0 + j, splits - 1);  // past the last split: its loads again, weighed 0 below");
                        w.Line($"split_lse[j] = partial_lse[(long long)s * rows + row];");
                        w.Line($"v[j] = *(const {vector}*)(partial_o + ((long long)s * rows + row) * {d} + lane * {perLane});");
                    });
                    w.Line($"#pragma unroll");
                    w.Block($"for (int j = 0; j < {MergeSplitsInFlight}; ++j)", () =>
                    {
                        w.Line($"const float weight = s0 + j < splits ? kdsl_exp2((split_lse[j] - m) * 1.44269504f) : 0.f;  // 0 for a −∞ split");
                        w.Line($"// A select, not a branch: a split of weight 0 leaves acc as it was (its O may be NaN), and the others add one");
                        w.Line($"// FMA each, in split order: the old loop's rounding, bit for bit.");
                        w.Line($"const float x[{perLane}] = {{{string.Join(", ", lane.Fields.Select(f => "v[j]." + f))}}};");
                        w.Line($"sum += weight;");
                        w.Line($"#pragma unroll");
                        w.Line($"for (int i = 0; i < {perLane}; ++i) {{ const float added = fmaf(weight, x[i], acc[i]); acc[i] = weight == 0.f ? acc[i] : added; }}");
                    });
                });
            });
            w.Line($"const float inv = sum > 0.f ? 1.f / sum : 0.f;");
            var scaled = Enumerable.Range(0, perLane).Select(i => $"acc[{i}] * inv").ToArray();
            w.Line($"*({lane.Halves}*)(o + row * {d} + lane * {perLane}) = {lane.PackHalves(scaled)};{(perLane == 4 ? "  // output is 8-byte aligned, checked by the launcher" : "")}");
            w.Line($"if (lse != 0 && lane == 0) lse[row] = sum > 0.f ? m + kdsl_log2(sum) * 0.693147181f : -KDSL_INF;");
        }
        w.Outdent();
        w.Raw("}");
    }

    /// <summary>The decode kernel, one method per section.</summary>
    private sealed class DecodeWriter(PagedDecodePlan plan, ChannelMap channels, CodeWriter w)
    {
        private readonly int _d = plan.HeadDim;
        private readonly int _warps = plan.Warps;
        private readonly int _stages = plan.Stages;
        private readonly ModifierSpec? _score = plan.Spec.Score;
        private readonly ModifierSpec? _mask = plan.Spec.Mask;
        private readonly ChannelVector _lane = LaneVector(plan);
        /// <summary>The block merge's four channels a thread.</summary>
        private readonly ChannelVector _quad = new(4, plan.PackPairHelper);
        private static string Float(double x) => x.ToString("G9", CultureInfo.InvariantCulture) + "f";

        /// <summary>What S·qscale·kscale + q·mean is scaled by: σ·log₂e, or σ alone when a score modifier takes the natural-log score.</summary>
        private string ScoreScale => _score is null ? "score_log2" : "score_unit";

        /// <summary>
        /// A modifier's call for score (jt, e) of the lane: its row's head and position (row_h, row_q) against
        /// <paramref name="key"/>, the float key position being the lane's first key converted once plus the score's offset.
        /// </summary>
        private static string Call(ModifierSpec modifier, string key, string? score = null) => ModifierWriter.Call(modifier,
            new ModifierWriter.ModifierSite("b", "row_h[e >> 1]", "row_q[e >> 1]", key,
                QueryFloat: "(float)row_q[e >> 1]", KeyFloat: "((float)(key0 + 2 * t) + (float)(8 * jt + (e & 1)))"), score);

        /// <summary>The mask's block classifier for the lane's row group over keys [<paramref name="first"/>, min(first + span, length)).</summary>
        private static string KeyClass(ModifierSpec mask, string first, int span) =>
            $"kdsl_mask_block({string.Join(", ", new[] { "b", "mask_h", "mask_q_lo", "mask_q_hi", first, $"kdsl_min({first} + {span}, length) - 1" }.Concat(ModifierWriter.RuntimeArgumentNames(mask)))})";

        /// <summary>
        /// Q's rows, loaded: warp w takes rows w, w + warps, ...; lane l holds channels LaneChannels·l onwards, read as
        /// one vector into registers (converted only where they are quantized). They go out as soon as the batch's totals
        /// are known, before the page index is read and before the first page's copies: queued behind every block's first
        /// pages (64 KB a block), Q came back only once those had streamed in, 5–6 µs into a 9 µs block at B = 1, 4k (run 89's
        /// block timeline); each row's loads one after another had cost a DRAM latency a row before that (run 86).
        /// </summary>
        private void WriteQueryLoads()
        {
            var d = _d;
            var rows = PagedDecodePlan.Rows / _warps;
            var perLane = plan.LaneChannels;
            w.Line($"// Q: warp w quantizes rows w + {_warps}·i, i < {rows}: one scale per row (absmax / 127), codes kdsl_quant. Lane l holds");
            w.Line($"// channels {perLane}·l to {perLane}·l + {perLane - 1}. The rows' loads go out now, ahead of every page copy of the block.");
            w.Line($"{_lane.Halves} q_raw[{rows}];");
            w.Line($"#pragma unroll");
            w.Block($"for (int i = 0; i < {rows}; ++i)", () =>
            {
                w.Line($"const int p = tile * 16 + warp + {_warps} * i, pr = kdsl_min(p, packed - 1);  // a padding row reads row packed − 1 (in Q) and keeps 0");
                w.Line($"q_raw[i] = *(const {_lane.Halves}*)(queries + ((long long)(q_first + pr / group) * heads_q + kv_head * group + pr % group) * {d} + {perLane} * lane);");
            });
        }

        /// <summary>Q's loaded rows quantized into shared memory: codes (swizzled), floats for q·mean, and each row's scale.</summary>
        private void WriteQueryQuantize()
        {
            var d = _d;
            var rows = PagedDecodePlan.Rows / _warps;
            var perLane = plan.LaneChannels;
            var convert = PtxHelpers.ToFloat(plan.Spec.Input);
            w.Line($"#pragma unroll");
            w.Block($"for (int i = 0; i < {rows}; ++i)", () =>
            {
                w.Line($"const int r = warp + {_warps} * i, p = tile * 16 + r;");
                w.Line($"float x[{perLane}];");
                for (var j = 0; j < perLane; j++)
                {
                    w.Line($"x[{j}] = p < packed ? {convert}((u16)({_lane.Pair("q_raw[i]", j / 2)}{(j % 2 == 0 ? "" : " >> 16")})) : 0.f;");
                }
                w.Line($"float amax = 0.f;");
                w.Line($"#pragma unroll");
                w.Line($"for (int j = 0; j < {perLane}; ++j) amax = fmaxf(amax, fabsf(x[j]));");
                w.Line($"amax = kdsl_warp_max(amax);");
                w.Line($"const float scale = kdsl_scale_of(amax), inv = kdsl_inv_of(scale);");
                w.Line($"u32 codes = 0u;");
                w.Line($"#pragma unroll");
                w.Line($"for (int j = 0; j < {perLane}; ++j) codes |= (u32)(u8)kdsl_quant(x[j], inv) << (8 * j);");
                w.Line($"// {perLane} codes in one 16-byte chunk of the swizzled row, so adjacent after the swizzle: one store, as the floats.");
                var (codeType, codes) = perLane == 4 ? ("u32", "codes") : ("u16", "(u16)codes");
                w.Line($"*({codeType}*)&sq[{LayoutWriter.FunctionName(Operand.Q)}(r, {perLane} * lane)] = {codes};");
                w.Line($"*({_lane.Float}*)&qf[r * {d} + {perLane} * lane] = {_lane.MakeFloat(Enumerable.Range(0, perLane).Select(j => $"x[{j}]"))};");
                w.Line($"if (lane == 0) q_scale[r] = scale;");
            });
        }

        /// <summary>The page of the split's step <paramref name="step"/> (steps count StepsPerPage a page).</summary>
        private string PageOf(string step) => plan.StepsPerPage == 1 ? step : $"({step}) / {plan.StepsPerPage}";

        /// <summary>Which part of its page step <paramref name="step"/> holds: 0, or 0 and 1 for half-page stages.</summary>
        private string PartOf(string step) => plan.StepsPerPage == 1 ? "0" : $"({step}) % {plan.StepsPerPage}";

        /// <summary>The copies of step <paramref name="step"/> into the stage at <paramref name="stage"/>.</summary>
        /// <param name="page">The step's page when already read (the loop's one-ahead register), else read here.</param>
        private string LoadStep(string stage, string step, string? page = null) =>
            $"kdsl_load_stage({stage}, k_codes, v_codes, k_mean, v_scale, k_scale, (long long){page ?? $"pages[{PageOf(step)}]"} * heads_kv + kv_head, {PartOf(step)}, lane)";

        public void Write()
        {
            WritePageLoader();
            w.Line();
            w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads}, 1)");
            KernelSignatureWriter.WriteDeclaration(w, plan.Spec.KernelPrefix + DecodeSuffix, plan.Signature);
            w.Raw("{");
            w.Indent();
            WritePrologue();
            WriteQuery();
            WriteKeyLoop();
            WriteBlockMerge();
            w.Outdent();
            w.Raw("}");
        }

        private void WritePageLoader()
        {
            var d = _d;
            var chunks = plan.StageCodeBytes / 16 / 32;
            w.Line($"// Keys [part·{plan.StageKeys}, part·{plan.StageKeys} + {plan.StageKeys}) of one page of one KV head into a warp's stage: K and V codes (swizzled,");
            w.Line($"// {plan.StageCodeBytes} bytes each), the page's K mean and V scales (float [{d}] each) and K scale. head_page = page · heads_kv + KV");
            w.Line($"// head, a page the host checked. Called by one warp.");
            w.Block($"static __device__ __forceinline__ void kdsl_load_stage(u8* stage, const s8* k_codes, const s8* v_codes, const float* k_mean, const float* v_scale, const float* k_scale, long long head_page, int part, int tid)", () =>
            {
                w.Line($"const s8* const k = k_codes + head_page * {plan.PageBytes} + part * {plan.StageCodeBytes};");
                w.Line($"const s8* const v = v_codes + head_page * {plan.PageBytes} + part * {plan.StageCodeBytes};");
                // One conversion to the shared window for the stage: per copy, it was an opaque asm block (and its 64-bit
                // add) that the compiler could not share, about a tenth of a page's instructions (docs/PERF_NOTES.md §17f).
                w.Line($"const u32 s = kdsl_smem(stage);");
                TileCopyWriter.WriteWholeChunks(w, "kdsl_cp_async_16", plan.Layout(Operand.K), "s", 32, chunks, d, "k", d, smemIsAddress: true);
                TileCopyWriter.WriteWholeChunks(w, "kdsl_cp_async_16", plan.Layout(Operand.V), $"s + {plan.StageCodeBytes}", 32, chunks, d, "v", d, smemIsAddress: true);
                w.Line($"#pragma unroll");
                w.Block($"for (int c = tid; c < {d / 4}; c += 32)", () =>
                {
                    w.Line($"kdsl_cp_async_16(s + {plan.KMeanOffset} + 16 * c, k_mean + head_page * {d} + 4 * c, 16);");
                    w.Line($"kdsl_cp_async_16(s + {plan.VScaleOffset} + 16 * c, v_scale + head_page * {d} + 4 * c, 16);");
                });
                w.Line($"if (tid == 0) kdsl_cp_async_4(s + {plan.KScaleOffset}, k_scale + head_page);");
            });
        }

        private void WritePrologue()
        {
            var d = _d;
            w.Line($"// The merge kernel (launched as this one's programmatic dependent) may be scheduled now, its launch hidden behind this kernel.");
            w.Line($"kdsl_launch_dependents();");
            w.Line($"extern __shared__ __align__({PagedDecodePlan.StageAlignment}) u8 kdsl_shared[];");
            w.Line($"u8* const sq = kdsl_shared;                                       // Q codes [16][{d}], swizzled");
            w.Line($"float* const qf = (float*)(kdsl_shared + {plan.QFloatOffset});    // Q [16][{d}] as float, for q·mean");
            w.Line($"float* const q_scale = (float*)(kdsl_shared + {plan.QScaleOffset});  // each row's Q scale");
            w.Line($"u8* const stages = kdsl_shared + {plan.StagesOffset};             // per warp: {_stages} × {plan.StageBytes} bytes");
            w.Line($"const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;");
            w.Line($"const int split = blockIdx.y, splits = gridDim.y, b = blockIdx.z, batch = gridDim.z;");
            w.Line($"// The host-checked copy of the batch: page table rows, lengths, then the query tokens' running totals. Only");
            w.Line($"// pages below the length's count are read.");
            w.Line($"const int* const pages = work + (long long)b * table_pages;");
            w.Line($"const int length = work[(long long)batch * table_pages + b];");
            w.Line($"const int* const cu_q = work + (long long)batch * (table_pages + 1);");
            w.Line($"const int q_first = cu_q[b], q_count = cu_q[b + 1] - q_first;");
            w.Line($"// The grid has the row tiles of the sequence with the most queries; a sequence with fewer leaves the rest idle.");
            w.Line($"const int group = heads_q / heads_kv, packed = q_count * group, row_tiles = gridDim.x / heads_kv;");
            w.Line($"const int kv_head = blockIdx.x / row_tiles, tile = blockIdx.x % row_tiles;");
            w.Line($"if (tile * 16 >= packed) return;  // the whole block: no barrier is waited on");
            WriteQueryLoads();
            w.Line($"const int sequence_pages = (length + {plan.PageSize - 1}) / {plan.PageSize};");
            if (_mask is { } mask)
            {
                WriteMaskRange(mask);
            }
            else
            {
                w.Line($"// This split's pages [first_page, end_page): contiguous, balanced to within one page.");
                w.Line($"const int first_page = (int)((long long)split * sequence_pages / splits);");
                w.Line($"const int end_page = (int)((long long)(split + 1) * sequence_pages / splits);");
            }
            w.Line($"const long long rows = (long long)cu_q[batch] * heads_q;");
            w.Line($"// Tile row r is packed row p = 16·tile + r: query token q_first + p / group, query head kv_head·group + p % group,");
            w.Line($"// output row (q_first + p / group)·heads_q + kv_head·group + p % group; rows past packed are padding, never written.");
        }

        /// <summary>
        /// The pages a masked tile visits: those from the first to the last page the mask's block classifier does not hide
        /// from the tile's rows, below the tile's last causal key. Every warp's lanes split the pages (each lane's row group is
        /// fixed: 32 is a multiple of the groups) and every warp finds the same range; the splits then share that range, so
        /// pages outside it (older than a sliding window) are never loaded and no split is left with none while another has many.
        /// </summary>
        private void WriteMaskRange(ModifierSpec mask)
        {
            var (ps, groups) = (plan.PageSize, plan.MaskRowGroups);
            w.Line($"// The mask's pages for this tile. q is a position in the cache: the sequence's query token j is at length − q_count + j.");
            w.Line($"const int q_position = length - q_count;");
            if (groups == 1)
            {
                w.Line($"// The mask never reads h: the classifier is asked about the tile's query tokens, all of them, against a page's keys.");
                w.Line($"const int row_first = tile * 16, row_last = kdsl_min(tile * 16 + 15, packed - 1);");
            }
            else
            {
                w.Line($"// The mask reads h: the classifier is asked about each row, one (q, h) pair; lane l asks about row l % 16.");
                w.Line($"const int row_first = kdsl_min(tile * 16 + lane % 16, packed - 1), row_last = row_first;");
            }
            w.Line($"const int mask_q_lo = q_position + row_first / group, mask_q_hi = q_position + row_last / group, mask_h = kv_head * group + row_first % group;");
            w.Line($"// No page past the tile's last causal key is visible; of the others, the splits share those from the first the mask");
            w.Line($"// shows to the last. Pages outside are never loaded: a sliding window reads only its own pages.");
            w.Line($"const int causal_pages = kdsl_min(sequence_pages, (q_position + kdsl_min(tile * 16 + 15, packed - 1) / group) / {ps} + 1);");
            w.Line($"int mask_first = causal_pages, mask_last = -1;");
            w.Block($"for (int page = lane{(groups == 1 ? "" : $" / {groups}")}; page < causal_pages; page += {32 / groups})", () =>
                w.Line($"if ({KeyClass(mask, $"page * {ps}", ps)} != KDSL_BLOCK_SKIP) {{ mask_first = kdsl_min(mask_first, page); mask_last = page; }}"));
            w.Line($"const int range_first = __reduce_min_sync(0xffffffffu, mask_first), range_last = __reduce_max_sync(0xffffffffu, mask_last);");
            w.Line($"const int range_pages = range_last < range_first ? 0 : range_last + 1 - range_first;");
            w.Line($"// This split's pages [first_page, end_page) of the range: contiguous, balanced to within one page.");
            w.Line($"const int first_page = range_first + (int)((long long)split * range_pages / splits);");
            w.Line($"const int end_page = range_first + (int)((long long)(split + 1) * range_pages / splits);");
        }

        private void WriteQuery()
        {
            var d = _d;
            var steps = plan.StepsPerPage;
            var (first, end) = steps == 1 ? ("first_page", "end_page") : ($"first_page * {steps}", $"end_page * {steps}");
            var which = steps == 1 ? "a page each" : $"{plan.StageKeys} keys, {steps} a page";
            w.Line($"// Each warp's steps ({which}) of the split: {first} + warp + {_warps}·n, n < my_steps. Their first copies go out");
            w.Line($"// before Q is quantized, so the two chains of dependent loads (the batch's table, then Q or a page) overlap.");
            w.Line($"u8* const my_stages = stages + warp * {_stages * plan.StageBytes};");
            w.Line($"const int my_first = {first} + warp;");
            w.Line($"const int my_steps = {end} > my_first ? ({end} - my_first + {_warps - 1}) / {_warps} : 0;");
            w.Line($"#pragma unroll");
            w.Block($"for (int st = 0; st < {_stages - 1}; ++st)", () =>
            {
                w.Line($"if (st < my_steps) {LoadStep($"my_stages + st * {plan.StageBytes}", $"my_first + st * {_warps}")};");
                w.Line($"kdsl_cp_async_commit();");
            });
            w.Line($"// The page of the step the loop loads next, read one step ahead: the loop's copies never wait for the page table.");
            w.Line($"int next_page = {_stages - 1} < my_steps ? pages[{PageOf($"my_first + {_stages - 1} * {_warps}")}] : 0;");
            w.Line();
            WriteQueryQuantize();
            w.Line($"__syncthreads();  // Q codes and floats from every warp");
            w.Line();
            w.Line($"// Q's A fragments, kept in registers for the whole loop.");
            CopyProgramWriter.WriteLaneOffsets(w, plan.QProgram, "q");
            CopyProgramWriter.WriteLaneOffsets(w, plan.KProgram, "k");
            CopyProgramWriter.WriteLaneOffsets(w, plan.VProgram, "v");
            w.Line($"u32 qa[{d / 32}][4];");
            w.Line($"#pragma unroll");
            w.Block($"for (int kk = 0; kk < {d / 32}; ++kk)", () =>
            {
                CopyProgramWriter.WriteLoad(w, plan.QProgram, "qr", $"kdsl_smem(sq) + {LayoutWriter.FunctionName(Operand.Q)}(q_row, kk * 32 + q_chunk * 16)");
                var a = plan.QProgram.Fragments[0];
                w.Line($"qa[kk][0] = qr{a[0]}; qa[kk][1] = qr{a[1]}; qa[kk][2] = qr{a[2]}; qa[kk][3] = qr{a[3]};");
            });
            if (_score is null)
            {
                w.Line($"const float score_log2 = softmax_scale * 1.44269504f;");
            }
            else
            {
                w.Line($"const float score_unit = softmax_scale;  // the score modifier takes the natural-log score σ·q·k; its result is scaled by log₂e");
            }
            w.Line($"// This lane's rows g and g + 8: their Q scales (with {(_score is null ? "σ·log₂e" : "σ")}) and the last key each may see (causal, bottom-right).");
            w.Line($"float q_scale_of[2];");
            w.Line($"int key_limit[2];");
            var modified = _score is not null || _mask is not null;
            if (modified)
            {
                w.Line($"int row_q[2], row_h[2];  // the modifiers' q (the row's position in the cache) and h; a padding row takes the last row's");
            }
            w.Line($"#pragma unroll");
            w.Block($"for (int h = 0; h < 2; ++h)", () =>
            {
                w.Line($"const int p = tile * 16 + g + 8 * h;");
                w.Line($"q_scale_of[h] = q_scale[g + 8 * h] * {ScoreScale};");
                w.Line($"key_limit[h] = kdsl_min(length, length - q_count + p / group + 1);  // keys [0, key_limit) are visible");
                if (modified)
                {
                    w.Line($"const int pr = kdsl_min(p, packed - 1);");
                    w.Line($"row_q[h] = length - q_count + pr / group;");
                    w.Line($"row_h[h] = kv_head * group + pr % group;");
                }
            });
        }

        /// <summary>
        /// An ldmatrix step's shared offset: (lane offset XOR column step) + row step where the layout factors for every
        /// lane and step (as the prefill kernel does), else the layout function of the full (row, column).
        /// </summary>
        private string Address(Operand operand, LdmatrixProgram program, string rowStep, int[] rowSteps, string colStep, int[] colSteps)
        {
            var name = operand.ToString().ToLowerInvariant();
            var layout = plan.Layout(operand);
            var origins = Enumerable.Range(0, 32).Select(l => (program.RowOf(l), 16 * program.ChunkOf(l)));
            return layout.FactorsSteps(_d, origins, rowSteps, colSteps)
                ? $"(({name}_lane ^ ({colStep})) + ({rowStep}) * {_d})"
                : $"{LayoutWriter.FunctionName(operand)}({rowStep} + {name}_row, {colStep} + {name}_chunk * 16)";
        }

        private static int[] Steps(int count, int stride) => Enumerable.Range(0, count).Select(i => i * stride).ToArray();

        private void WriteKeyLoop()
        {
            var (d, ps, sk, stages) = (_d, plan.PageSize, plan.StageKeys, _stages);
            var (qk, pv, vp, kp) = (plan.Qk, plan.Pv, plan.VProgram, plan.KProgram);
            var sTiles = sk / qk.N;
            var pvSteps = sk / pv.K;
            w.Line($"const int k_lane = {LayoutWriter.FunctionName(Operand.K)}(k_row, k_chunk * 16);");
            w.Line($"const int v_lane = {LayoutWriter.FunctionName(Operand.V)}(v_row, v_chunk * 16);");
            w.Line($"float m[2] = {{-KDSL_INF, -KDSL_INF}}, l[2] = {{0.f, 0.f}};  // running max (log2 domain); this thread's sum of the u8 P");
            w.Line($"float o[{d / 8}][4];");
            w.Line($"#pragma unroll");
            w.Line($"for (int i = 0; i < {d / 8}; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;");
            w.Line();
            w.Block($"for (int n = 0; n < my_steps; ++n)", () =>
            {
                w.Line($"kdsl_cp_async_wait<{stages - 2}>();  // this lane's copies of step n have landed");
                w.Line($"__syncwarp();                   // ...and every lane's; the stage step n − 1 used is free");
                w.Block($"if (n + {stages - 1} < my_steps)", () =>
                {
                    w.Line($"{LoadStep($"my_stages + (n + {stages - 1}) % {stages} * {plan.StageBytes}", $"my_first + (n + {stages - 1}) * {_warps}", "next_page")};");
                    w.Line($"if (n + {stages} < my_steps) next_page = pages[{PageOf($"my_first + (n + {stages}) * {_warps}")}];");
                });
                w.Line($"kdsl_cp_async_commit();");
                w.Line($"const u8* const stage = my_stages + n % {stages} * {plan.StageBytes};");
                w.Line($"const u32 k_stage = kdsl_smem(stage), v_stage = k_stage + {plan.StageCodeBytes};");
                w.Line($"const float* const mean = (const float*)(stage + {plan.KMeanOffset});");
                w.Line($"const float* const v_scale_of = (const float*)(stage + {plan.VScaleOffset});");
                w.Line($"const int step = my_first + n * {_warps};");
                var key0 = plan.StepsPerPage == 1 ? $"step * {ps}" : $"{PageOf("step")} * {ps} + {PartOf("step")} * {sk}";
                w.Line($"const int key0 = {key0};");
                if (_mask is { } mask)
                {
                    w.Line($"// A step the mask hides from every row of the tile is not computed; one it shows whole needs no per-score mask.");
                    w.Line($"const int page_class = {KeyClass(mask, "key0", sk)};");
                    w.Line($"if (__all_sync(0xffffffffu, page_class == KDSL_BLOCK_SKIP)) continue;");
                    w.Line($"const bool mask_whole = __all_sync(0xffffffffu, page_class == KDSL_BLOCK_FULL);");
                }
                w.Line();
                w.Line($"// S = Q·Kᵀ on {qk.Ptx}: tile jt holds keys 8jt..8jt+7 of the step. The accumulators start at the float bias");
                w.Line($"// (|S| ≤ 127²·{d} < 2^22), so they end as float(bias + S) and need no conversion.");
                w.Line($"static_assert(127 * 127 * {d} < (1 << 22), \"S must stay inside the float bias's exact range\");");
                w.Line($"int s[{sTiles}][4];");
                w.Line($"#pragma unroll");
                w.Line($"for (int jt = 0; jt < {sTiles}; ++jt) s[jt][0] = s[jt][1] = s[jt][2] = s[jt][3] = KDSL_FLOAT_BIAS_BITS;");
                w.Line($"#pragma unroll");
                w.Block($"for (int kk = 0; kk < {d / qk.K}; ++kk)", () =>
                {
                    w.Line($"#pragma unroll");
                    w.Block($"for (int ni = 0; ni < {sk / 16}; ++ni)", () =>
                    {
                        CopyProgramWriter.WriteLoad(w, kp, "kr", $"k_stage + {Address(Operand.K, kp, "ni * 16", Steps(sk / 16, 16), "kk * 32", Steps(d / 32, 32))}");
                        for (var tile = 0; tile < kp.Fragments.Count; tile++)
                        {
                            w.Line($"kdsl_{qk.HelperName}(s[ni * 2 + {tile}], qa[kk][0], qa[kk][1], qa[kk][2], qa[kk][3], kr{kp.Fragments[tile][0]}, kr{kp.Fragments[tile][1]});");
                        }
                    });
                });
                w.Line();
                w.Line($"// q·mean of the page: lane 2r + h sums row r's half h, starting at a lane-dependent float4 so no two lanes share a bank.");
                w.Line($"float qm = 0.f;");
                w.Line($"const float* const q_half = qf + (lane >> 1) * {d} + (lane & 1) * {d / 2};");
                w.Line($"const float* const mean_half = mean + (lane & 1) * {d / 2};");
                w.Line($"#pragma unroll");
                w.Block($"for (int j = 0; j < {d / 8}; ++j)", () =>
                {
                    w.Line($"const int c = 4 * ((j + lane) % {d / 8});");
                    w.Line($"const float4 a = *(const float4*)(q_half + c), e = *(const float4*)(mean_half + c);");
                    w.Line($"qm = fmaf(a.x, e.x, fmaf(a.y, e.y, fmaf(a.z, e.z, fmaf(a.w, e.w, qm))));");
                });
                w.Line($"qm += __shfl_xor_sync(0xffffffffu, qm, 1);");
                w.Line($"const float k_scale_page = *(const float*)(stage + {plan.KScaleOffset});");
                w.Line($"// x = (qscale·kscale·S + q·mean)·{(_score is null ? "σ·log₂e" : "σ")} = S·a + c for this lane's rows g (h = 0) and g + 8 (h = 1).");
                w.Line($"const float a0 = q_scale_of[0] * k_scale_page, a1 = q_scale_of[1] * k_scale_page;");
                w.Line($"const float c0 = __shfl_sync(0xffffffffu, qm, 2 * g) * {ScoreScale}, c1 = __shfl_sync(0xffffffffu, qm, 2 * g + 16) * {ScoreScale};");
                w.Line($"// (bias + S)·a + (c − bias·a): the bias term costs one FFMA a row; rounding c − bias·a moves x by at most one unit of S·a.");
                w.Line($"const float b0 = fmaf(-KDSL_FLOAT_BIAS, a0, c0), b1 = fmaf(-KDSL_FLOAT_BIAS, a1, c1);");
                w.Line($"float x[{sTiles}][4];");
                w.Line($"#pragma unroll");
                w.Line($"for (int jt = 0; jt < {sTiles}; ++jt) {{ x[jt][0] = fmaf(__int_as_float(s[jt][0]), a0, b0); x[jt][1] = fmaf(__int_as_float(s[jt][1]), a0, b0); x[jt][2] = fmaf(__int_as_float(s[jt][2]), a1, b1); x[jt][3] = fmaf(__int_as_float(s[jt][3]), a1, b1); }}");
                if (_score is { } score)
                {
                    w.Line($"// The score modifier on the natural-log score of each (row, key), its result in log₂ units. Keys past the length");
                    w.Line($"// are clamped into the sequence for the call; the mask below hides them.");
                    w.Line($"#pragma unroll");
                    w.Block($"for (int jt = 0; jt < {sTiles}; ++jt)", () =>
                    {
                        w.Line($"#pragma unroll");
                        w.Line($"for (int e = 0; e < 4; ++e) x[jt][e] = {Call(score, "kdsl_min(key0 + 8 * jt + 2 * t + (e & 1), length - 1)", "x[jt][e]")} * KDSL_LOG2E;");
                    });
                }
                var whole = _mask is null ? "" : "!mask_whole || ";
                w.Line($"// Keys past a row's limit (its causal edge, or the sequence's end: those slots hold code 0){(_mask is null ? "" : " or that the mask hides")} score −∞.");
                w.Block($"if ({whole}key0 + {sk} > kdsl_min(key_limit[0], key_limit[1]))", () =>
                {
                    w.Line($"#pragma unroll");
                    w.Block($"for (int jt = 0; jt < {sTiles}; ++jt)", () =>
                    {
                        w.Line($"#pragma unroll");
                        if (_mask is { } mask)
                        {
                            w.Line($"for (int e = 0; e < 4; ++e) {{ const int key = key0 + 8 * jt + 2 * t + (e & 1); if (key >= key_limit[e >> 1] || !{Call(mask, "key")}) x[jt][e] = -KDSL_INF; }}");
                        }
                        else
                        {
                            w.Line($"for (int e = 0; e < 4; ++e) if (key0 + 8 * jt + 2 * t + (e & 1) >= key_limit[e >> 1]) x[jt][e] = -KDSL_INF;");
                        }
                    });
                });
                WriteSoftmax(sTiles);
                WritePackP(pvSteps, sTiles);
                w.Line();
                w.Line($"// O += (P·V)·vscale on {pv.Ptx}: a step's int32 product (≤ {plan.PScale}·127·{sk}) times its page's channel scale.");
                w.Line($"#pragma unroll");
                w.Block($"for (int ci = 0; ci < {d / 16}; ++ci)", () =>
                {
                    w.Line($"int ob[2][4] = {{{{0, 0, 0, 0}}, {{0, 0, 0, 0}}}};");
                    w.Line($"#pragma unroll");
                    w.Block($"for (int kk = 0; kk < {pvSteps}; ++kk)", () =>
                    {
                        CopyProgramWriter.WriteLoad(w, vp, "vr", $"v_stage + {Address(Operand.V, vp, $"kk * {pv.K}", Steps(pvSteps, pv.K), "ci * 16", Steps(d / 16, 16))}");
                        for (var tile = 0; tile < vp.Fragments.Count; tile++)
                        {
                            w.Line($"kdsl_{pv.HelperName}(ob[{tile}], pa[kk][0], pa[kk][1], pa[kk][2], pa[kk][3], vr{vp.Fragments[tile][0]}, vr{vp.Fragments[tile][1]});");
                        }
                    });
                    for (var tile = 0; tile < vp.Fragments.Count; tile++)
                    {
                        w.Line($"const float vs{tile}0 = v_scale_of[ci * 16 + {Channel(tile, 0)}], vs{tile}1 = v_scale_of[ci * 16 + {Channel(tile, 1)}];");
                        w.Line($"o[ci * 2 + {tile}][0] = fmaf((float)ob[{tile}][0], vs{tile}0, o[ci * 2 + {tile}][0]); o[ci * 2 + {tile}][1] = fmaf((float)ob[{tile}][1], vs{tile}1, o[ci * 2 + {tile}][1]);");
                        w.Line($"o[ci * 2 + {tile}][2] = fmaf((float)ob[{tile}][2], vs{tile}0, o[ci * 2 + {tile}][2]); o[ci * 2 + {tile}][3] = fmaf((float)ob[{tile}][3], vs{tile}1, o[ci * 2 + {tile}][3]);");
                    }
                });
            });
        }

        /// <summary>The channel (within a 16-channel slice) of this lane's accumulator column 2t + odd of P·V tile <paramref name="tile"/>.</summary>
        private string Channel(int tile, int odd)
        {
            var offset = channels.TileOffsets[tile] + channels.OddStride * odd;
            return channels.PairStride == 0 ? $"{offset}" : $"{offset} + {channels.PairStride} * t";
        }

        private void WriteSoftmax(int sTiles)
        {
            w.Line();
            w.Line($"// Online softmax in exp2. A row that has seen no visible key keeps m = −∞ and exponent base 0, so nothing is NaN.");
            w.Line($"float alpha[2], base[2];");
            w.Line($"bool grew = false;");
            w.Line($"#pragma unroll");
            w.Block($"for (int h = 0; h < 2; ++h)", () =>
            {
                w.Line($"float mx = -KDSL_INF;");
                w.Line($"#pragma unroll");
                w.Line($"for (int jt = 0; jt < {sTiles}; ++jt) mx = fmaxf(mx, fmaxf(x[jt][2 * h], x[jt][2 * h + 1]));");
                w.Line($"mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));");
                w.Line($"mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));");
                w.Line($"const float m_new = fmaxf(m[h], mx);");
                w.Line($"const float safe = m_new == -KDSL_INF ? 0.f : m_new;");
                w.Line($"alpha[h] = kdsl_exp2(m[h] - safe);  // 0 while m was −∞");
                w.Line($"grew |= m_new > m[h];");
                w.Line($"m[h] = m_new;");
                w.Line($"// 2^((x − m) + log₂ {plan.PScale}) = {plan.PScale}·P: x − m is exact near the maximum (Sterbenz), so the row's largest score gives");
                w.Line($"// {plan.PScale} within the SFU's error at any magnitude, far below the {plan.PScale}.5 that would wrap a byte.");
                w.Line($"base[h] = safe;");
                w.Line($"l[h] *= alpha[h];");
            });
            w.Line($"// O is rescaled only when a row of the warp saw a new maximum, which past the first pages is rare. Otherwise alpha is");
            w.Line($"// exp2(0) = 1, or 0 for a row still at −∞ whose O is still 0: skipping the multiply changes nothing.");
            w.Block($"if (__any_sync(0xffffffffu, grew))", () =>
            {
                w.Line($"#pragma unroll");
                w.Line($"for (int i = 0; i < {_d / 8}; ++i) {{ o[i][0] *= alpha[0]; o[i][1] *= alpha[0]; o[i][2] *= alpha[1]; o[i][3] *= alpha[1]; }}");
            });
            w.Line($"// P rounded to u8 in pairs of f16 1024 + n (pp[jt][0]: row g, pp[jt][1]: row g + 8).");
            w.Line($"u32 pp[{sTiles}][2];");
            w.Line($"#pragma unroll");
            var log2P = Float(System.Math.Log(plan.PScale, 2));
            string P(int r, int h) => $"kdsl_exp2((x[jt][{r}] - base[{h}]) + {log2P})";
            w.Line($"for (int jt = 0; jt < {sTiles}; ++jt) {{ pp[jt][0] = kdsl_f16x2_u8({P(0, 0)}, {P(1, 0)}); pp[jt][1] = kdsl_f16x2_u8({P(2, 1)}, {P(3, 1)}); }}");
        }

        /// <summary>P·V's A fragments from the pairs, by <see cref="FragmentComposition.PackingOf"/> (the table the build composed).</summary>
        private void WritePackP(int pvSteps, int sTiles)
        {
            var pv = plan.Pv;
            var tilesPerStep = sTiles / pvSteps;
            w.Line($"u32 pa[{pvSteps}][4];");
            var rowHalf = new int[pv.ARegisters];
            w.Line($"#pragma unroll");
            w.Block($"for (int kk = 0; kk < {pvSteps}; ++kk)", () =>
            {
                for (var reg = 0; reg < pv.ARegisters; reg++)
                {
                    var sources = Enumerable.Range(0, 4).Select(e => FragmentComposition.PackingOf(pv, reg, e)).ToArray();
                    // Bytes 0, 1 are one row's neighbouring accumulators of one tile, bytes 2, 3 the same of the next.
                    var (first, second) = (sources[0], sources[2]);
                    if (sources[1].Tile != first.Tile || first.Accumulator % 2 != 0 || sources[1].Accumulator != first.Accumulator + 1
                        || second.Accumulator != first.Accumulator || sources[3].Tile != second.Tile)
                    {
                        throw new System.InvalidOperationException($"P·V operand register {reg} does not take u8 P as pairs of one row's accumulators.");
                    }
                    rowHalf[reg] = first.Accumulator / 2;
                    w.Line($"pa[kk][{reg}] = kdsl_prmt(pp[kk * {tilesPerStep} + {first.Tile}][{rowHalf[reg]}], pp[kk * {tilesPerStep} + {second.Tile}][{rowHalf[reg]}], 0x6420u);");
                }
            });
            w.Line($"// The row sums add the u8 P byte by byte, as the MMA reads it, so O / l is a weighted mean of V exactly.");
            w.Line($"u32 p_sum[2] = {{0u, 0u}};");
            w.Line($"#pragma unroll");
            w.Line($"for (int kk = 0; kk < {pvSteps}; ++kk) {{ {string.Join(" ", Enumerable.Range(0, pv.ARegisters).Select(reg => $"p_sum[{rowHalf[reg]}] = kdsl_byte_sum(pa[kk][{reg}], p_sum[{rowHalf[reg]}]);"))} }}");
            w.Line($"l[0] += (float)p_sum[0];  // this thread's keys only: the quad's sums are added once, after the loop");
            w.Line($"l[1] += (float)p_sum[1];");
        }

        /// <summary>The output row ([Σ queries][heads_q]) of packed row p of this block's tile.</summary>
        private const string OutputRow = "(long long)(q_first + p / group) * heads_q + kv_head * group + p % group";

        private void WriteBlockMerge()
        {
            var d = _d;
            var stride = plan.MergeRowStride;
            w.Line();
            w.Line($"// The block's warps merge: every warp's (m, l, O) rescaled to the block's max, summed, normalized; one split's O and LSE.");
            w.Line($"kdsl_cp_async_wait<0>();");
            w.Line($"__syncthreads();  // every warp is done with its stages: they now hold the merge");
            w.Line($"float* const merge_o = (float*)(stages + 0);     // [warps][16][{stride}]: {stride - d} floats of padding a row, so a quarter-warp's float4 stores fill the banks once");
            w.Line($"float* const merge_m = (float*)(stages + {plan.MergeMOffset});   // [warps][16]");
            w.Line($"float* const merge_l = (float*)(stages + {plan.MergeLOffset});   // [warps][16]");
            w.Line($"float* const merge_inv = (float*)(stages + {plan.MergeInvOffset}); // [16]: 1 / the block's sum, 0 for a row that saw no key");
            w.Line($"long long* const merge_row = (long long*)(stages + {plan.MergeRowOffset}); // [16]: the output row, −1 for padding");
            w.Line($"#pragma unroll");
            w.Line($"for (int h = 0; h < 2; ++h) {{ l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1); l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2); }}");
            w.Block($"if (t == 0)", () =>
            {
                w.Line($"merge_m[warp * 16 + g] = m[0]; merge_m[warp * 16 + g + 8] = m[1];");
                w.Line($"merge_l[warp * 16 + g] = l[0]; merge_l[warp * 16 + g + 8] = l[1];");
            });
            w.Line($"__syncthreads();");
            w.Line($"float scale_of[2];");
            w.Line($"#pragma unroll");
            w.Block($"for (int h = 0; h < 2; ++h)", () =>
            {
                w.Line($"float top = -KDSL_INF;");
                w.Line($"#pragma unroll");
                w.Line($"for (int i = 0; i < {_warps}; ++i) top = fmaxf(top, merge_m[i * 16 + g + 8 * h]);");
                w.Line($"scale_of[h] = m[h] == -KDSL_INF ? 0.f : kdsl_exp2(m[h] - top);");
            });
            w.Line($"// A lane's channels 4t to 4t + 3 of a row as one float4 (one float a store cost 8-way bank conflicts).");
            w.Line($"#pragma unroll");
            w.Block($"for (int ci = 0; ci < {d / 16}; ++ci)", () =>
            {
                for (var h = 0; h < 2; h++)
                {
                    var values = ChannelOrder().Select(x => $"o[ci * 2 + {x.Tile}][{2 * h + x.Odd}] * scale_of[{h}]");
                    w.Line($"*(float4*)&merge_o[(warp * 16 + g + {8 * h}) * {stride} + ci * 16 + 4 * t] = {_quad.MakeFloat(values)};");
                }
            });
            w.Block($"if (tid < 16)", () =>
            {
                w.Line($"float top = -KDSL_INF, sum = 0.f;");
                w.Line($"#pragma unroll");
                w.Line($"for (int i = 0; i < {_warps}; ++i) top = fmaxf(top, merge_m[i * 16 + tid]);");
                w.Line($"#pragma unroll");
                w.Line($"for (int i = 0; i < {_warps}; ++i) if (merge_m[i * 16 + tid] != -KDSL_INF) sum += merge_l[i * 16 + tid] * kdsl_exp2(merge_m[i * 16 + tid] - top);");
                w.Line($"merge_inv[tid] = sum > 0.f ? 1.f / sum : 0.f;");
                w.Line($"const int p = tile * 16 + tid;");
                w.Line($"// LSE in natural log: m is in units of σ·log₂e·score, and the sum counts {plan.PScale}·P.");
                w.Line($"const float row_lse = sum > 0.f ? (top + kdsl_log2(sum * {Float(1.0 / plan.PScale)})) * 0.693147181f : -KDSL_INF;");
                w.Line($"const long long row = {OutputRow};");
                w.Line($"merge_row[tid] = p < packed ? row : -1;  // the division by group once a row, not once a store");
                w.Line($"// One split is the whole answer: the block writes O and LSE itself, as the merge would (weight exp2(0) = 1, log2(1) = 0).");
                w.Line($"if (p < packed) {{ if (splits > 1) partial_lse[split * rows + row] = row_lse; else if (lse != 0) lse[row] = row_lse; }}");
            });
            w.Line($"__syncthreads();");
            w.Line($"// Four channels a thread: a quarter-warp's float4 reads of merge_o are 128 contiguous bytes, and one split's O goes out as");
            w.Line($"// a float4 or two packed {(plan.Spec.Input == Element.BF16 ? "bf16" : "f16")} pairs.");
            var quads = 16 * d / 4;
            w.Line($"#pragma unroll");
            w.Block($"for (int it = 0; it < {(quads + plan.Threads - 1) / plan.Threads}; ++it)", () =>
            {
                w.Line($"const int e = tid + {plan.Threads} * it, r = e / {d / 4}, c = 4 * (e % {d / 4});");
                if (quads % plan.Threads != 0)
                {
                    w.Line($"if (e >= {quads}) break;");
                }
                w.Line($"const long long row = merge_row[r];");
                w.Line($"if (row < 0) continue;");
                w.Line($"float4 sum = make_float4(0.f, 0.f, 0.f, 0.f);");
                w.Line($"#pragma unroll");
                w.Line($"for (int i = 0; i < {_warps}; ++i) {{ const float4 x = *(const float4*)&merge_o[(i * 16 + r) * {stride} + c]; sum.x += x.x; sum.y += x.y; sum.z += x.z; sum.w += x.w; }}");
                w.Line($"const float inv = merge_inv[r];");
                var scaled = _quad.Fields.Select(f => $"sum.{f} * inv").ToArray();
                w.Line($"if (splits > 1) *(float4*)&partial_o[(split * rows + row) * {d} + c] = {_quad.MakeFloat(scaled)};");
                w.Line($"// A row that saw no key is 0, as the merge makes it, even where its stages held NaN (a non-finite V scale under Ignore).");
                w.Line($"else *(uint2*)&output[row * {d} + c] = inv == 0.f ? make_uint2(0u, 0u) : {_quad.PackHalves(scaled)};");
            });
        }

        /// <summary>
        /// The accumulators (S tile of a pair, odd column) holding a lane's channels 4t, 4t + 1, 4t + 2, 4t + 3 of a 16-channel
        /// group, in that order: the merge stores them as one float4, so the P·V composition must give each lane four adjacent channels.
        /// </summary>
        private (int Tile, int Odd)[] ChannelOrder()
        {
            var order = new (int Tile, int Odd)[4];
            var seen = 0;
            for (var tile = 0; tile < 2; tile++)
            {
                for (var odd = 0; odd < 2; odd++)
                {
                    var offset = channels.TileOffsets[tile] + channels.OddStride * odd;
                    if (channels.PairStride != 4 || offset is < 0 or > 3 || (seen & (1 << offset)) != 0)
                    {
                        throw new System.InvalidOperationException($"The P·V accumulators do not give each lane four adjacent channels (tile {tile}, odd {odd}: channel {offset} + {channels.PairStride}·t), which the block merge's float4 stores need.");
                    }
                    seen |= 1 << offset;
                    order[offset] = (tile, odd);
                }
            }
            return order;
        }
    }
}

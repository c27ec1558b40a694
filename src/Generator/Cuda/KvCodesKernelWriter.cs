using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The KvCodes family's CUDA: one kernel that writes K's and V's codes from one more read of both, after the KvStatistics
/// pass (docs/PERF_NOTES.md §10). One block per (batch·head, tile of KScaleKeys tokens): every thread issues all its K
/// and V loads of the tile first, then K's tile absmax, K's codes and V's codes follow. The float steps are the Quantize
/// family's helpers (written by <see cref="QuantizeKernelWriter"/>), so the codes equal the per-operand kernels' and the
/// CPU reference's bit for bit.
/// </summary>
public static class KvCodesKernelWriter
{
    public static string Write(KvCodesPlan plan)
    {
        var spec = plan.Spec;
        var (d, t, tile, tpt, rpp, passes) = (plan.HeadDim, plan.Threads, plan.Tile, plan.ThreadsPerToken, plan.RowsPerPass, plan.Passes);
        var e4m3 = spec.VOutput == Element.E4M3;
        var code = e4m3 ? "u8" : "s8";
        var w = new CodeWriter();
        var vLayout = spec.VTransposed
            ? $"[B][H][{d}][s_pad] (s_pad = S rounded up to {spec.TransposePad}, tokens in {spec.TransposedOrder} order, padding zero)"
            : $"[B][H][S][{d}]";
        CudaPrelude.Write(w, spec,
            $"K and V, {spec.Input.CudaName()} [B, H, S, {d}] each (any strides for B, H, S; channels contiguous), with K's channel mean and V's channel",
            $"scales from the statistics pass → K int8 [B][H][S][{d}] of k − mean, one scale per {tile} tokens, and V {(e4m3 ? "e4m3" : "int8")} {vLayout}.",
            $"{t} threads per block, one block per (batch·head, tile of {tile} tokens); kernel: {plan.Symbol}.");
        WriteHelpers(w, plan, []);
        w.Line();

        w.Line($"// Thread t: channels 16·(t % {tpt}) to +15 of the tile's tokens t / {tpt}, + {rpp}, ... for K{(spec.VTransposed ? "" : " and V")} (two 16-byte loads per token and");
        w.Line($"// tensor, one 16-byte store of codes){(spec.VTransposed ? $"; V is read in 8-channel chunks, a warp on one chunk of 32 tokens, and its codes are staged in a [{d}][{plan.StagingPitch}]-byte tile at their π positions, then stored as 16-byte pieces of channel rows" : "")}.");
        w.Line($"// All of a thread's loads are issued before any is used; K's scale is the tile's absmax of k − mean (max is exact in any order).");
        w.Line($"extern \"C\" __global__ void __launch_bounds__({t})");
        KernelSignatureWriter.WriteDeclaration(w, plan.Symbol, plan.Signature);
        w.Raw("{");
        w.Indent();
        {
            WriteTileState(w, plan);
            w.Line($"const int tiles = ({(spec.VTransposed ? "s_pad" : "S")} + {tile - 1}) / {tile};");
            w.Line($"const int bh = blockIdx.x / tiles, tile = blockIdx.x % tiles;");
            w.Line($"const int b = bh / heads, h = bh % heads;");
            w.Line($"const int s0 = tile * {tile};");
            w.Line($"const int rows = kdsl_min({tile}, S - s0);{(spec.VTransposed ? "  // at most 0 in a tile of padding alone" : "")}");
            w.Line($"const u16* const ks = k + b * k_stride_b + h * k_stride_h;");
            w.Line($"const u16* const vs = v + b * v_stride_b + h * v_stride_h;");
            w.Line($"for (int c = threadIdx.x; c < {d}; c += {t}) inv[c] = kdsl_inv_of(v_scale[(long long)bh * {d} + c]);");
            w.Line();
            WriteTile(w, plan, channel => $"k_mean[(long long)bh * {d} + {channel}]");
        }
        w.Outdent();
        w.Raw("}");
        return w.ToString();
    }

    /// <summary>
    /// The device helpers a tile's codes use: K's as the smoothing Quantize variants write them (int8 codes, the 8-byte
    /// store; K is centred with kdsl_prep's subtraction and no multiply by 1, <see cref="QuantizeKernelWriter.Unscaled"/>),
    /// then, for e4m3 codes, V's code helper: the same rounding as the per-operand kernels. <paramref name="more"/> adds the
    /// host kernel's own PTX helpers.
    /// </summary>
    internal static void WriteHelpers(CodeWriter w, KvCodesPlan plan, IEnumerable<PtxHelper> more)
    {
        var spec = plan.Spec;
        var e4m3 = spec.VOutput == Element.E4M3;
        var helpers = new List<PtxHelper> { PtxHelper.IntMath, PtxHelper.Global16, PtxHelpers.ToFloatHelper(spec.Input), PtxHelper.WarpReduce };
        if (e4m3)
        {
            helpers.Add(PtxHelper.E4m3Pack);
        }
        helpers.AddRange(more);
        PtxHelpers.Write(w, helpers, []);
        w.Line();
        QuantizeKernelWriter.HelpersFor(spec, spec.Input, subtractChannelMean: true).WriteHelpers(w);
        if (e4m3)
        {
            QuantizeKernelWriter.HelpersFor(spec, spec.Input, subtractChannelMean: false, spec.VOutput, spec.VTransposed).WriteCodeHelpers(w);
        }
    }

    /// <summary>What <see cref="WriteTile"/> needs beside the tile's place: the block's shared arrays and each thread's (token, channels).</summary>
    internal static void WriteTileState(CodeWriter w, KvCodesPlan plan)
    {
        var spec = plan.Spec;
        var (d, tpt, rpp) = (plan.HeadDim, plan.ThreadsPerToken, plan.RowsPerPass);
        var code = spec.VOutput == Element.E4M3 ? "u8" : "s8";
        w.Line($"__shared__ float warp_max[{plan.Warps}];");
        w.Line($"__shared__ float inv[{d}];  // 1 / V's scale per channel: one division per channel and block, none per element");
        if (spec.VTransposed)
        {
            w.Line($"struct __align__(16) kdsl_piece {{ u32 x, y, z, w; }};");
            w.Line($"__shared__ __align__(16) {code} staged[{d} * {plan.StagingPitch}];");
        }
        w.Line($"const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;");
        w.Line($"const int row = threadIdx.x / {tpt}, c0 = (threadIdx.x % {tpt}) * 16;");
        w.Line($"const bool active = row < {rpp};");
    }

    /// <summary>
    /// One tile's codes: every load first, K's tile absmax through one barrier, then K's and V's codes. Needs in scope: bh,
    /// s0 (the tile's first token), rows, tile (its index), ks and vs (the head's K and V), row, c0, active, lane, warp,
    /// inv[] (published) and warp_max[]; <paramref name="mean"/> gives K's channel mean of a channel (this family reads the
    /// statistics pass's from k_mean, the single pass a shared copy).
    /// </summary>
    internal static void WriteTile(CodeWriter w, KvCodesPlan plan, System.Func<string, string> mean)
    {
        var spec = plan.Spec;
        var (d, t, tile, rpp, passes) = (plan.HeadDim, plan.Threads, plan.Tile, plan.RowsPerPass, plan.Passes);
        var e4m3 = spec.VOutput == Element.E4M3;
        var code = e4m3 ? "u8" : "s8";
        w.Line($"// Every load of the tile first.");
        w.Line($"u32 k_raw[{passes}][2][4];");
        if (!spec.VTransposed)
        {
            w.Line($"u32 v_raw[{passes}][2][4];");
        }
        w.Line($"#pragma unroll");
        w.Block($"for (int p = 0; p < {passes}; ++p)", () =>
        {
            w.Line($"const int r = row + p * {rpp};");
            w.Line($"if (!active || r >= rows) continue;  // continue, not break: a loop left early is not unrolled, and the raw arrays would go to local memory");
            w.Line($"kdsl_ld16(ks + (s0 + r) * k_stride_s + c0, k_raw[p][0]);");
            w.Line($"kdsl_ld16(ks + (s0 + r) * k_stride_s + c0 + 8, k_raw[p][1]);");
            if (!spec.VTransposed)
            {
                w.Line($"kdsl_ld16(vs + (s0 + r) * v_stride_s + c0, v_raw[p][0]);");
                w.Line($"kdsl_ld16(vs + (s0 + r) * v_stride_s + c0 + 8, v_raw[p][1]);");
            }
        });
        if (spec.VTransposed)
        {
            w.Line($"u32 v_raw[{plan.TransposedChunks}][4];");
            w.Line($"#pragma unroll");
            w.Block($"for (int i = 0; i < {plan.TransposedChunks}; ++i)", () =>
            {
                w.Line($"const int e = threadIdx.x + i * {t}, r = e % {tile}, chunk = e / {tile};");
                w.Line($"if (chunk < {d / 8} && r < rows) kdsl_ld16(vs + (s0 + r) * v_stride_s + chunk * 8, v_raw[i]);");
            });
        }
        w.Line($"float m[16];");
        w.Line($"#pragma unroll");
        w.Line($"for (int j = 0; j < 16; ++j) m[j] = active ? {mean("c0 + j")} : 0.0f;");
        w.Line();
        w.Line($"// K's tile absmax: a warp butterfly, then the {plan.Warps} warp maxima through shared memory.");
        w.Line($"float amax = 0.0f;");
        w.Line($"#pragma unroll");
        w.Block($"for (int p = 0; p < {passes}; ++p)", () =>
        {
            w.Line($"if (!active || row + p * {rpp} >= rows) continue;");
            w.Line($"#pragma unroll");
            w.Block($"for (int half = 0; half < 2; ++half)", () =>
            {
                w.Line($"float x[8];");
                w.Line($"kdsl_unpack8(k_raw[p][half], x);");
                w.Line($"#pragma unroll");
                w.Line($"for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf({QuantizeKernelWriter.Unscaled("x[j]", "m[half * 8 + j]")}));");
            });
        });
        w.Line($"amax = kdsl_warp_max(amax);");
        w.Line($"if (lane == 0) warp_max[warp] = amax;");
        w.Line($"__syncthreads();  // the warp maxima (and, in this family, inv[])");
        w.Line($"amax = warp_max[0];");
        w.Line($"#pragma unroll");
        w.Line($"for (int i = 1; i < {plan.Warps}; ++i) amax = fmaxf(amax, warp_max[i]);");
        w.Line($"const float k_sc = kdsl_scale_of(amax), k_inv = kdsl_inv_of(k_sc);");
        w.Line($"if (threadIdx.x == 0 && rows > 0) k_scale[(long long)bh * ((S + {tile - 1}) / {tile}) + tile] = k_sc;");
        w.Line();
        w.Line($"// K's codes{(spec.VTransposed ? "" : " and V's")}: 16 channels of a token, one 16-byte store each; consecutive threads store consecutive pieces.");
        w.Line($"#pragma unroll");
        w.Block($"for (int p = 0; p < {passes}; ++p)", () =>
        {
            w.Line($"const int r = row + p * {rpp};");
            w.Line($"if (!active || r >= rows) continue;");
            w.Line($"const long long at = ((long long)bh * S + s0 + r) * {d} + c0;");
            WriteToken16(w, "k", "k_codes + at", (x, c) => QuantizeKernelWriter.Unscaled(x, $"m[{c}]"), _ => "k_inv", e4m3: false);
            if (!spec.VTransposed)
            {
                WriteToken16(w, "v", "v_codes + at", (x, _) => QuantizeKernelWriter.Unscaled(x), c => $"inv[c0 + {c}]", e4m3);
            }
        });
        if (spec.VTransposed)
        {
            WriteTransposedV(w, plan, code, e4m3);
        }
    }

    /// <summary>
    /// One token's 16 channels (two raw 16-byte loads) → four words of codes → one 16-byte store. The words are built in
    /// straight-line code: an array of words indexed in the unrolled loop went to local memory (ptxas, e4m3 variants).
    /// </summary>
    /// <param name="prep">The value's expression from (element, channel within the 16).</param>
    /// <param name="inverse">1 / scale of a channel within the 16.</param>
    /// <param name="tensor">"k" or "v": the raw loads are {tensor}_raw[p], the locals take it as a prefix.</param>
    private static void WriteToken16(CodeWriter w, string tensor, string address, System.Func<string, string, string> prep, System.Func<string, string> inverse, bool e4m3)
    {
        var (x, y) = (tensor + "x", tensor + "y");
        w.Line($"float {x}[8], {y}[8];");
        w.Line($"kdsl_unpack8({tensor}_raw[p][0], {x});");
        w.Line($"kdsl_unpack8({tensor}_raw[p][1], {y});");
        var q = Enumerable.Range(0, 4).Select(i => $"{tensor}q{i}").ToArray();
        w.Line($"u32 {string.Join(" = 0, ", q)} = 0;");
        // Word i holds channels 4i to 4i + 3: x[j], x[j + 4], y[j], y[j + 4] for j = 0..3, byte j.
        var words = new[] { (q[0], x + "[{0}]", "{0}"), (q[1], x + "[{0} + 4]", "{0} + 4"), (q[2], y + "[{0}]", "{0} + 8"), (q[3], y + "[{0} + 4]", "{0} + 12") };
        w.Line($"#pragma unroll");
        if (e4m3)
        {
            // Pairs: channels j and j + 1 are bytes j and j + 1 of their word.
            w.Block($"for (int j = 0; j < 4; j += 2)", () =>
            {
                foreach (var (word, value, channel) in words)
                {
                    string V(string j) => string.Format(System.Globalization.CultureInfo.InvariantCulture, value, j);
                    string C(string j) => string.Format(System.Globalization.CultureInfo.InvariantCulture, channel, j);
                    w.Line($"{word} |= kdsl_quant_e4m3x2({prep(V("j"), C("j"))}, {inverse(C("j"))}, {prep(V("j + 1"), C("j + 1"))}, {inverse(C("j + 1"))}) << (8 * j);");
                }
            });
        }
        else
        {
            w.Block($"for (int j = 0; j < 4; ++j)", () =>
            {
                foreach (var (word, value, channel) in words)
                {
                    var v = string.Format(System.Globalization.CultureInfo.InvariantCulture, value, "j");
                    var c = string.Format(System.Globalization.CultureInfo.InvariantCulture, channel, "j");
                    w.Line($"{word} |= kdsl_byte(kdsl_quant({prep(v, c)}, {inverse(c)}), 8 * j);");
                }
            });
        }
        w.Line($"kdsl_st16({address}, {string.Join(", ", q)});");
    }

    /// <summary>V's codes into the shared tile at their stored positions (zero past S), then 16-byte pieces of channel rows.</summary>
    private static void WriteTransposedV(CodeWriter w, KvCodesPlan plan, string code, bool e4m3)
    {
        var (d, t, tile, pitch) = (plan.HeadDim, plan.Threads, plan.Tile, plan.StagingPitch);
        var order = plan.StoredOrder;
        // Token t of a 16-token group sits at position (positions >> 4t) & 15: the stored order, inverted, as one constant.
        var positions = 0UL;
        for (var p = 0; p < KvCodesPlan.GroupTokens; p++)
        {
            positions |= (ulong)p << (4 * order[p]);
        }
        w.Line();
        w.Line($"// V's codes at their stored positions of the shared tile: position p of a 16-token group holds token [{string.Join(", ", order)}][p].");
        w.Line($"#pragma unroll");
        w.Block($"for (int i = 0; i < {plan.TransposedChunks}; ++i)", () =>
        {
            w.Line($"const int e = threadIdx.x + i * {t}, r = e % {tile}, chunk = e / {tile};");
            w.Line($"if (chunk >= {d / 8}) continue;");
            w.Line($"const int pos = (r & ~15) | (int)((0x{positions:X16}ull >> (4 * (r & 15))) & 15u);");
            w.Line($"{code}* const codes = staged + chunk * 8 * {pitch} + pos;");
            w.Block($"if (r < rows)", () =>
            {
                w.Line($"float x[8];");
                w.Line($"kdsl_unpack8(v_raw[i], x);");
                w.Line($"#pragma unroll");
                if (e4m3)
                {
                    w.Block($"for (int j = 0; j < 8; j += 2)", () =>
                    {
                        w.Line($"const u32 pair = kdsl_quant_e4m3x2(x[j], inv[chunk * 8 + j], x[j + 1], inv[chunk * 8 + j + 1]);");
                        w.Line($"codes[j * {pitch}] = (u8)pair;");
                        w.Line($"codes[(j + 1) * {pitch}] = (u8)(pair >> 8);");
                    });
                }
                else
                {
                    w.Line($"for (int j = 0; j < 8; ++j) codes[j * {pitch}] = (s8)kdsl_quant(x[j], inv[chunk * 8 + j]);");
                }
            }, close: "}");
            w.Block($"else", () =>
            {
                w.Line($"#pragma unroll");
                w.Line($"for (int j = 0; j < 8; ++j) codes[j * {pitch}] = 0;");
            });
        });
        w.Line($"__syncthreads();");
        var pieces = tile / 16;
        w.Line($"// s_pad is a multiple of {tile}, so every piece of the tile is inside the padded row.");
        w.Block($"for (int q = threadIdx.x; q < {d * pieces}; q += {t})", () =>
        {
            w.Line($"const int c = q / {pieces}, p0 = (q % {pieces}) * 16;");
            w.Line($"const kdsl_piece piece = *(const kdsl_piece*)(staged + c * {pitch} + p0);  // one 16-byte shared load");
            w.Line($"kdsl_st16(v_codes + ((long long)bh * {d} + c) * s_pad + s0 + p0, piece.x, piece.y, piece.z, piece.w);");
        });
    }
}

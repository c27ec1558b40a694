using System;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using N = KernelDsl.Generator.Cuda.AttentionNames;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// The epilogue both attention forms share: row sums reduced over the quad, O · v_scale / l written as f16/bf16, and the
/// LSE with K smoothing's correction (Q read back from its swizzled shared tile).
/// </summary>
/// <param name="channels">Where accumulator column 2t + i of O tile 2ci + jt lands among the channels.</param>
/// <param name="rowOrigin">The block-relative first query row of the warp's 16.</param>
public sealed class AttentionEpilogueWriter(AttentionPlan plan, ChannelMap channels, CodeWriter w, string rowOrigin)
{
    private readonly AttentionSpec _spec = plan.Spec;

    public void Write()
    {
        var s = _spec;
        w.Line($"// Epilogue. Row sums were partial per thread: reduce over the quad, then O · v_scale / l.");
        w.Line($"#pragma unroll");
        w.Block($"for (int hh = 0; hh < 2; ++hh)", () =>
        {
            w.Line($"{N.RowSum}[hh] += __shfl_xor_sync(0xffffffffu, {N.RowSum}[hh], 1);");
            w.Line($"{N.RowSum}[hh] += __shfl_xor_sync(0xffffffffu, {N.RowSum}[hh], 2);");
        });
        if (plan.StagesOutput)
        {
            WriteStagedOutput();
        }
        else
        {
            WriteDirectOutput();
        }
        if (s.Lse)
        {
            WriteLse();
        }
    }

    /// <summary>O · v_scale / l of channel c, row half hh, converted to the output element.</summary>
    private string OutputValue(string tile, string register, string channel)
    {
        var scale = plan.FloatPv ? "" : $" * v_scale[{N.BatchKvHead} * {_spec.HeadDim} + {channel}]";
        var convert = _spec.Output == Element.BF16 ? "kdsl_f32_to_bf16" : "kdsl_f32_to_f16";
        return $"{convert}({N.O}[{tile}][{register}]{scale} * inv_l)";
    }

    /// <summary>Accumulator column 2t + i of O tile 2ci + jt, as the channel it holds (column 2t's without <paramref name="i"/>).</summary>
    private string ChannelOf(string? i) =>
        $"ci * 16 + (jt ? {channels.TileOffsets[1]} : {channels.TileOffsets[0]}) + {channels.PairStride} * {N.ThreadInGroup}{(i is null ? "" : $" + {channels.OddStride} * {i}")}";

    /// <summary>Each thread stores its own values: 2 bytes into each of 8 rows a warp instruction.</summary>
    private void WriteDirectOutput() => WriteForEachTile(
        row: () =>
        {
            w.Line($"const int row = {N.FirstRow} + {rowOrigin} + {N.Group} + 8 * hh;");
            w.Line($"if (row >= seq_q) continue;");
            WriteInverseSum();
            w.Line($"u16* const out = O + {N.Batch} * o_stride_b + {N.Head} * o_stride_h + row * o_stride_s;");
        },
        tile: () =>
        {
            w.Line($"#pragma unroll");
            w.Block($"for (int i = 0; i < 2; ++i)", () =>
            {
                w.Line($"const int c = {ChannelOf("i")};");
                w.Line($"out[c] = {OutputValue("ci * 2 + jt", "2 * hh + i", "c")};");
            });
        });

    /// <summary>
    /// The loops over a thread's O accumulators: row half hh (g or g + 8), its <paramref name="row"/> lines first, then
    /// tile 2ci + jt, whose <paramref name="tile"/> lines see ci and jt.
    /// </summary>
    private void WriteForEachTile(Action row, Action tile)
    {
        w.Line($"// Accumulator column 2t + i of tile 2ci + jt is channel 16ci + {channels.TileOffsets[0]}/{channels.TileOffsets[1]}[jt] + {channels.PairStride}t + {channels.OddStride}i.");
        w.Line($"#pragma unroll");
        w.Block($"for (int hh = 0; hh < 2; ++hh)", () =>
        {
            row();
            w.Line($"#pragma unroll");
            w.Block($"for (int ci = 0; ci < {_spec.HeadDim / 16}; ++ci)", () =>
            {
                w.Line($"#pragma unroll");
                w.Block($"for (int jt = 0; jt < 2; ++jt)", tile);
            });
        });
    }

    private void WriteInverseSum() =>
        w.Line($"const float inv_l = {N.RowSum}[hh] > 0.f ? 1.f / {N.RowSum}[hh] : 0.f;  // no visible key: output 0");

    /// <summary>
    /// O through shared memory: each warp writes its 16 rows into the free K/V stages, then stores them whole, 16 bytes a
    /// lane, so a warp instruction writes two full 256-byte rows (D = 128) where a direct store writes 2 bytes into
    /// each of 8 rows. Rows are padded (<see cref="AttentionPlan.OutputStagingRowBytes"/>) so a quad-pair store hits 32
    /// banks. Shared memory is addressed as such (st/ld.shared), and every read is issued before the first store. The
    /// launcher requires O's base and strides to keep rows 16-byte aligned.
    /// </summary>
    private void WriteStagedOutput()
    {
        var d = _spec.HeadDim;
        var rowBytes = plan.OutputStagingRowBytes;
        var pieces = 16 * (d / 8) / 32;  // 16-byte pieces a lane stores: 16 rows of D / 8 each, over 32 lanes
        // The wgmma form's accumulators hold channel pairs (c, c + 1) with c even: one 4-byte store a pair.
        if (channels.OddStride != 1 || channels.PairStride % 2 != 0 || channels.TileOffsets.Any(o => o % 2 != 0))
        {
            throw new InvalidOperationException($"Staging O needs adjacent channel pairs; {plan.Spec.KernelPrefix} maps them as {channels}.");
        }
        if (plan.Persistent)
        {
            w.Line($"// O goes through its own shared memory (the K/V stages already hold the next tile): each warp writes its 16 rows");
            w.Line($"// ({rowBytes}-byte rows, padded onto distinct banks), then stores them whole in 16-byte pieces.");
            w.Line($"const u32 so = {N.OutputStagingAddress} + {rowOrigin} * {rowBytes};  // this warp's 16 rows");
        }
        else
        {
            w.Line($"// O goes through shared memory, in the K/V stages that every consumer warp is done with after this barrier:");
            w.Line($"// each warp writes its 16 rows ({rowBytes}-byte rows, padded onto distinct banks), then stores them whole in 16-byte pieces.");
            w.Line($"kdsl_bar_sync({N.EpilogueBarrier}, {128 * plan.ConsumerWarpgroups});");
            w.Line($"const u32 so = {N.SharedKAddress} + {rowOrigin} * {rowBytes};  // this warp's 16 rows");
        }
        WriteForEachTile(
            row: () =>
            {
                WriteInverseSum();
                w.Line($"const u32 row_tile = so + ({N.Group} + 8 * hh) * {rowBytes};");
            },
            tile: () =>
            {
                w.Line($"const int c = {ChannelOf(null)};  // and c + 1");
                w.Line($"kdsl_st_shared_b32(row_tile + 2 * c, (u32){OutputValue("ci * 2 + jt", "2 * hh", "c")} | ((u32){OutputValue("ci * 2 + jt", "2 * hh + 1", "c + 1")} << 16));");
            });
        w.Line($"__syncwarp();");
        w.Line($"// Piece p of a lane is row (lane + 32p) / {d / 8} of the warp's 16, 16-byte chunk (lane + 32p) % {d / 8}.");
        w.Line($"u32 piece[{pieces}][4];");
        w.Line($"#pragma unroll");
        w.Line($"for (int p = 0; p < {pieces}; ++p) kdsl_ld_shared_v4(piece[p], so + ({N.Lane} + 32 * p) / {d / 8} * {rowBytes} + ({N.Lane} + 32 * p) % {d / 8} * 16);");
        w.Line($"#pragma unroll");
        w.Block($"for (int p = 0; p < {pieces}; ++p)", () =>
        {
            w.Line($"const int local = ({N.Lane} + 32 * p) / {d / 8}, row = {N.FirstRow} + {rowOrigin} + local;");
            w.Line($"if (row < seq_q) kdsl_st_global_v4(O + {N.Batch} * o_stride_b + {N.Head} * o_stride_h + row * o_stride_s + ({N.Lane} + 32 * p) % {d / 8} * 8, piece[p]);  // the launcher holds rows to 16 bytes");
        });
    }

    private void WriteLse()
    {
        if (_spec.Score is not null)
        {
            w.Line($"// LSE (natural log) of the modified scores, which already carry q·mean(K): no smoothing correction.");
            w.Block($"if (lse != 0)", () =>
            {
                w.Line($"#pragma unroll");
                w.Block($"for (int hh = 0; hh < 2; ++hh)", () =>
                {
                    w.Line($"const int row = {N.FirstRow} + {rowOrigin} + {N.Group} + 8 * hh;");
                    w.Block($"if ({N.ThreadInGroup} == 0 && row < seq_q)", () => WriteLseStore("0.f"));
                });
            });
            return;
        }
        w.Line($"// LSE (natural log). Smoothing removed q·mean(K) from every score of a row; add it back: σ·q·mean ≈ (q_scale / log2 e)·Σ q8·mean.");
        w.Block($"if (lse != 0)", () =>
        {
            w.Line($"#pragma unroll");
            w.Block($"for (int hh = 0; hh < 2; ++hh)", () =>
            {
                w.Line($"const int local = {rowOrigin} + {N.Group} + 8 * hh;");
                WriteRowMeanDot("corr", "local", guarded: true);
                w.Line($"const int row = {N.FirstRow} + local;");
                w.Block($"if ({N.ThreadInGroup} == 0 && row < seq_q)", () => WriteLseStore($"corr * {AttentionSoftmaxWriter.QScaleOf(plan, "hh")} * 0.69314718f"));
            });
        });
    }

    private void WriteLseStore(string correction)
    {
        w.Line($"lse[{N.BatchHead} * seq_q + row] = {N.RowSum}[hh] > 0.f");
        w.Line($"    ? ({N.RowMax}[hh] + kdsl_log2({N.RowSum}[hh] / {plan.PScale}.f)) * 0.69314718f{(correction == "0.f" ? "" : " + " + correction)}");
        w.Line($"    : -KDSL_INF;");
    }

    /// <summary>
    /// Σ q8·mean(K) over the channels of block row <paramref name="local"/> into <paramref name="name"/>, the quad's four
    /// threads taking every fourth channel of Q in shared memory: what K smoothing took from each of the row's scores.
    /// </summary>
    private void WriteRowMeanDot(string name, string local, bool guarded)
    {
        var d = _spec.HeadDim;
        var sum = $"for (int c = {N.ThreadInGroup}; c < {d}; c += 4) {name} += (float)(s8){N.SharedQ}[{LayoutWriter.FunctionName(Operand.Q)}({local}, c)] * k_mean[{N.BatchKvHead} * {d} + c];";
        w.Line($"float {name} = 0.f;");
        if (guarded)
        {
            w.Block($"if (k_mean != 0)", () => w.Line($"{sum}"));
        }
        else
        {
            w.Line($"{sum}");
        }
        w.Line($"{name} += __shfl_xor_sync(0xffffffffu, {name}, 1);");
        w.Line($"{name} += __shfl_xor_sync(0xffffffffu, {name}, 2);");
    }

    /// <summary>
    /// <c>qm[hh]</c>: q·mean(K)·q_sc for this thread's two rows, in the log2 domain: added back to each score before the
    /// user's score modifier, which must see the unsmoothed score (a nonlinear one such as softcap would not commute).
    /// Q must be in shared memory; k_mean is required by the launcher for these variants.
    /// </summary>
    public void WriteRowMeanScores()
    {
        w.Line($"float {N.RowMeanScores}[2];  // q·mean(K)·q_sc of rows g and g + 8: what K smoothing took from every score of the row");
        w.Line($"#pragma unroll");
        w.Block($"for (int hh = 0; hh < 2; ++hh)", () =>
        {
            WriteRowMeanDot("dot", $"{rowOrigin} + {N.Group} + 8 * hh", guarded: false);
            w.Line($"{N.RowMeanScores}[hh] = dot * {AttentionSoftmaxWriter.QScaleOf(plan, "hh")};");
        });
    }
}

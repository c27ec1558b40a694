using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using N = KernelDsl.Generator.Cuda.AttentionNames;

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

    /// <summary>
    /// The user's score modifier applies: scores are turned into the modified natural-log score times log2 e before the
    /// maximum, so the rest of the softmax runs on them with scale 1 and no float bias.
    /// </summary>
    private bool Prescaled => _spec.Score is not null;

    /// <summary>Accumulator r of tile jt: its key in the sequence and its query row, as the m16n8 C fragment lays them out.</summary>
    private string KeyOf => $"{N.KeyBlock} * {_spec.BlockN} + jt * 8 + 2 * {N.ThreadInGroup} + (r & 1)";
    private string RowOf => $"{N.FirstRow} + {rowOrigin} + {N.Group} + 8 * (r >> 1)";

    /// <summary>
    /// Whether key (jt, r) is hidden: outside the sequence, above the causal diagonal for its row, or false under the
    /// user's mask. The mask is asked at every score (behind the causal test, if any), with the row and key clamped into
    /// the sequences (whose arrays it may index), and combined without short-circuits: its loads are then unconditional,
    /// so the compiler loads a row's or a key's array entry once for all the scores that share it, instead of once a score.
    /// </summary>
    private string KeyMasked
    {
        get
        {
            var masked = "(key >= seq_k)";
            if (_spec.Causal)
            {
                masked += $" | (key > row + (seq_k - seq_q))";
            }
            if (_spec.Mask is { } mask)
            {
                // Behind the causal test, the mask is asked only where causality shows the key: a mask may index by
                // an expression (k - q …) that is in bounds only there.
                masked += $"{(_spec.Causal ? " ||" : " |")} (row >= seq_q) | !{ModifierWriter.Call(mask, MaskSite)}";
            }
            return masked;
        }
    }

    /// <summary>A mask's call site: the loop's row and key, clamped into the sequences.</summary>
    private ModifierWriter.ModifierSite MaskSite => Site with { Query = "kdsl_min(row, seq_q - 1)", Key = "kdsl_min(key, seq_k - 1)" };

    /// <summary>
    /// Score (jt, r) as a modifier's call sees it: the ints <c>row</c> and <c>key</c> the loop defines, and their float
    /// positions, the key's as the block's first key converted once plus the score's constant offset.
    /// </summary>
    private ModifierWriter.ModifierSite Site => new(N.Batch, N.Head, "row", "key",
        QueryFloat: $"(float)({RowOf})",
        KeyFloat: $"((float)({N.KeyBlock} * {_spec.BlockN} + 2 * {N.ThreadInGroup}) + (float)(jt * 8 + (r & 1)))");

    /// <summary>A loop over this thread's scores whose body runs only for masked keys.</summary>
    private void WriteForMaskedKeys(string body)
    {
        var row = _spec.Causal || _spec.Mask is not null ? $" const int row = {RowOf};" : "";
        w.Line($"#pragma unroll");
        w.Line($"for (int jt = 0; jt < {plan.STiles}; ++jt)");
        w.Line($"    #pragma unroll");
        w.Line($"    for (int r = 0; r < 4; ++r) {{ const int key = {KeyOf};{row} if ({KeyMasked}) {body} }}");
    }

    /// <summary>
    /// The score modifier on every score of the block: it sees σ·q·k in the natural log, as written in C#: S scaled by
    /// sc = q_sc·k_sc, with q·mean(K)·q_sc added back since K smoothing took it out, times ln 2 — one FFMA on the biased
    /// score, as the plain exponent's (the bias and q·mean fold into the addend). Its result stays in the natural log;
    /// the maximum and the exponent scale it by log2 e. Rows and keys past the sequences are clamped into them for the
    /// call; the mask hides those scores.
    /// </summary>
    private void WriteScoreModifier(ModifierSpec score)
    {
        var groups = plan.KScalesPerBlock;
        w.Line($"// The score modifier sees the natural-log score σ·q·k = (S·sc + q·mean(K)·q_sc)·ln 2 (smoothing took q·mean(K) out):");
        w.Line($"// one FFMA of the biased score by sl = sc·ln 2, plus qb = q·mean(K)·q_sc·ln 2 − bias·sl.");
        if (groups == 1)
        {
            if (PerRow)
            {
                w.Line($"const float sl[2] = {{{N.ScoreScale}[0] * KDSL_LN2, {N.ScoreScale}[1] * KDSL_LN2}};");
            }
            else
            {
                w.Line($"const float sl = {N.ScoreScale} * KDSL_LN2;");
            }
            w.Line($"const float qb[2] = {{fmaf(-KDSL_FLOAT_BIAS, {Row("sl", "0")}, {N.RowMeanScores}[0] * KDSL_LN2), fmaf(-KDSL_FLOAT_BIAS, {Row("sl", "1")}, {N.RowMeanScores}[1] * KDSL_LN2)}};");
        }
        else
        {
            w.Line($"float sl[{groups}]{(PerRow ? "[2]" : "")}, qb[{groups}][2];");
            w.Line($"#pragma unroll");
            var scale = PerRow
                ? $"sl[ks][0] = {N.ScoreScale}[ks][0] * KDSL_LN2; sl[ks][1] = {N.ScoreScale}[ks][1] * KDSL_LN2;"
                : $"sl[ks] = {N.ScoreScale}[ks] * KDSL_LN2;";
            w.Line($"for (int ks = 0; ks < {groups}; ++ks) {{ {scale} qb[ks][0] = fmaf(-KDSL_FLOAT_BIAS, {Row("sl[ks]", "0")}, {N.RowMeanScores}[0] * KDSL_LN2); qb[ks][1] = fmaf(-KDSL_FLOAT_BIAS, {Row("sl[ks]", "1")}, {N.RowMeanScores}[1] * KDSL_LN2); }}");
        }
        var (sl, qb) = (Grouped("sl", $"jt / {TilesPerScale}", "r >> 1"), groups == 1 ? "qb[r >> 1]" : $"qb[jt / {TilesPerScale}][r >> 1]");
        w.Line($"#pragma unroll");
        w.Line($"for (int jt = 0; jt < {plan.STiles}; ++jt)");
        w.Line($"    #pragma unroll");
        w.Line($"    for (int r = 0; r < 4; ++r) {{");
        w.Line($"        const int key = kdsl_min({KeyOf}, seq_k - 1), row = kdsl_min({RowOf}, seq_q - 1);");
        w.Line($"        {N.Scores}[jt][r] = {ModifierWriter.Call(score, Site, $"fmaf({N.Scores}[jt][r], {sl}, {qb})")};");
        w.Line($"    }}");
    }

    /// <summary>Q is scaled per row (quantized in the kernel): q_sc, and so sc, sl, hold one value per row half.</summary>
    private bool PerRow => plan.QuantizesQ;

    /// <summary>Row half <paramref name="half"/>'s entry of a per-row-half value, or the value itself when Q's scale is the block's.</summary>
    private string Row(string value, string half) => PerRow ? $"{value}[{half}]" : value;

    /// <summary>Q's scale for row half <paramref name="half"/> (g or g + 8): per row, or the block's one scale.</summary>
    public static string QScaleOf(AttentionPlan plan, string half) => plan.QuantizesQ ? $"{N.QScale}[{half}]" : N.QScale;

    /// <summary>K scale group <paramref name="group"/>'s entry of a per-group value (the value itself with one group), for row half <paramref name="half"/>.</summary>
    private string Grouped(string value, string group, string half) => Row(plan.KScalesPerBlock == 1 ? value : $"{value}[{group}]", half);

    /// <summary>The scale of tile jt's scores in row half <paramref name="half"/>: q_sc · its K block's scale.</summary>
    private string ScaleOf(string tile, string half) => Grouped(N.ScoreScale, $"{tile} / {TilesPerScale}", half);

    /// <summary>The exponent's offset for tile jt's scores in row half hh (see <see cref="WriteExponentOffsets"/>).</summary>
    private string OffsetOf(string tile, string half) => plan.KScalesPerBlock == 1 || Prescaled ? $"{N.ExponentOffset}[{half}]" : $"{N.ExponentOffset}[{tile} / {TilesPerScale}][{half}]";

    /// <summary>log2 of what quantized P is scaled by before it is rounded, as a float literal.</summary>
    private string Log2PScale => (Math.Log(plan.PScale) / Math.Log(2)).ToString("G9", CultureInfo.InvariantCulture) + "f";

    /// <summary>exp2 of score (jt, r): PScale·P for quantized P, P itself for 16-bit P; 2^-∞ = 0 for a masked key.</summary>
    private string Exp(string tile, string r, string half) => Prescaled
        ? $"kdsl_exp2(fmaf({N.Scores}[{tile}][{r}], KDSL_LOG2E, -{OffsetOf(tile, half)}))"
        : $"kdsl_exp2(fmaf({N.Scores}[{tile}][{r}], {ScaleOf(tile, half)}, -{OffsetOf(tile, half)}))";

    /// <summary><see cref="Exp(string, string, string)"/> of a score whose accumulator index is known here.</summary>
    private string Exp(string tile, int r) => Exp(tile, $"{r}", $"{r >> 1}");

    /// <summary>K scale group ks of block j times <paramref name="factor"/>, or 1 for a group past the last key (its keys are masked).</summary>
    private string GroupKScale(string factor) =>
        $"{N.KeyBlock} * {plan.KScalesPerBlock} + ks < {N.KTiles} ? {factor}k_scale[{N.BatchKvHead} * {N.KTiles} + {N.KeyBlock} * {plan.KScalesPerBlock} + ks] : 1.f";

    /// <summary>The key block's one K scale (one per block of keys).</summary>
    private static string KScaleOfBlock => $"k_scale[{N.BatchKvHead} * {N.KTiles} + {N.KeyBlock}]";

    /// <summary>
    /// Loads this block's K scales into <c>ksc</c>, for a caller that issues them ahead of its MMAs so that their latency
    /// hides under Q·Kᵀ; <see cref="WriteSoftmax"/> then reads them with <c>kScalesLoaded</c>.
    /// </summary>
    public void WriteKScaleLoads()
    {
        var k = plan.KScalesPerBlock;
        w.Line($"// This block's K scales, loaded before the MMAs are issued: their latency hides under Q·Kᵀ.");
        if (k == 1)
        {
            w.Line($"const float {N.KScales} = {KScaleOfBlock};");
            return;
        }
        w.Line($"float {N.KScales}[{k}];  // one past the last key's scale is never read (its keys are masked)");
        w.Line($"#pragma unroll");
        w.Line($"for (int ks = 0; ks < {k}; ++ks) {N.KScales}[ks] = {GroupKScale("")};");
    }

    /// <param name="kScalesLoaded">The block's K scales are already in <c>ksc</c> (<see cref="WriteKScaleLoads"/>).</param>
    public void WriteSoftmax(bool kScalesLoaded = false)
    {
        var s = _spec;
        w.Line($"// Online softmax in the log2 domain (softmax scale · log2 e is folded into q_scale).");
        if (plan.KScalesPerBlock == 1)
        {
            var k = kScalesLoaded ? N.KScales : KScaleOfBlock;
            if (PerRow)
            {
                w.Line($"const float {N.ScoreScale}[2] = {{{N.QScale}[0] * {k}, {N.QScale}[1] * {k}}};  // Q is scaled per row");
            }
            else
            {
                w.Line($"const float {N.ScoreScale} = {N.QScale} * {k};");
            }
        }
        else
        {
            w.Line($"// {plan.KScalesPerBlock} K scales per block of {s.BlockN} keys{(PerRow ? ", times each row's Q scale" : "")}.");
            w.Line($"float {N.ScoreScale}[{plan.KScalesPerBlock}]{(PerRow ? "[2]" : "")};");
            w.Line($"#pragma unroll");
            if (PerRow)
            {
                var k = kScalesLoaded ? $"{N.KScales}[ks]" : $"({GroupKScale("")})";
                w.Line($"for (int ks = 0; ks < {plan.KScalesPerBlock}; ++ks) {{ const float k_sc = {k}; {N.ScoreScale}[ks][0] = {N.QScale}[0] * k_sc; {N.ScoreScale}[ks][1] = {N.QScale}[1] * k_sc; }}");
            }
            else if (kScalesLoaded)
            {
                w.Line($"for (int ks = 0; ks < {plan.KScalesPerBlock}; ++ks) {N.ScoreScale}[ks] = {N.QScale} * {N.KScales}[ks];");
            }
            else
            {
                w.Line($"for (int ks = 0; ks < {plan.KScalesPerBlock}; ++ks) {N.ScoreScale}[ks] = {GroupKScale($"{N.QScale} * ")};  // one past the last key's scale is never read (its keys are masked)");
            }
        }
        var kb = N.KeyBlock;
        var crossing = $"({kb} + 1) * {s.BlockN} > seq_k";
        if (s.Causal)
        {
            crossing += $" || ({kb} + 1) * {s.BlockN} - 1 > {N.FirstRow} + (seq_k - seq_q)";
        }
        if (s.Mask is { } mask)
        {
            crossing += $" || {KeyBlockRangeWriter.PartialBlock(plan, mask, kb)}";
        }
        var what = s.Causal ? " or the causal diagonal" : "";
        w.Line($"// Only a block that crosses the end of the keys{what}{(s.Mask is null ? "" : ", or that the mask does not show whole,")} compares keys; the others skip the masks.");
        w.Line($"const bool masked = {crossing};");
        w.Line($"float {N.Scores}[{plan.STiles}][4];  // {(Prescaled ? "bias + S as floats, then the modified score in the natural log" : "bias + S as floats")}, −∞ where masked");
        w.Line($"#pragma unroll");
        w.Line($"for (int jt = 0; jt < {plan.STiles}; ++jt) {{ {N.Scores}[jt][0] = __int_as_float({N.S}[jt][0]); {N.Scores}[jt][1] = __int_as_float({N.S}[jt][1]); {N.Scores}[jt][2] = __int_as_float({N.S}[jt][2]); {N.Scores}[jt][3] = __int_as_float({N.S}[jt][3]); }}");
        if (s.Score is { } score)
        {
            WriteScoreModifier(score);
        }
        w.Block($"if (masked)", () => WriteForMaskedKeys($"{N.Scores}[jt][r] = -KDSL_INF;"));
        // A balanced tree: fmaxf is exact, so the order is free and the dependency chain is log2 deep.
        string Tree(int half, int first, int count) => MaxTree(Enumerable.Range(first, count).SelectMany(jt => new[] { $"{N.Scores}[{jt}][{2 * half}]", $"{N.Scores}[{jt}][{2 * half + 1}]" }).ToList());
        if (plan.KScalesPerBlock == 1 || Prescaled)
        {
            w.Line($"float block_max[2] = {{{Tree(0, 0, plan.STiles)},");
            w.Line($"                       {Tree(1, 0, plan.STiles)}}};");
        }
        else
        {
            // Each group's maximum is scaled by its own K scale before the groups meet; scales are positive, so −∞ stays −∞.
            string Scaled(int half, int group) => $"({Tree(half, group * TilesPerScale, TilesPerScale)} - KDSL_FLOAT_BIAS) * {Grouped(N.ScoreScale, $"{group}", $"{half}")}";
            string Groups(int half) => MaxTree(Enumerable.Range(0, plan.KScalesPerBlock).Select(g => Scaled(half, g)).ToList());
            w.Line($"float block_max[2] = {{{Groups(0)},");
            w.Line($"                       {Groups(1)}}};");
        }
        w.Line($"float {N.Alpha}[2], {N.Base}[2];");
        w.Line($"bool grew = false;");
        w.Line($"#pragma unroll");
        w.Block($"for (int hh = 0; hh < 2; ++hh)", () =>
        {
            w.Line($"block_max[hh] = fmaxf(block_max[hh], __shfl_xor_sync(0xffffffffu, block_max[hh], 1));");
            w.Line($"block_max[hh] = fmaxf(block_max[hh], __shfl_xor_sync(0xffffffffu, block_max[hh], 2));");
            if (Prescaled)
            {
                w.Line($"const float new_max = fmaxf({N.RowMax}[hh], block_max[hh] * KDSL_LOG2E);  // modified scores are in the natural log");
            }
            else if (plan.KScalesPerBlock == 1)
            {
                w.Line($"const float new_max = fmaxf({N.RowMax}[hh], block_max[hh] == -KDSL_INF ? -KDSL_INF : (block_max[hh] - KDSL_FLOAT_BIAS) * {Row(N.ScoreScale, "hh")});");
            }
            else
            {
                w.Line($"const float new_max = fmaxf({N.RowMax}[hh], block_max[hh]);  // already scaled");
            }
            w.Line($"{N.Base}[hh] = new_max == -KDSL_INF ? 0.f : new_max;  // a fully masked row so far: keep exp2 finite");
            w.Line($"{N.Alpha}[hh] = new_max > {N.RowMax}[hh] ? kdsl_exp2({N.RowMax}[hh] - {N.Base}[hh]) : 1.f;");
            w.Line($"grew |= new_max > {N.RowMax}[hh];");
            w.Line($"{N.RowMax}[hh] = new_max;");
            w.Line($"{N.RowSum}[hh] *= {N.Alpha}[hh];");
        });
        w.Line($"// O is rescaled only when a row of the warp saw a new maximum; past the first blocks that is rare.");
        w.Block($"if (__any_sync(0xffffffffu, grew))", () =>
        {
            w.Line($"#pragma unroll");
            w.Line($"for (int i = 0; i < {plan.OTiles}; ++i) {{ {N.O}[i][0] *= {N.Alpha}[0]; {N.O}[i][1] *= {N.Alpha}[0]; {N.O}[i][2] *= {N.Alpha}[1]; {N.O}[i][3] *= {N.Alpha}[1]; }}");
        });
        WriteExponentOffsets();
        if (plan.FloatPv)
        {
            w.Line($"// P stays 16-bit (accuracy mode), rounded to {plan.Pv.AElement.CudaName()} when packed for the MMA. The row sum adds P before that");
            w.Line($"// rounding: round-to-nearest-even is unbiased, and it spares two conversions per score. Masked keys give 2^-∞ = 0.");
            w.Line($"float p[{plan.STiles}][4];");
            w.Line($"#pragma unroll");
            w.Line($"for (int jt = 0; jt < {plan.STiles}; ++jt)");
            w.Line($"    #pragma unroll");
            w.Line($"    for (int r = 0; r < 4; ++r) {{ p[jt][r] = {Exp("jt", "r", "r >> 1")}; {N.RowSum}[r >> 1] += p[jt][r]; }}");
        }
        else if (plan.Fp8Pv)
        {
            w.Line($"// P rounded to e4m3: exp2 gives {plan.PScale}·P ≤ {plan.PScale}, e4m3's largest value, and each pair of scores becomes two codes in the");
            w.Line($"// low half of {N.PPairs}[jt][0] (row g) and [1] (row g + 8). The row sums add the floats before rounding, as fp8 P·V cannot");
            w.Line($"// hand the codes to an integer dot product; e4m3's round-to-nearest-even errors are relative and unbiased.");
            w.Line($"u32 {N.PPairs}[{plan.STiles}][2];");
            w.Line($"#pragma unroll");
            w.Block($"for (int jt = 0; jt < {plan.STiles}; ++jt)", () =>
            {
                w.Line($"const float e0 = {Exp("jt", 0)}, e1 = {Exp("jt", 1)}, e2 = {Exp("jt", 2)}, e3 = {Exp("jt", 3)};");
                w.Line($"{N.RowSum}[0] += e0 + e1;");
                w.Line($"{N.RowSum}[1] += e2 + e3;");
                w.Line($"{N.PPairs}[jt][0] = kdsl_e4m3x2(e0, e1);");
                w.Line($"{N.PPairs}[jt][1] = kdsl_e4m3x2(e2, e3);");
            });
        }
        else
        {
            w.Line($"// P quantized to {plan.Pv.AElement.CudaName()}: exp2 gives {plan.PScale}·P, rounded to an integer n per score in pairs of f16 1024 + n");
            w.Line($"// ({N.PPairs}[jt][0]: the row g pair, {N.PPairs}[jt][1]: row g + 8). The packing gathers the low bytes and adds them to the row sums.");
            w.Line($"u32 {N.PPairs}[{plan.STiles}][2];");
            w.Line($"#pragma unroll");
            w.Line($"for (int jt = 0; jt < {plan.STiles}; ++jt) {{ {N.PPairs}[jt][0] = kdsl_f16x2_u8({Exp("jt", 0)}, {Exp("jt", 1)}); {N.PPairs}[jt][1] = kdsl_f16x2_u8({Exp("jt", 2)}, {Exp("jt", 3)}); }}");
        }
    }

    /// <summary>
    /// cb: what one FFMA per score subtracts from xs = bias + S scaled by sc to give the exponent: log2(PScale·P) =
    /// S·sc − base + log2 PScale = xs·sc − (bias·sc + base − log2 PScale). Rounding bias·sc + … once costs up to half an ulp
    /// of 1.26e7·sc, under one S quantum (sc); quantized P gives up one quantum more (+ sc), so that the row's largest
    /// score can never round past PScale (with sc above ~4e-3, 255.5 would wrap the byte to 0).
    /// </summary>
    private void WriteExponentOffsets()
    {
        if (Prescaled)
        {
            // The exponent x·log2 e − base + log2 PScale of the row's largest score is log2 PScale within half an ulp of base:
            // 2^that rounds to PScale, never past it.
            var log2P = plan.FloatPv ? "" : $" - {Log2PScale}";
            w.Line($"const float {N.ExponentOffset}[2] = {{{N.Base}[0]{log2P}, {N.Base}[1]{log2P}}};  // base{(plan.FloatPv ? "" : $" − log2 {plan.PScale}")}: one FFMA per score");
            return;
        }
        // e4m3's conversion saturates at PScale instead of wrapping, so the fp8 mode needs no quantum of headroom.
        string Offset(string scale, int half) => plan.FloatPv
            ? $"fmaf(KDSL_FLOAT_BIAS, {scale}, {N.Base}[{half}])"
            : plan.Fp8Pv
            ? $"fmaf(KDSL_FLOAT_BIAS, {scale}, {N.Base}[{half}] - {Log2PScale})"
            : $"fmaf(KDSL_FLOAT_BIAS, {scale}, {N.Base}[{half}] + {scale} - {Log2PScale})";
        var what = plan.FloatPv ? "bias·sc + base" : plan.Fp8Pv ? $"bias·sc + base − log2 {plan.PScale}" : $"bias·sc + base + sc − log2 {plan.PScale}";
        if (plan.KScalesPerBlock == 1)
        {
            w.Line($"const float {N.ExponentOffset}[2] = {{{Offset(Row(N.ScoreScale, "0"), 0)}, {Offset(Row(N.ScoreScale, "1"), 1)}}};  // {what}: one FFMA per score");
            return;
        }
        w.Line($"float {N.ExponentOffset}[{plan.KScalesPerBlock}][2];  // {what}: one FFMA per score");
        w.Line($"#pragma unroll");
        w.Line($"for (int ks = 0; ks < {plan.KScalesPerBlock}; ++ks) {{ {N.ExponentOffset}[ks][0] = {Offset(Grouped(N.ScoreScale, "ks", "0"), 0)}; {N.ExponentOffset}[ks][1] = {Offset(Grouped(N.ScoreScale, "ks", "1"), 1)}; }}");
    }

    /// <summary>
    /// P packed into the P·V MMA's A registers, <c>name[PvSteps][4]</c>, per FragmentComposition.PackingOf; integer P
    /// also joins the row sums here, from the very bytes the MMA reads.
    /// </summary>
    public void WritePackP(string name = N.PackedP, bool declare = true)
    {
        var pv = plan.PvWarp;
        var elementsPerReg = 4 / pv.AElement.SizeInBytes();
        var sTilesPerStep = pv.K / plan.QkWarp.N;
        if (declare)
        {
            w.Line($"u32 {name}[{plan.PvSteps}][4];");
        }
        var rowHalfOf = new int[pv.ARegisters];
        w.Line($"#pragma unroll");
        w.Block($"for (int kk = 0; kk < {plan.PvSteps}; ++kk)", () =>
        {
            for (var reg = 0; reg < pv.ARegisters; reg++)
            {
                var sources = Enumerable.Range(0, elementsPerReg).Select(e => FragmentComposition.PackingOf(pv, reg, e)).ToArray();
                string packed;
                if (elementsPerReg == 4)
                {
                    // Two pairs of codes: each pair must be one row's two neighbouring accumulators of one tile.
                    string Pair(int e)
                    {
                        var ((tile, first), (tile2, second)) = (sources[e], sources[e + 1]);
                        if (tile2 != tile || first % 2 != 0 || second != first + 1 || first / 2 != sources[0].Accumulator / 2)
                        {
                            throw new InvalidOperationException($"P·V operand register {reg} does not take 8-bit P as pairs of neighbouring accumulators of one row.");
                        }
                        return $"{N.PPairs}[kk * {sTilesPerStep} + {tile}][{first / 2}]";
                    }
                    rowHalfOf[reg] = sources[0].Accumulator / 2;
                    // u8 codes sit in bytes 0 and 2 of each f16 pair, e4m3 codes in bytes 0 and 1.
                    packed = $"kdsl_prmt({Pair(0)}, {Pair(2)}, {(plan.Fp8Pv ? "0x5410u" : "0x6420u")})";
                }
                else
                {
                    var values = sources.Select(x => $"p[kk * {sTilesPerStep} + {x.Tile}][{x.Accumulator}]").ToArray();
                    packed = $"kdsl_pack_{(pv.AElement == Element.BF16 ? "bf16" : "f16")}x2({values[0]}, {values[1]})";
                }
                w.Line($"{name}[kk][{reg}] = {packed};");
            }
        });
        if (elementsPerReg == 4 && !plan.Fp8Pv)
        {
            w.Line($"u32 p_sum[2] = {{0u, 0u}};  // the row sums add the quantized P, byte by byte as the MMA reads it");
            w.Line($"#pragma unroll");
            w.Line($"for (int kk = 0; kk < {plan.PvSteps}; ++kk) {{ {string.Join(" ", Enumerable.Range(0, pv.ARegisters).Select(reg => $"p_sum[{rowHalfOf[reg]}] = kdsl_byte_sum({name}[kk][{reg}], p_sum[{rowHalfOf[reg]}]);"))} }}");
            w.Line($"{N.RowSum}[0] += (float)p_sum[0];");
            w.Line($"{N.RowSum}[1] += (float)p_sum[1];");
        }
    }

    private static string MaxTree(IReadOnlyList<string> values) => values.Count == 1
        ? values[0]
        : $"fmaxf({MaxTree(values.Take(values.Count / 2).ToList())}, {MaxTree(values.Skip(values.Count / 2).ToList())})";
}

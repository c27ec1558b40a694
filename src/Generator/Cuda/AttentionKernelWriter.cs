using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using N = KernelDsl.Generator.Cuda.AttentionNames;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// Writes the INT8 FlashAttention forward kernel from its plan, one method per section: tile loader, prologue,
/// S = Q·Kᵀ, online softmax with P quantization, P·V through the declared V atom, epilogue.
/// </summary>
public sealed class AttentionKernelWriter(AttentionPlan plan, Composition v)
{
    private readonly AttentionSpec _spec = plan.Spec;
    private CodeWriter _w = null!;

    public string KernelName => _spec.KernelPrefix;

    public void WriteLoaders(CodeWriter w)
    {
        _w = w;
        var s = _spec;
        var d = s.HeadDim;
        w.Line($"// Global → shared with cp.async 16. Rows past the tensor's end are zero-filled, so tails need no branch in the math.");
        WriteRowLoader("kdsl_load_q", Operand.Q, s.BlockM, d, "valid_rows", "(long long)" + d);
        WriteRowLoader("kdsl_load_k", Operand.K, s.BlockN, d, "valid_rows", "(long long)" + d);
        if (plan.PretransposedV)
        {
            w.Line($"// Recipe C: V was written [D][S_pad] in π order by its quantize kernel; a tile is {d} channel rows × {s.BlockN} tokens.");
            w.Block($"static __device__ __forceinline__ void kdsl_load_v(u8* dst, const u8* src, int token0, long long ld, int tid)", () =>
                TileCopyWriter.Write(w, "kdsl_cp_async_16", Operand.V, "dst", plan.Threads, plan.VStageBytes / 16 / plan.Threads, s.BlockN,
                    [], "token0 + col < ld ? 16 : 0", "src + row * ld + token0 + col", "src"));
        }
        else
        {
            WriteRowLoader("kdsl_load_v", Operand.V, s.BlockN, d * plan.VBytes, "valid_rows", $"ld * {plan.VBytes}", "long long ld");
        }
        w.Line($"// One K/V block: keys [block·{s.BlockN}, block·{s.BlockN} + {s.BlockN}).");
        w.Block($"static __device__ __forceinline__ void kdsl_load_kv(u8* sk, u8* sv, const u8* k_src, const u8* v_src, int block, int seq_k, long long v_ld, int tid)", () =>
        {
            w.Line($"const int key0 = block * {s.BlockN};");
            w.Line($"kdsl_load_k(sk, k_src + (long long)key0 * {d}, seq_k - key0, tid);");
            if (plan.PretransposedV)
            {
                w.Line($"kdsl_load_v(sv, v_src, key0, v_ld, tid);");
            }
            else
            {
                w.Line($"kdsl_load_v(sv, v_src + (long long)key0 * v_ld * {plan.VBytes}, seq_k - key0, v_ld, tid);");
            }
        });
    }

    /// <summary>A loader of <paramref name="rows"/> rows of <paramref name="rowBytes"/> bytes into <paramref name="operand"/>'s swizzled tile.</summary>
    private void WriteRowLoader(string name, Operand operand, int rows, int rowBytes, string validRows, string sourceLd, string? extra = null)
    {
        var chunks = rows * rowBytes / 16;
        _w.Block($"static __device__ __forceinline__ void {name}(u8* dst, const u8* src, int {validRows}, {(extra is null ? "" : extra + ", ")}int tid)", () =>
            TileCopyWriter.Write(_w, "kdsl_cp_async_16", operand, "dst", plan.Threads, chunks / plan.Threads, rowBytes,
                [], $"row < {validRows} ? 16 : 0", $"src + row * {sourceLd} + col", "src"));
    }

    /// <summary>The block-relative first query row of the warp's 16, the shared writers' row origin.</summary>
    private static string WarpRowOrigin => $"{N.Warp} * 16";

    public void WriteKernel(CodeWriter w)
    {
        _w = w;
        var s = _spec;
        var d = s.HeadDim;
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads}, {plan.MinBlocksPerSm})");
        KernelSignatureWriter.WriteDeclaration(w, KernelName, plan.Signature);
        w.Raw("{");
        w.Indent();
        WritePrologue();
        WriteMainLoop();
        WriteEpilogue();
        w.Outdent();
        w.Raw("}");
    }

    private void WritePrologue()
    {
        var s = _spec;
        var d = s.HeadDim;
        _w.Line($"extern __shared__ __align__(128) u8 kdsl_shared[];");
        _w.Line($"u8* const {N.SharedQ} = kdsl_shared;                                   // Q: {s.BlockM}×{d} bytes");
        _w.Line($"u8* const sk = kdsl_shared + {plan.QStageBytes};                // K: {s.Stages} × {plan.KStageBytes} bytes");
        _w.Line($"u8* const sv = kdsl_shared + {plan.QStageBytes + s.Stages * plan.KStageBytes};  // V: {s.Stages} × {plan.VStageBytes} bytes");
        _w.Line($"const int tid = threadIdx.x, {N.Lane} = tid & 31, {N.Warp} = tid >> 5, {N.Group} = {N.Lane} >> 2, {N.ThreadInGroup} = {N.Lane} & 3;");
        QueryBlockWriter.Write(_w, plan);
        QueryBlockWriter.WriteScaleTiles(_w, plan);
        KeyBlockRangeWriter.Write(_w, plan);
        _w.Line($"const u8* const q_src = (const u8*)(Q + ({N.BatchHead} * seq_q + {N.FirstRow}) * {d});");
        _w.Line($"const u8* const k_src = (const u8*)(K + {N.BatchKvHead} * seq_k * {d});");
        _w.Line($"const u8* const v_src = (const u8*)(V + {N.Batch} * v_stride_b + {N.KvHead} * v_stride_h);");
        CopyProgramWriter.WriteLaneOffsets(_w, plan.QProgram!, "q");
        CopyProgramWriter.WriteLaneOffsets(_w, plan.KProgram!, "k");
        CopyProgramWriter.WriteLaneOffsets(_w, plan.VProgram!, "v");
        _w.Line($"const u32 sq_addr = kdsl_smem({N.SharedQ}), sk_addr = kdsl_smem(sk), sv_addr = kdsl_smem(sv);");
        _w.Line($"// Swizzled offsets of this lane's first ldmatrix row; where the layout allows, each step XORs a constant into them.");
        _w.Line($"const int q_lane = {LayoutWriter.FunctionName(Operand.Q)}({WarpRowOrigin} + q_row, q_chunk * 16);");
        _w.Line($"const int k_lane = {LayoutWriter.FunctionName(Operand.K)}(k_row, k_chunk * 16);");
        _w.Line($"const int v_lane = {LayoutWriter.FunctionName(Operand.V)}(v_row, v_chunk * 16);");
        _w.Line();
        _w.Line($"kdsl_load_q({N.SharedQ}, q_src, seq_q - {N.FirstRow}, tid);");
        _w.Line($"#pragma unroll");
        _w.Block($"for (int st = 0; st < {s.Stages - 1}; ++st)", () =>
        {
            _w.Line($"if (st < {N.KeyBlocks}) kdsl_load_kv(sk + st * {plan.KStageBytes}, sv + st * {plan.VStageBytes}, k_src, v_src, {N.FirstKeyBlock} + st, seq_k, v_ld, tid);");
            _w.Line($"kdsl_cp_async_commit();");
        });
        if (s.Stages == 1)
        {
            _w.Line($"kdsl_cp_async_commit();");
        }
        _w.Line();
        _w.Line($"// Per thread: rows g and g+8 of this warp's 16; m = running max (log2 domain), l = partial row sum of P.");
        _w.Line($"float {N.RowMax}[2] = {{-KDSL_INF, -KDSL_INF}}, {N.RowSum}[2] = {{0.f, 0.f}};");
        _w.Line($"float {N.O}[{plan.OTiles}][4];");
        _w.Line($"#pragma unroll");
        _w.Line($"for (int i = 0; i < {plan.OTiles}; ++i) {N.O}[i][0] = {N.O}[i][1] = {N.O}[i][2] = {N.O}[i][3] = 0.f;");
        _w.Line($"const float {N.QScale} = q_scale[{N.BatchHead} * {N.QTiles} + {QueryBlockWriter.QScaleTile(plan)}];");
        if (s.Score is not null)
        {
            _w.Line($"// The score modifier needs q·mean(K) of this thread's rows, read from Q in shared memory: wait for it once.");
            _w.Line($"kdsl_cp_async_wait<0>();");
            _w.Line($"__syncthreads();");
            new AttentionEpilogueWriter(plan, v.Channels!, _w, WarpRowOrigin).WriteRowMeanScores();
        }
        _w.Line();
    }

    private void WriteMainLoop()
    {
        var s = _spec;
        var stages = s.Stages;
        _w.Block($"for (int j = 0; j < {N.KeyBlocks}; ++j)", () =>
        {
            if (stages == 1)
            {
                _w.Line($"kdsl_load_kv(sk, sv, k_src, v_src, {N.FirstKeyBlock} + j, seq_k, v_ld, tid);");
                _w.Line($"kdsl_cp_async_commit();");
                _w.Line($"kdsl_cp_async_wait<0>();");
                _w.Line($"__syncthreads();");
            }
            else
            {
                _w.Line($"kdsl_cp_async_wait<{stages - 2}>();  // K/V block j (and Q) have landed");
                _w.Line($"__syncthreads();                // ...for every thread; stage (j - 1) % {stages} is free again");
                _w.Line($"if (j + {stages - 1} < {N.KeyBlocks}) kdsl_load_kv(sk + (j + {stages - 1}) % {stages} * {plan.KStageBytes}, sv + (j + {stages - 1}) % {stages} * {plan.VStageBytes}, k_src, v_src, {N.FirstKeyBlock} + j + {stages - 1}, seq_k, v_ld, tid);");
                _w.Line($"kdsl_cp_async_commit();");
            }
            _w.Line($"const int {N.KeyBlock} = {N.FirstKeyBlock} + j;  // the key block of this step");
            _w.Line($"const u32 k_stage = sk_addr + {(stages == 1 ? "0" : $"j % {stages} * {plan.KStageBytes}")};");
            _w.Line($"const u32 v_stage = sv_addr + {(stages == 1 ? "0" : $"j % {stages} * {plan.VStageBytes}")};");
            WriteScores();
            new AttentionSoftmaxWriter(plan, _w, WarpRowOrigin).WriteSoftmax();
            WriteProductPV();
            if (stages == 1)
            {
                _w.Line($"__syncthreads();");
            }
        });
    }

    /// <summary>
    /// The offset expression of one ldmatrix step: (lane XOR column step) + row step when the layout factors for every
    /// lane and step (SmemLayoutSpec.FactorsSteps), else the layout function of the full (row, column).
    /// </summary>
    private string Address(Operand operand, LdmatrixProgram program, int rowBytes, int warps,
        string rowStep, int[] rowSteps, string colStep, int[] colSteps)
    {
        var origins = Enumerable.Range(0, warps).SelectMany(wp => Enumerable.Range(0, 32)
            .Select(l => (wp * 16 * (operand == Operand.Q ? 1 : 0) + program.RowOf(l), 16 * program.ChunkOf(l))));
        var name = operand.ToString().ToLowerInvariant();
        var layout = _spec.LayoutOf(operand)!;
        if (layout.FactorsSteps(rowBytes, origins, rowSteps, colSteps))
        {
            return rowStep == "0" ? $"({name}_lane ^ ({colStep}))" : $"(({name}_lane ^ ({colStep})) + ({rowStep}) * {rowBytes})";
        }
        var rowOrigin = operand == Operand.Q ? $"{WarpRowOrigin} + q_row" : $"{name}_row";
        return $"{LayoutWriter.FunctionName(operand)}({rowStep} + {rowOrigin}, {colStep} + {name}_chunk * 16)";
    }

    private static int[] Steps(int count, int stride) => Enumerable.Range(0, count).Select(i => i * stride).ToArray();

    private string QAddress => Address(Operand.Q, plan.QProgram!, _spec.HeadDim, _spec.Warps, "0", [0], "kk * 32", Steps(plan.QkSteps, 32));

    private string KAddress => Address(Operand.K, plan.KProgram!, _spec.HeadDim, 1, "ni * 16", Steps(_spec.BlockN / 16, 16), "kk * 32", Steps(plan.QkSteps, 32));

    private string VAddress => plan.PretransposedV
        ? Address(Operand.V, plan.VProgram!, plan.VRowBytes, 1, "ci * 16", Steps(_spec.HeadDim / 16, 16), $"kk * {plan.Pv.K}", Steps(plan.PvSteps, plan.Pv.K))
        : Address(Operand.V, plan.VProgram!, plan.VRowBytes, 1, $"kk * {plan.Pv.K}", Steps(plan.PvSteps, plan.Pv.K), $"ci * {16 * plan.VBytes}", Steps(_spec.HeadDim / 16, 16 * plan.VBytes));

    private void WriteScores()
    {
        var s = _spec;
        var (q, k) = (plan.QProgram!, plan.KProgram!);
        if (!plan.BiasedScores)
        {
            throw new System.InvalidOperationException($"|S| can reach 127²·{s.HeadDim}, past the float-bias range; the validator should have refused this head dim.");
        }
        _w.Line($"// S = Q·Kᵀ on {plan.Qk.Ptx}: tile jt holds keys 8jt..8jt+7 of the block.");
        _w.Line($"// The accumulators start at the float bias, so each holds the bits of the float bias + S (|S| ≤ 127²·{s.HeadDim} < 2^22).");
        _w.Line($"int {N.S}[{plan.STiles}][4];");
        _w.Line($"#pragma unroll");
        _w.Block($"for (int kk = 0; kk < {plan.QkSteps}; ++kk)", () =>
        {
            // Q's fragments are re-read from shared memory each block: ldmatrix is cheap, registers are not.
            CopyProgramWriter.WriteLoad(_w, q, "qf", $"sq_addr + {QAddress}");
            _w.Line($"#pragma unroll");
            _w.Block($"for (int ni = 0; ni < {s.BlockN / 16}; ++ni)", () =>
            {
                CopyProgramWriter.WriteLoad(_w, k, "kr", $"k_stage + {KAddress}");
                for (var tile = 0; tile < k.Fragments.Count; tile++)
                {
                    var a = string.Join(", ", q.Fragments[0].Select(r => $"qf{r}"));
                    var (acc, operands) = ($"{N.S}[ni * 2 + {tile}]", $"{a}, kr{k.Fragments[tile][0]}, kr{k.Fragments[tile][1]}");
                    _w.Line($"if (kk == 0) kdsl_{plan.Qk.HelperName}_from({acc}, {operands}, KDSL_FLOAT_BIAS_BITS);");
                    _w.Line($"else kdsl_{plan.Qk.HelperName}({acc}, {operands});");
                }
            });
        });
    }

    private void WriteProductPV()
    {
        var s = _spec;
        var pv = plan.Pv;
        var vp = plan.VProgram!;
        _w.Line($"// O += P·V on {pv.Ptx}; V through {plan.VAtom} ({vp.Name}), P packed from the S accumulators in {plan.POrder} key order.");
        new AttentionSoftmaxWriter(plan, _w, WarpRowOrigin).WritePackP();
        // Channels outer, keys inner: only one 16-channel slice of the block's product is live at a time.
        _w.Line($"#pragma unroll");
        _w.Block($"for (int ci = 0; ci < {s.HeadDim / 16}; ++ci)", () =>
        {
            if (!plan.FloatPv)
            {
                if (plan.BiasedPv)
                {
                    _w.Line($"int ob[2][4];  // this block's int32 product, started at the float bias ({plan.PScale}·127·{s.BlockN} < 2^22)");
                }
                else
                {
                    _w.Line($"int ob[2][4] = {{{{0, 0, 0, 0}}, {{0, 0, 0, 0}}}};  // fresh int32 per KV block: {plan.PScale}·127·{s.BlockN} stays far below 2^31");
                }
            }
            _w.Line($"#pragma unroll");
            _w.Block($"for (int kk = 0; kk < {plan.PvSteps}; ++kk)", () =>
            {
                CopyProgramWriter.WriteLoad(_w, vp, "vr", $"v_stage + {VAddress}");
                for (var tile = 0; tile < vp.Fragments.Count; tile++)
                {
                    var operands = $"{N.PackedP}[kk][0], {N.PackedP}[kk][1], {N.PackedP}[kk][2], {N.PackedP}[kk][3], vr{vp.Fragments[tile][0]}, vr{vp.Fragments[tile][1]}";
                    if (plan.FloatPv)
                    {
                        _w.Line($"kdsl_{pv.HelperName}({N.O}[ci * 2 + {tile}], {operands});");
                    }
                    else if (plan.BiasedPv)
                    {
                        _w.Line($"if (kk == 0) kdsl_{pv.HelperName}_from(ob[{tile}], {operands}, KDSL_FLOAT_BIAS_BITS);");
                        _w.Line($"else kdsl_{pv.HelperName}(ob[{tile}], {operands});");
                    }
                    else
                    {
                        _w.Line($"kdsl_{pv.HelperName}(ob[{tile}], {operands});");
                    }
                }
            });
            if (!plan.FloatPv)
            {
                string Read(int e) => plan.BiasedPv ? $"(__int_as_float(ob[jt][{e}]) - KDSL_FLOAT_BIAS)" : $"(float)ob[jt][{e}]";
                var adds = string.Join(" ", Enumerable.Range(0, 4).Select(e => $"{N.O}[ci * 2 + jt][{e}] += {Read(e)};"));
                _w.Line($"#pragma unroll");
                _w.Line($"for (int jt = 0; jt < 2; ++jt) {{ {adds} }}");
            }
        });
    }

    private void WriteEpilogue()
    {
        _w.Line();
        _w.Line($"// A block no key is visible to (causal, Sq > Sk) skipped the loop: Q's copy must still land before the epilogue reads it.");
        _w.Line($"kdsl_cp_async_wait<0>();");
        _w.Line($"__syncthreads();");
        new AttentionEpilogueWriter(plan, v.Channels!, _w, WarpRowOrigin).Write();
    }
}

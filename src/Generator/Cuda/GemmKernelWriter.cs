using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// Writes the Int8Gemm kernel from its plan: one method per section (tile loader, main loop, MMA step, epilogue),
/// each driven by the declaration — tile sizes, warp grid, stages, copy atoms and swizzles all reach the text.
/// </summary>
public sealed class GemmKernelWriter(GemmPlan plan, Composition b)
{
    private readonly GemmSpec _spec = plan.Spec;
    private CodeWriter _w = null!;

    public string KernelName => _spec.KernelPrefix;
    public string TransposeKernelName => _spec.KernelPrefix + "_transpose_b";

    public void WriteLoader(CodeWriter w)
    {
        _w = w;
        var (aCopy, bCopy) = (CopyFunction(GlobalCopy(Operand.A)), CopyFunction(GlobalCopy(Operand.B)));
        w.Line($"// Global → shared for one k tile: A {plan.ARows}×{plan.ARowBytes} bytes with {CopyAtom.Get(GlobalCopy(Operand.A)).Instructions}, B {plan.BRows}×{plan.BRowBytes} bytes with {CopyAtom.Get(GlobalCopy(Operand.B)).Instructions};");
        w.Line($"// {plan.AChunksPerThread} + {plan.BChunksPerThread} chunks of 16 bytes per thread. Out-of-range bytes are zero-filled, so tails add nothing.");
        w.Block($"static __device__ __forceinline__ void kdsl_load_tile(u8* sa, u8* sb, const s8* A, const s8* B, int M, int N, int K, int lda, int ldb, int m0, int n0, int k0, int tid)", () =>
        {
            WriteOperandLoad(aCopy, "A", "sa", Operand.A, plan.AChunksPerThread, plan.ARowBytes, "m0", "M", "k0", "K", "lda");
            if (plan.BStorage == OperandStorage.KN)
            {
                WriteOperandLoad(bCopy, "B", "sb", Operand.B, plan.BChunksPerThread, plan.BRowBytes, "k0", "K", "n0", "N", "ldb");
            }
            else
            {
                WriteOperandLoad(bCopy, "B", "sb", Operand.B, plan.BChunksPerThread, plan.BRowBytes, "n0", "N", "k0", "K", "ldb");
            }
        });
    }

    /// <summary>The declared global → shared atom of an operand; cp.async when none is declared.</summary>
    private CopyAtomKind GlobalCopy(Operand operand) => _spec.CopyAtomOf(operand, CopyDirection.GlobalToShared) ?? CopyAtomKind.CpAsync16;

    private static string CopyFunction(CopyAtomKind atom) => atom == CopyAtomKind.LdgSts16 ? "kdsl_ldg_sts_16" : "kdsl_cp_async_16";

    /// <summary>One operand's tile: rows and columns past the matrix edge (partial chunks included) are zero-filled.</summary>
    private void WriteOperandLoad(string copy, string tensor, string smem, Operand operand, int chunksPerThread, int rowBytes, string rowOrigin, string rowExtent, string colOrigin, string colExtent, string ld) =>
        TileCopyWriter.Write(_w, copy, operand, smem, plan.Threads, chunksPerThread, rowBytes,
            [$"const int grow = {rowOrigin} + row, gcol = {colOrigin} + col;"],
            $"grow < {rowExtent} ? kdsl_max(0, kdsl_min(16, {colExtent} - gcol)) : 0",
            $"{tensor} + (long long)grow * {ld} + gcol", tensor);

    public void WriteKernel(CodeWriter w)
    {
        _w = w;
        var mma = plan.Mma;
        w.Line($"extern \"C\" __global__ void __launch_bounds__({plan.Threads})");
        w.Block($"{KernelName}({KernelSignature.CudaParameterList(plan.Parameters)})", () =>
        {
            w.Line($"extern __shared__ __align__(128) u8 kdsl_shared[];");
            w.Line($"u8* const sa = kdsl_shared;                      // {_spec.Stages} stages × {plan.AStageBytes} bytes");
            w.Line($"u8* const sb = kdsl_shared + {_spec.Stages * plan.AStageBytes};  // {_spec.Stages} stages × {plan.BStageBytes} bytes");
            w.Line($"const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;");
            w.Line($"const int warp_m = warp % {plan.WarpsM}, warp_n = warp / {plan.WarpsM};  // {plan.WarpsM}×{plan.WarpsN} warps, warp tile {plan.WarpTileM}×{plan.WarpTileN}");
            w.Line($"const int m0 = blockIdx.y * {_spec.BlockM}, n0 = blockIdx.x * {_spec.BlockN};");
            w.Line($"const int k_tiles = (K + {_spec.BlockK - 1}) / {_spec.BlockK};");
            CopyProgramWriter.WriteLaneOffsets(w, plan.AProgram!, "a");
            CopyProgramWriter.WriteLaneOffsets(w, plan.BProgram!, "b");
            w.Line();
            w.Line($"int acc[{plan.MmaTilesM}][{plan.MmaTilesN}][4];");
            w.Line($"#pragma unroll");
            w.Line($"for (int i = 0; i < {plan.MmaTilesM}; ++i)");
            w.Line($"    #pragma unroll");
            w.Line($"    for (int j = 0; j < {plan.MmaTilesN}; ++j)");
            w.Line($"        acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0;");
            w.Line();
            WriteMainLoop(plan.BName);
            w.Line();
            WriteEpilogue();
        });
    }

    private void WriteMainLoop(string bName)
    {
        var stages = _spec.Stages;
        var load = $"kdsl_load_tile(sa + (STAGE) * {plan.AStageBytes}, sb + (STAGE) * {plan.BStageBytes}, A, {bName}, M, N, K, lda, ldb, m0, n0, (KT) * {_spec.BlockK}, tid)";
        string Load(string stage, string kt) => load.Replace("(STAGE)", stage).Replace("(KT)", kt);
        // Any cp.async in the tile must be committed and waited for before the tile is read.
        var async = GlobalCopy(Operand.A) == CopyAtomKind.CpAsync16 || GlobalCopy(Operand.B) == CopyAtomKind.CpAsync16;

        if (stages == 1)
        {
            _w.Line($"// One stage: load, wait, compute, and wait again before the buffer is overwritten.");
            _w.Block($"for (int kt = 0; kt < k_tiles; ++kt)", () =>
            {
                _w.Line($"{Load("0", "kt")};");
                if (async)
                {
                    _w.Line($"kdsl_cp_async_commit();");
                    _w.Line($"kdsl_cp_async_wait<0>();");
                }
                _w.Line($"__syncthreads();");
                WriteComputeStage("sa", "sb");
                _w.Line($"__syncthreads();");
            });
            return;
        }

        _w.Line($"// {stages}-stage cp.async pipeline: {stages - 1} tiles in flight while one is computed.");
        _w.Line($"#pragma unroll");
        _w.Block($"for (int s = 0; s < {stages - 1}; ++s)", () =>
        {
            _w.Line($"if (s < k_tiles) {Load("s", "s")};");
            _w.Line($"kdsl_cp_async_commit();");
        });
        _w.Block($"for (int kt = 0; kt < k_tiles; ++kt)", () =>
        {
            _w.Line($"kdsl_cp_async_wait<{stages - 2}>();  // tile kt has landed");
            _w.Line($"__syncthreads();                // ...for every thread, and stage (kt - 1) % {stages} is free again");
            _w.Line($"const int next = kt + {stages - 1};");
            _w.Line($"if (next < k_tiles) {Load($"next % {stages}", "next")};");
            _w.Line($"kdsl_cp_async_commit();");
            _w.Line($"const int stage = kt % {stages};");
            WriteComputeStage($"sa + stage * {plan.AStageBytes}", $"sb + stage * {plan.BStageBytes}");
        });
    }

    private void WriteComputeStage(string aStage, string bStage)
    {
        var mma = plan.Mma;
        var bProgram = plan.BProgram!;
        _w.Line($"const u8* const a_stage = {aStage};");
        _w.Line($"const u8* const b_stage = {bStage};");
        _w.Line($"#pragma unroll");
        _w.Block($"for (int kk = 0; kk < {plan.KSteps}; ++kk)", () =>
        {
            _w.Line($"u32 af[{plan.MmaTilesM}][4];");
            _w.Line($"#pragma unroll");
            _w.Block($"for (int mi = 0; mi < {plan.MmaTilesM}; ++mi)", () =>
            {
                _w.Line($"kdsl_ldsm_x4(af[mi][0], af[mi][1], af[mi][2], af[mi][3], kdsl_smem(a_stage + {LayoutWriter.FunctionName(Operand.A)}(warp_m * {plan.WarpTileM} + mi * 16 + a_row, kk * {mma.K} + a_chunk * 16)));");
            });
            _w.Line($"u32 bf[{plan.MmaTilesN}][2];");
            _w.Line($"#pragma unroll");
            _w.Block($"for (int ni = 0; ni < {plan.BChunksN}; ++ni)", () =>
            {
                var address = plan.BStorage == OperandStorage.KN
                    ? $"kdsl_smem(b_stage + {LayoutWriter.FunctionName(Operand.B)}(kk * {mma.K} + b_row, warp_n * {plan.WarpTileN} + ni * 16 + b_chunk * 16))"
                    : $"kdsl_smem(b_stage + {LayoutWriter.FunctionName(Operand.B)}(warp_n * {plan.WarpTileN} + ni * 16 + b_row, kk * {mma.K} + b_chunk * 16))";
                _w.Line($"// {bProgram.Name}: {CopyAtom.Get(_spec.CopyAtomOf(Operand.B, CopyDirection.SharedToRegisters)!.Value).Instructions}");
                CopyProgramWriter.WriteLoad(_w, bProgram, "v", address);
                for (var tile = 0; tile < bProgram.Fragments.Count; tile++)
                {
                    var regs = bProgram.Fragments[tile];
                    _w.Line($"bf[ni * {bProgram.Fragments.Count} + {tile}][0] = v{regs[0]}; bf[ni * {bProgram.Fragments.Count} + {tile}][1] = v{regs[1]};");
                }
            });
            _w.Line($"#pragma unroll");
            _w.Line($"for (int mi = 0; mi < {plan.MmaTilesM}; ++mi)");
            _w.Line($"    #pragma unroll");
            _w.Line($"    for (int nj = 0; nj < {plan.MmaTilesN}; ++nj)");
            _w.Line($"        kdsl_{mma.HelperName}(acc[mi][nj], af[mi][0], af[mi][1], af[mi][2], af[mi][3], bf[nj][0], bf[nj][1]);");
        });
    }

    private void WriteEpilogue()
    {
        var channels = b.Channels!;
        var tiles = channels.TileOffsets.Count;
        _w.Line($"// Epilogue. Accumulator column 2t + i of MMA tile j lands on channel {string.Join("/", channels.TileOffsets)}[j] + {channels.PairStride}·t + {channels.OddStride}·i of its 16-column chunk.");
        _w.Line($"const int g = lane >> 2, t = lane & 3;");
        _w.Line($"#pragma unroll");
        _w.Block($"for (int mi = 0; mi < {plan.MmaTilesM}; ++mi)", () =>
        {
            _w.Line($"#pragma unroll");
            _w.Block($"for (int nj = 0; nj < {plan.MmaTilesN}; ++nj)", () =>
            {
                var offset = tiles == 2
                    ? $"(nj & 1) * {channels.TileOffsets[1] - channels.TileOffsets[0]} + {channels.TileOffsets[0]}"
                    : $"{channels.TileOffsets[0]}";
                _w.Line($"const int n_base = n0 + warp_n * {plan.WarpTileN} + (nj >> 1) * 16 + {offset} + {channels.PairStride} * t;");
                _w.Line($"#pragma unroll");
                _w.Block($"for (int h = 0; h < 2; ++h)", () =>
                {
                    _w.Line($"const int m = m0 + warp_m * {plan.WarpTileM} + mi * 16 + g + 8 * h;");
                    _w.Line($"if (m >= M) continue;");
                    _w.Line($"#pragma unroll");
                    _w.Block($"for (int i = 0; i < 2; ++i)", () =>
                    {
                        _w.Line($"const int n = n_base + {channels.OddStride} * i;");
                        _w.Line($"if (n >= N) continue;");
                        if (_spec.Output == GemmOutput.S32)
                        {
                            _w.Line($"C[(long long)m * ldc + n] = acc[mi][nj][2 * h + i];");
                        }
                        else
                        {
                            _w.Line($"C[(long long)m * ldc + n] = kdsl_f32_to_f16((float)acc[mi][nj][2 * h + i] * row_scale[m] * col_scale[n]);");
                        }
                    });
                });
            });
        });
    }

    /// <summary>Recipe C's prologue kernel: B [K][N] → Bt [N][ldbt], k padded with zeros to ldbt.</summary>
    public void WriteTransposeKernel(CodeWriter w)
    {
        w.Line($"// Recipe C: B [K][N] rewritten n-major, Bt [N][ldbt] with k contiguous and zero-padded to ldbt, through a 64×64 shared tile.");
        w.Line($"extern \"C\" __global__ void __launch_bounds__(256)");
        w.Block($"{TransposeKernelName}({KernelSignature.CudaParameterList(GemmPlan.TransposeParameters)})", () =>
        {
            w.Line($"__shared__ s8 tile[64][65];");
            w.Line($"const int k0 = blockIdx.y * 64, n0 = blockIdx.x * 64;");
            w.Block($"for (int i = threadIdx.x; i < 64 * 64; i += 256)", () =>
            {
                w.Line($"const int r = i / 64, c = i % 64;");
                w.Line($"const int k = k0 + r, n = n0 + c;");
                w.Line($"tile[r][c] = (k < K && n < N) ? B[(long long)k * ldb + n] : (s8)0;");
            });
            w.Line($"__syncthreads();");
            w.Block($"for (int i = threadIdx.x; i < 64 * 64; i += 256)", () =>
            {
                w.Line($"const int r = i / 64, c = i % 64;");
                w.Line($"const int n = n0 + r, k = k0 + c;");
                w.Line($"if (n < N && k < ldbt) Bt[(long long)n * ldbt + k] = tile[c][r];");
            });
        });
    }
}

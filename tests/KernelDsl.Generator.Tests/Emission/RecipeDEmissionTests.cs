using System.Collections.Immutable;
using NvrtcAvailability = KernelDsl.NvrtcAvailability;
using NvrtcCompilationException = KernelDsl.NvrtcCompilationException;
using NvrtcRequest = KernelDsl.NvrtcRequest;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Cuda;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace GeneratorTests.Emission;

/// <summary>
/// The emitted form of Recipe D (V_TRANSPOSE.md), the Hopper path's in-kernel V transpose: one warp turns a 32-key ×
/// 16-channel int8 V tile into V transposed, [channel][32 key slots in π order], with Recipe A's load program and
/// the stmatrix store the simulator checks (RecipeDTests). NVRTC compiles it for sm_90 and refuses it for sm_80,
/// where stmatrix does not exist (KDSL0401's premise). RecipeDGpuTests runs it on the H100 (first in run 20); the wgmma
/// kernel's producer emits the same program (Int8AttentionD128WgmmaRecipeD).
/// </summary>
public class RecipeDEmissionTests
{
    internal static string Kernel()
    {
        var load = CopyAtom.Get(CopyAtomKind.LdsmTransPrmt).ProgramFor(OperandStorage.KN, TokenOrder.Pi)!;
        var w = new CodeWriter();
        w.Raw("""
            typedef unsigned char u8;
            typedef unsigned short u16;
            typedef unsigned int u32;
            """);
        PtxHelpers.Write(w, PtxHelpers.For(CopyAtomKind.LdsmTransPrmt).Concat(PtxHelpers.For(CopyAtomKind.Stmatrix)), []);
        w.Line($"// One warp: v is 32 keys × 16 channels (int8, row-major); vt gets 16 channels × 32 key slots, slot s holding key π(s).");
        w.Block($"extern \"C\" __global__ void kdsl_recipe_d(const u8* __restrict__ v, u8* __restrict__ vt)", () =>
        {
            w.Line($"__shared__ __align__(128) u8 tile[32 * 16];");
            w.Line($"__shared__ __align__(128) u8 transposed[16 * 32];");
            w.Line($"const int lane = threadIdx.x;");
            w.Line($"for (int i = lane; i < 32 * 16; i += 32) tile[i] = v[i];");
            w.Line($"__syncwarp();");
            CopyProgramWriter.WriteLaneOffsets(w, load, "v");
            CopyProgramWriter.WriteLaneOffsets(w, StmatrixProgram.RecipeD, "t");
            CopyProgramWriter.WriteLoad(w, load, "vr", "kdsl_smem(tile) + v_row * 16 + v_chunk * 16");
            CopyProgramWriter.WriteStore(w, StmatrixProgram.RecipeD, "vr", "kdsl_smem(transposed) + t_row * 32 + t_chunk * 16");
            w.Line($"__syncwarp();");
            w.Line($"for (int i = lane; i < 16 * 32; i += 32) vt[i] = transposed[i];");
        });
        return w.ToString();
    }

    /// <summary>The reviewed kernel; tests/KernelDsl.Gpu.Tests runs this file on the GPU (RecipeDGpuTests).</summary>
    [Fact]
    public void The_kernel_matches_its_snapshot() => GeneratorTests.Infrastructure.Snapshot.Verify(Kernel(), "RecipeD", "cu");

    [Fact]
    public void The_store_is_one_stmatrix_of_the_prmt_results()
    {
        var cuda = Kernel();
        Assert.Contains("kdsl_stsm_x4(kdsl_smem(transposed) + t_row * 32 + t_chunk * 16, vr4, vr5, vr6, vr7);", cuda);
        Assert.Contains("const int t_row = ((lane >> 0) & 1) * 2 + ((lane >> 1) & 1) * 4 + ((lane >> 2) & 1) * 8 + ((lane >> 4) & 1);".Replace("(lane >> 0)", "lane"), cuda);
        Assert.Contains("stmatrix.sync.aligned.m8n8.x4.shared.b16", cuda);
    }

    [Theory]
    [InlineData("sm_90", true)]
    [InlineData("sm_80", false)]
    [KernelDsl.Testing.RequiresNvrtc]
    public void Nvrtc_compiles_it_where_stmatrix_exists(string arch, bool compiles)
    {
        var compiler = NvrtcAvailability.GetOrSkip(Assert.Skip);
        var request = new NvrtcRequest(Kernel(), "RecipeD", arch, ImmutableArray<string>.Empty);
        if (compiles)
        {
            Assert.NotEmpty(compiler.Compile(request).Cubin);
        }
        else
        {
            var error = Assert.Throws<NvrtcCompilationException>(() => compiler.Compile(request));
            Assert.Contains("stmatrix", error.Message, StringComparison.OrdinalIgnoreCase);
        }
    }
}

using KernelDsl.Generator;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace GeneratorTests.Emission;

/// <summary>
/// Every Int8Gemm attribute is load-bearing: changing one changes the emitted CUDA where it should —
/// address math, load sequence, fragment counts, shared-memory size — and nowhere it should not.
/// </summary>
public class GemmAttributeTests
{
    private static readonly GemmSpec Baseline = new()
    {
        Type = new TypeDeclaration("Users", "Gemm", "class", true, EquatableArray<string>.Empty),
        Targets = new[] { Sm.Sm80, Sm.Sm90 }.ToEquatableArray(),
        SmemLayouts = new[]
        {
            new SmemLayoutSpec(Operand.A, Element.S8, new Swizzle(2, 4, 3)),
            new SmemLayoutSpec(Operand.B, Element.S8, new Swizzle(3, 4, 3)),
        }.ToEquatableArray(),
        CopyAtoms = new[] { new CopyAtomSpec(Operand.A, CopyAtomKind.Ldsm), new CopyAtomSpec(Operand.B, CopyAtomKind.LdsmTransPrmt) }.ToEquatableArray(),
        Mma = MmaAtomKind.M16N8K32_S32S8S8,
        BlockM = 128, BlockN = 128, BlockK = 64, Warps = 8, WarpsM = 0, Stages = 3, Layout = GemmLayout.NN, Output = GemmOutput.S32,
    };

    private static string Cuda(GemmSpec spec)
    {
        Assert.Empty(KernelDsl.Generator.Validation.GemmValidator.Validate(spec).Where(f => f.Rule.Severity == KernelDsl.Generator.Validation.RuleSeverity.Error));
        return KernelGenerator.EmitCuda(spec);
    }

    private static GemmSpec WithB(GemmSpec spec, CopyAtomKind atom) =>
        spec with { CopyAtoms = new[] { new CopyAtomSpec(Operand.A, CopyAtomKind.Ldsm), new CopyAtomSpec(Operand.B, atom) }.ToEquatableArray() };

    [Fact]
    public void Swizzle_changes_the_address_math_only()
    {
        var baseline = Cuda(Baseline);
        var swizzled = Cuda(Baseline with
        {
            SmemLayouts = new[]
            {
                new SmemLayoutSpec(Operand.A, Element.S8, new Swizzle(2, 4, 3)),
                new SmemLayoutSpec(Operand.B, Element.S8, new Swizzle(3, 4, 4)),
            }.ToEquatableArray(),
        });
        Assert.Contains("return o ^ ((o >> 3) & 0x70);", baseline);
        Assert.Contains("return o ^ ((o >> 4) & 0x70);", swizzled);
        Assert.Equal(baseline.Split('\n').Length, swizzled.Split('\n').Length);
    }

    [Fact]
    public void Each_V_strategy_emits_its_own_instructions()
    {
        var transPrmt = Cuda(Baseline);
        var movmatrix = Cuda(WithB(Baseline, CopyAtomKind.LdsmPrmtMovmatrix) with
        {
            SmemLayouts = new[] { new SmemLayoutSpec(Operand.A, Element.S8, new Swizzle(2, 4, 3)), new SmemLayoutSpec(Operand.B, Element.S8, new Swizzle(3, 4, 4)) }.ToEquatableArray(),
        });
        var pretransposed = Cuda(WithB(Baseline, CopyAtomKind.LdsmPretransposed) with
        {
            SmemLayouts = new[] { new SmemLayoutSpec(Operand.A, Element.S8, new Swizzle(2, 4, 3)), new SmemLayoutSpec(Operand.B, Element.S8, new Swizzle(2, 4, 3)) }.ToEquatableArray(),
        });

        Assert.Contains("kdsl_ldsm_x4_trans(v0, v1, v2, v3,", transPrmt);
        Assert.Contains("kdsl_prmt(v0, v1, 0x6420u)", transPrmt);
        Assert.Contains("kdsl_prmt(v0, v1, 0x7531u)", transPrmt);
        Assert.DoesNotContain("movmatrix", transPrmt);

        Assert.Contains("kdsl_ldsm_x4(v0, v1, v2, v3,", movmatrix);
        Assert.Contains("kdsl_prmt(v0, v1, 0x5140u)", movmatrix);
        Assert.Contains("kdsl_movm_trans(v4)", movmatrix);
        Assert.DoesNotContain("ldmatrix.sync.aligned.m8n8.x4.trans", movmatrix);

        Assert.Contains("_transpose_b(const s8* __restrict__ B, s8* __restrict__ Bt", pretransposed);
        Assert.DoesNotContain("kdsl_prmt(", pretransposed);
        Assert.DoesNotContain("movmatrix", pretransposed);
        // B now sits n-major: rows of BlockK bytes, addressed (n, k).
        Assert.Contains("B: s8 tile of 128 rows × 64 bytes", pretransposed);
        Assert.Contains("kdsl_smem_b(warp_n * 32 + ni * 16 + b_row, kk * 32 + b_chunk * 16)", pretransposed);
    }

    [Fact]
    public void The_in_kernel_transposes_put_their_own_channel_map_in_the_epilogue()
    {
        Assert.Contains("(nj & 1) * 1 + 0 + 4 * t;", Cuda(Baseline));
        Assert.Contains("const int n = n_base + 2 * i;", Cuda(Baseline));
        var pretransposed = Cuda(WithB(Baseline, CopyAtomKind.LdsmPretransposed) with
        {
            SmemLayouts = new[] { new SmemLayoutSpec(Operand.A, Element.S8, new Swizzle(2, 4, 3)), new SmemLayoutSpec(Operand.B, Element.S8, new Swizzle(2, 4, 3)) }.ToEquatableArray(),
        });
        Assert.Contains("(nj & 1) * 8 + 0 + 2 * t;", pretransposed);
        Assert.Contains("const int n = n_base + 1 * i;", pretransposed);
    }

    [Fact]
    public void Tile_sizes_change_loads_fragments_and_shared_memory()
    {
        var baseline = Cuda(Baseline);
        var smaller = Cuda(Baseline with { BlockM = 64, BlockN = 64, BlockK = 32, Warps = 4 });
        Assert.Contains("int acc[4][4][4];", baseline);
        Assert.Contains("int acc[2][4][4];", smaller);
        Assert.Contains("for (int kk = 0; kk < 2; ++kk)", baseline);
        Assert.Contains("for (int kk = 0; kk < 1; ++kk)", smaller);
        Assert.Contains("49152 bytes of shared memory", baseline);
        Assert.Contains("12288 bytes of shared memory", smaller);
        Assert.Contains("const int k_tiles = (K + 31) / 32;", smaller);
    }

    [Fact]
    public void Warps_change_the_launch_bounds_and_warp_grid()
    {
        var four = Cuda(Baseline with { Warps = 4 });
        Assert.Contains("__launch_bounds__(256)", Cuda(Baseline));
        Assert.Contains("__launch_bounds__(128)", four);
        Assert.Contains("2×2 warps, warp tile 64×64", four);
        Assert.Contains("int acc[4][8][4];", four);
        var tall = Cuda(Baseline with { WarpsM = 4 });
        Assert.Contains("4×2 warps, warp tile 32×64", tall);
    }

    [Fact]
    public void Stages_change_the_pipeline_depth_and_shared_memory()
    {
        var two = Cuda(Baseline with { Stages = 2 });
        var four = Cuda(Baseline with { Stages = 4 });
        var one = Cuda(Baseline with { Stages = 1 });
        Assert.Contains("kdsl_cp_async_wait<0>();  // tile kt has landed", two);
        Assert.Contains("kdsl_cp_async_wait<2>();  // tile kt has landed", four);
        Assert.Contains("65536 bytes of shared memory", four);
        Assert.Contains("One stage: load, wait, compute", one);
        Assert.DoesNotContain("const int next", one);
    }

    [Fact]
    public void Global_copy_atom_and_output_change_the_loader_and_epilogue()
    {
        var plain = Cuda(Baseline with
        {
            Stages = 1,
            CopyAtoms = new[]
            {
                new CopyAtomSpec(Operand.A, CopyAtomKind.Ldsm), new CopyAtomSpec(Operand.B, CopyAtomKind.LdsmTransPrmt),
                new CopyAtomSpec(Operand.A, CopyAtomKind.LdgSts16), new CopyAtomSpec(Operand.B, CopyAtomKind.LdgSts16),
            }.ToEquatableArray(),
        });
        Assert.Contains("kdsl_ldg_sts_16(kdsl_smem(sa + kdsl_smem_a(row, col)), bytes > 0 ? A + (long long)grow * lda + gcol : A, bytes);", plain);
        Assert.DoesNotContain("cp.async", plain);

        var f16 = Cuda(Baseline with { Output = GemmOutput.F16Scaled });
        Assert.Contains("kdsl_f32_to_f16((float)acc[mi][nj][2 * h + i] * row_scale[m] * col_scale[n])", f16);
        Assert.Contains("u16* __restrict__ C, const float* __restrict__ row_scale", f16);
    }

    [Fact]
    public void Each_operand_uses_its_own_global_copy_atom()
    {
        var mixed = Cuda(Baseline with
        {
            Stages = 1,
            CopyAtoms = new[]
            {
                new CopyAtomSpec(Operand.A, CopyAtomKind.Ldsm), new CopyAtomSpec(Operand.B, CopyAtomKind.LdsmTransPrmt),
                new CopyAtomSpec(Operand.A, CopyAtomKind.LdgSts16), new CopyAtomSpec(Operand.B, CopyAtomKind.CpAsync16),
            }.ToEquatableArray(),
        });
        Assert.Contains("kdsl_ldg_sts_16(kdsl_smem(sa + kdsl_smem_a(row, col)), bytes > 0 ? A + (long long)grow * lda + gcol : A, bytes);", mixed);
        Assert.Contains("kdsl_cp_async_16(kdsl_smem(sb + kdsl_smem_b(row, col)), bytes > 0 ? B + (long long)grow * ldb + gcol : B, bytes);", mixed);
        // B's cp.async must still be committed and waited for.
        Assert.Contains("kdsl_cp_async_wait<0>();", mixed);
    }

    [Fact]
    public void Layout_decides_how_B_is_staged_and_addressed()
    {
        var tn = Cuda(WithB(Baseline, CopyAtomKind.Ldsm) with { Layout = GemmLayout.TN });
        Assert.Contains("B: s8 tile of 128 rows × 64 bytes", tn);
        Assert.Contains("B: s8 tile of 64 rows × 128 bytes", Cuda(Baseline));
        Assert.Contains("const int grow = n0 + row, gcol = k0 + col;", tn);
        Assert.Contains("const int grow = k0 + row, gcol = n0 + col;", Cuda(Baseline));
    }
}

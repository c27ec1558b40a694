using System;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Atoms;

/// <summary>A coordinate in a matrix: (row, column).</summary>
public readonly record struct Coord(int Row, int Col)
{
    public override string ToString() => $"({Row},{Col})";
}

/// <summary>
/// A warp-level MMA as data (CuTe's MMA_Traits): its PTX, the lowest SM and PTX ISA that have it, and
/// where each (lane, register, byte) of A, B and C sits in the m×n×k tile. The validators compose copy
/// atoms against these maps; the emitter writes the PTX helper from the same record.
/// </summary>
public sealed class MmaAtom
{
    private MmaAtom(MmaAtomKind kind, string ptx, int minSm, int minPtxIsa, int m, int n, int k,
        Element a, Element b, Element c, bool warpgroup, string helperName, bool aFromRegisters = true)
    {
        AFromRegisters = aFromRegisters;
        Kind = kind;
        Ptx = ptx;
        MinSm = minSm;
        MinPtxIsa = minPtxIsa;
        M = m;
        N = n;
        K = k;
        AElement = a;
        BElement = b;
        CElement = c;
        IsWarpgroup = warpgroup;
        HelperName = helperName;
    }

    public MmaAtomKind Kind { get; }
    public string Ptx { get; }
    /// <summary>Lowest compute capability; 901 means sm_90a only.</summary>
    public int MinSm { get; }
    /// <summary>Lowest PTX ISA version ×10 (70 = PTX 7.0).</summary>
    public int MinPtxIsa { get; }
    public int M { get; }
    public int N { get; }
    public int K { get; }
    public Element AElement { get; }
    public Element BElement { get; }
    public Element CElement { get; }
    /// <summary>wgmma: issued by a warp group from shared-memory descriptors, not by one warp from registers.</summary>
    public bool IsWarpgroup { get; }
    public string HelperName { get; }
    /// <summary>A comes from registers (every mma.sync; wgmma's RS form) rather than a shared-memory descriptor (wgmma's SS form).</summary>
    public bool AFromRegisters { get; }

    /// <summary>
    /// The warp's share of a warpgroup MMA, as an mma.sync atom with the same fragments: each warp of a wgmma m64nNk32
    /// owns 16 rows of A and D, its A registers laid out as m16n8k32's and its accumulators as m16n8's repeated over N/8
    /// tiles. The compositions (P leaving S in π order, V stored to match) are checked on this view.
    /// </summary>
    public MmaAtom WarpView => !IsWarpgroup ? this : Get(AElement switch
    {
        Element.U8 => MmaAtomKind.M16N8K32_S32U8S8,
        Element.E4M3 => MmaAtomKind.M16N8K32_F32E4M3E4M3,
        _ => MmaAtomKind.M16N8K32_S32S8S8,
    });

    public int ARegisters => M * K * AElement.SizeInBytes() / 4 / 32;
    public int BRegisters => N * K * BElement.SizeInBytes() / 4 / 32;
    public int CRegisters => M * N / 32;

    /// <summary>Where byte <paramref name="b"/> of A register <paramref name="reg"/> in <paramref name="lane"/> sits: (m, k slot).</summary>
    public Coord A(int lane, int reg, int b)
    {
        int g = lane >> 2, t = lane & 3, e = AElement.SizeInBytes();
        // 8-bit: a0 rows g, k 4t..; a1 row g+8; a2/a3 the same at k+16. 16-bit: the same with k 2t.., k+8.
        var kPerReg = 4 / e;
        return new Coord(g + 8 * (reg & 1), (K / 2) * (reg >> 1) + kPerReg * t + b / e);
    }

    /// <summary>Where byte <paramref name="b"/> of B register <paramref name="reg"/> in <paramref name="lane"/> sits: (k slot, n).</summary>
    public Coord B(int lane, int reg, int b)
    {
        int g = lane >> 2, t = lane & 3, e = BElement.SizeInBytes();
        var kPerReg = 4 / e;
        return new Coord((K / 2) * reg + kPerReg * t + b / e, g);
    }

    /// <summary>Where accumulator <paramref name="reg"/> of <paramref name="lane"/> sits: (m, n).</summary>
    public Coord C(int lane, int reg) => new((lane >> 2) + 8 * (reg >> 1), 2 * (lane & 3) + (reg & 1));

    public static MmaAtom Get(MmaAtomKind kind) => kind switch
    {
        MmaAtomKind.M16N8K32_S32S8S8 => S32S8S8,
        MmaAtomKind.M16N8K32_S32U8S8 => S32U8S8,
        MmaAtomKind.M16N8K16_F32F16F16 => F32F16F16,
        MmaAtomKind.M16N8K32_F32E4M3E4M3 => F32E4M3,
        MmaAtomKind.Wgmma_M64N64K32_S32S8S8 => WgmmaS8,
        MmaAtomKind.M16N8K16_F32BF16BF16 => F32Bf16Bf16,
        MmaAtomKind.Wgmma_M64N128K32_S32S8S8 => WgmmaN128S8,
        MmaAtomKind.Wgmma_M64N128K32_S32U8S8_RS => WgmmaN128U8Rs,
        MmaAtomKind.Wgmma_M64N64K32_S32U8S8_RS => WgmmaN64U8Rs,
        MmaAtomKind.Wgmma_M64N128K32_F32E4M3E4M3_RS => WgmmaN128E4m3Rs,
        MmaAtomKind.Wgmma_M64N64K32_F32E4M3E4M3_RS => WgmmaN64E4m3Rs,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    private static readonly MmaAtom S32S8S8 = new(MmaAtomKind.M16N8K32_S32S8S8,
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32", 80, 70, 16, 8, 32, Element.S8, Element.S8, Element.S32, false, "mma_m16n8k32_s32s8s8");

    private static readonly MmaAtom S32U8S8 = new(MmaAtomKind.M16N8K32_S32U8S8,
        "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32", 80, 70, 16, 8, 32, Element.U8, Element.S8, Element.S32, false, "mma_m16n8k32_s32u8s8");

    private static readonly MmaAtom F32F16F16 = new(MmaAtomKind.M16N8K16_F32F16F16,
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32", 80, 70, 16, 8, 16, Element.F16, Element.F16, Element.F32, false, "mma_m16n8k16_f32f16f16");

    private static readonly MmaAtom F32Bf16Bf16 = new(MmaAtomKind.M16N8K16_F32BF16BF16,
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32", 80, 70, 16, 8, 16, Element.BF16, Element.BF16, Element.F32, false, "mma_m16n8k16_f32bf16bf16");

    private static readonly MmaAtom F32E4M3 = new(MmaAtomKind.M16N8K32_F32E4M3E4M3,
        "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32", 89, 84, 16, 8, 32, Element.E4M3, Element.E4M3, Element.F32, false, "mma_m16n8k32_f32e4m3e4m3");

    private static readonly MmaAtom WgmmaS8 = new(MmaAtomKind.Wgmma_M64N64K32_S32S8S8,
        "wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8", 901, 80, 64, 64, 32, Element.S8, Element.S8, Element.S32, true, "wgmma_m64n64k32_s32s8s8", aFromRegisters: false);

    private static readonly MmaAtom WgmmaN128S8 = new(MmaAtomKind.Wgmma_M64N128K32_S32S8S8,
        "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8", 901, 80, 64, 128, 32, Element.S8, Element.S8, Element.S32, true, "wgmma_m64n128k32_s32s8s8", aFromRegisters: false);

    private static readonly MmaAtom WgmmaN128U8Rs = new(MmaAtomKind.Wgmma_M64N128K32_S32U8S8_RS,
        "wgmma.mma_async.sync.aligned.m64n128k32.s32.u8.s8", 901, 80, 64, 128, 32, Element.U8, Element.S8, Element.S32, true, "wgmma_m64n128k32_s32u8s8_rs");

    private static readonly MmaAtom WgmmaN64U8Rs = new(MmaAtomKind.Wgmma_M64N64K32_S32U8S8_RS,
        "wgmma.mma_async.sync.aligned.m64n64k32.s32.u8.s8", 901, 80, 64, 64, 32, Element.U8, Element.S8, Element.S32, true, "wgmma_m64n64k32_s32u8s8_rs");

    // fp8 wgmma (PTX 8.0): A and B must both be K-major, as for the 8-bit integer forms.
    private static readonly MmaAtom WgmmaN128E4m3Rs = new(MmaAtomKind.Wgmma_M64N128K32_F32E4M3E4M3_RS,
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3", 901, 80, 64, 128, 32, Element.E4M3, Element.E4M3, Element.F32, true, "wgmma_m64n128k32_f32e4m3e4m3_rs");

    private static readonly MmaAtom WgmmaN64E4m3Rs = new(MmaAtomKind.Wgmma_M64N64K32_F32E4M3E4M3_RS,
        "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3", 901, 80, 64, 64, 32, Element.E4M3, Element.E4M3, Element.F32, true, "wgmma_m64n64k32_f32e4m3e4m3_rs");
}

namespace KernelDsl.Generator.Model;

// Mirrors of the public DSL enums in KernelDsl.Runtime (same names, same values): the generator
// cannot reference the runtime, and attribute arguments arrive as their underlying ints.
// A test compares both sides member by member.

public enum Element { S8 = 0, U8 = 1, F16 = 2, BF16 = 3, F32 = 4, E4M3 = 5, S32 = 6 }

public enum Operand { A = 0, B = 1, C = 2, Q = 3, K = 4, V = 5, O = 6 }

public enum Sm { Sm75 = 75, Sm80 = 80, Sm86 = 86, Sm89 = 89, Sm90 = 90, Sm90a = 901 }

public enum CopyAtomKind
{
    CpAsync16 = 0,
    LdgSts16 = 1,
    Ldsm = 2,
    LdsmTrans = 3,
    LdsmTransPrmt = 4,
    LdsmPrmtMovmatrix = 5,
    LdsmPretransposed = 6,
    Stmatrix = 7,
    Tma = 8,
}

public enum MmaAtomKind
{
    M16N8K32_S32S8S8 = 0,
    M16N8K32_S32U8S8 = 1,
    M16N8K16_F32F16F16 = 2,
    M16N8K32_F32E4M3E4M3 = 3,
    Wgmma_M64N64K32_S32S8S8 = 4,
    M16N8K16_F32BF16BF16 = 5,
    Wgmma_M64N128K32_S32S8S8 = 6,
    Wgmma_M64N128K32_S32U8S8_RS = 7,
    Wgmma_M64N64K32_S32U8S8_RS = 8,
    Wgmma_M64N128K32_F32E4M3E4M3_RS = 9,
    Wgmma_M64N64K32_F32E4M3E4M3_RS = 10,
}

public enum MmaProduct { Main = 0, PV = 1 }

public enum GemmLayout { TN = 0, NN = 1 }

public enum GemmOutput { S32 = 0, F16Scaled = 1 }

public enum QuantGranularity { PerRowBlock = 0, PerChannel = 1 }

public enum TokenOrder { Natural = 0, Pi = 1 }

public static class ElementFacts
{
    public static int SizeInBytes(this Element element) => element switch
    {
        Element.S8 or Element.U8 or Element.E4M3 => 1,
        Element.F16 or Element.BF16 => 2,
        _ => 4,
    };

    /// <summary>
    /// The C# element type of a buffer of <paramref name="element"/> in generated launchers: 16-bit floats as Half (f16)
    /// or their raw bits (bf16, which .NET lacks), e4m3 codes as bytes.
    /// </summary>
    public static string CSharpName(this Element element) => element switch
    {
        Element.S8 => "sbyte",
        Element.U8 or Element.E4M3 => "byte",
        Element.F16 => "global::System.Half",
        Element.BF16 => "ushort",
        Element.S32 => "int",
        _ => "float",
    };

    public static string CudaName(this Element element) => element switch
    {
        Element.S8 => "s8",
        Element.U8 => "u8",
        Element.F16 => "f16",
        Element.BF16 => "bf16",
        Element.E4M3 => "e4m3",
        Element.S32 => "s32",
        _ => "f32",
    };
}

public static class SmFacts
{
    /// <summary>Compute capability as major·10 + minor (sm_90a counts as 90).</summary>
    public static int Capability(this Sm sm) => sm == Sm.Sm90a ? 90 : (int)sm;

    public static bool IsArchSpecific(this Sm sm) => sm == Sm.Sm90a;

    /// <summary>An instruction's minimum SM as the atoms record it (901: sm_90a alone) as a compute capability.</summary>
    public static int MinimumCapability(int minSm) => minSm == (int)Sm.Sm90a ? 90 : minSm;

    /// <summary>What an instruction of minimum SM <paramref name="minSm"/> needs, for a message: "sm_80", or sm_90a's own words.</summary>
    public static string Needs(int minSm) => minSm == (int)Sm.Sm90a ? "sm_90a (architecture-specific Hopper features)" : "sm_" + minSm.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Whether <paramref name="target"/> lacks an instruction whose minimum SM is <paramref name="minSm"/> (901: only sm_90a has it).</summary>
    public static bool Lacks(this Sm target, int minSm) => minSm == (int)Sm.Sm90a ? target != Sm.Sm90a : target.Capability() < minSm;

    public static string ArchName(this Sm sm) => sm == Sm.Sm90a ? "sm_90a" : "sm_" + ((int)sm).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The most dynamic shared memory one block may opt into, in bytes (CUDA programming guide, compute capabilities table).</summary>
    public static int MaxSharedMemoryPerBlock(this Sm sm) => sm switch
    {
        Sm.Sm75 => 64 * 1024,
        Sm.Sm80 => 163 * 1024,
        Sm.Sm86 or Sm.Sm89 => 99 * 1024,
        _ => 227 * 1024,
    };
}

using KernelDsl.Generator.Atoms;

namespace KernelDsl.Generator.Model;

/// <summary>
/// Everything a GEMM variant derives from its declaration: warp layout, MMA counts, shared-memory sizes,
/// the copy programs and where accumulator columns land. Validation and emission both read this, so no
/// number is computed twice.
/// </summary>
public sealed record GemmPlan(GemmSpec Spec, int WarpsM, int WarpsN)
{
    public const int ChunkBytes = 16;

    public MmaAtom Mma => MmaAtom.Get(Spec.Mma ?? MmaAtomKind.M16N8K32_S32S8S8);

    public int Threads => Spec.Warps * 32;
    public int WarpTileM => Spec.BlockM / WarpsM;
    public int WarpTileN => Spec.BlockN / WarpsN;
    public int MmaTilesM => WarpTileM / Mma.M;
    public int MmaTilesN => WarpTileN / Mma.N;
    /// <summary>n16 chunks per warp: each B copy program covers 16 columns.</summary>
    public int BChunksN => WarpTileN / 16;
    public int KSteps => Spec.BlockK / Mma.K;

    /// <summary>
    /// The GEMM kernel's parameters in the CUDA order, each with the launcher parameter or local it comes from: the one
    /// list the kernel's declaration and the launcher's arguments are written from.
    /// </summary>
    public System.Collections.Generic.IReadOnlyList<KernelParameter> Parameters
    {
        get
        {
            var parameters = new System.Collections.Generic.List<KernelParameter>
            {
                new("A", "const s8* __restrict__", Passing.Pointer, "a"),
                new(BName, "const s8* __restrict__", Passing.Pointer, PretransposesB ? "bTransposed" : "b"),
            };
            if (Spec.Output == GemmOutput.S32)
            {
                parameters.Add(new("C", "int* __restrict__", Passing.Pointer, "c"));
            }
            else
            {
                parameters.Add(new("C", "u16* __restrict__", Passing.Pointer, "c"));
                parameters.Add(new("row_scale", "const float* __restrict__", Passing.Pointer, "rowScale"));
                parameters.Add(new("col_scale", "const float* __restrict__", Passing.Pointer, "colScale"));
            }
            foreach (var (cuda, host) in new[] { ("M", "m"), ("N", "n"), ("K", "k"), ("lda", "lda"), ("ldb", PretransposesB ? "ldbt" : "ldb"), ("ldc", "ldc") })
            {
                parameters.Add(new(cuda, "int", Passing.Value, host));
            }
            return parameters;
        }
    }

    /// <summary>The kernel's name for B: Bt where Recipe C transposed it.</summary>
    public string BName => PretransposesB ? "Bt" : "B";

    /// <summary>Recipe C's transpose kernel's parameters (B [K][N] → Bt [N][ldbt]), as <see cref="Parameters"/>.</summary>
    public static System.Collections.Generic.IReadOnlyList<KernelParameter> TransposeParameters { get; } =
    [
        new("B", "const s8* __restrict__", Passing.Pointer, "b"),
        new("Bt", "s8* __restrict__", Passing.Pointer, "bTransposed"),
        new("K", "int", Passing.Value, "k"),
        new("N", "int", Passing.Value, "n"),
        new("ldb", "int", Passing.Value, "ldb"),
        new("ldbt", "int", Passing.Value, "ldbt"),
    ];

    /// <summary>Recipe C reads B from an n × k copy made beforehand.</summary>
    public bool PretransposesB => Spec.Layout == GemmLayout.NN && Spec.CopyAtomOf(Operand.B, CopyDirection.SharedToRegisters) == CopyAtomKind.LdsmPretransposed;

    /// <summary>How B sits in shared memory.</summary>
    public OperandStorage BStorage => Spec.Layout == GemmLayout.TN || PretransposesB ? OperandStorage.NK : OperandStorage.KN;

    public int ARows => Spec.BlockM;
    public int ARowBytes => Spec.BlockK;
    public int BRows => BStorage == OperandStorage.KN ? Spec.BlockK : Spec.BlockN;
    public int BRowBytes => BStorage == OperandStorage.KN ? Spec.BlockN : Spec.BlockK;

    public int AStageBytes => ARows * ARowBytes;
    public int BStageBytes => BRows * BRowBytes;
    public int SharedMemoryBytes => Spec.Stages * (AStageBytes + BStageBytes);

    public int AChunksPerThread => AStageBytes / ChunkBytes / Threads;
    public int BChunksPerThread => BStageBytes / ChunkBytes / Threads;

    public LdmatrixProgram? AProgram => Spec.CopyAtomOf(Operand.A, CopyDirection.SharedToRegisters) is { } atom
        ? CopyAtom.Get(atom).ProgramFor(OperandStorage.MK, TokenOrder.Natural)
        : null;

    /// <summary>B's program asks for A's k order: plain ldmatrix of A gives natural order.</summary>
    public LdmatrixProgram? BProgram => Spec.CopyAtomOf(Operand.B, CopyDirection.SharedToRegisters) is { } atom
        ? CopyAtom.Get(atom).ProgramFor(BStorage, TokenOrder.Natural)
        : null;

    public Composition ComposeA() => FragmentComposition.ComposeA(Mma, AProgram!);

    public Composition ComposeB(Composition a) => FragmentComposition.ComposeB(Mma, BProgram!, BStorage, TokenOrder.Natural, a.KOrder);

    public static GemmPlan Create(GemmSpec spec)
    {
        var warpsM = spec.WarpsM > 0 ? spec.WarpsM : ChooseWarpsM(spec);
        return new GemmPlan(spec, warpsM, System.Math.Max(1, spec.Warps / System.Math.Max(1, warpsM)));
    }

    /// <summary>The warp grid whose warp tile is closest to square (fewest fragment loads per MMA), M first on ties.</summary>
    private static int ChooseWarpsM(GemmSpec spec)
    {
        var best = 1;
        var bestScore = int.MaxValue;
        for (var warpsM = 1; warpsM <= spec.Warps; warpsM *= 2)
        {
            if (spec.Warps % warpsM != 0)
            {
                continue;
            }
            var warpsN = spec.Warps / warpsM;
            if (spec.BlockM % (warpsM * 16) != 0 || spec.BlockN % (warpsN * 16) != 0)
            {
                continue;
            }
            var score = System.Math.Abs(spec.BlockM / warpsM - spec.BlockN / warpsN);
            if (score < bestScore)
            {
                best = warpsM;
                bestScore = score;
            }
        }
        return best;
    }
}

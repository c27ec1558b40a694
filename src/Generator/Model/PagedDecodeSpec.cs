namespace KernelDsl.Generator.Model;

/// <summary>Decode attention over a paged INT8 KV cache: a few query tokens per sequence, split-KV, merged by LSE.</summary>
public sealed record PagedDecodeSpec : KernelSpec
{
    public required int HeadDim { get; init; }
    public required int PageSize { get; init; }
    /// <summary>Keys of one stage (one step of a warp's key loop): the page, or half of it.</summary>
    public required int StageKeys { get; init; }
    /// <summary>Element of Q and O.</summary>
    public required Element Input { get; init; }
    public required int Warps { get; init; }
    public required int Stages { get; init; }
    /// <summary>The user's score modifier (a [ScoreModifier] method of a type around the declaration), or null.</summary>
    public ModifierSpec? Score { get; init; }
    /// <summary>The user's mask (a [MaskModifier] method of a type around the declaration), or null.</summary>
    public ModifierSpec? Mask { get; init; }

    /// <summary>cp.async and the int8 mma.sync forms.</summary>
    public override int InstructionMinSm => 80;

    public override string Family => "PagedDecode";
}

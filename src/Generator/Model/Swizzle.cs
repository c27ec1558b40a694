namespace KernelDsl.Generator.Model;

/// <summary>
/// CuTe's Swizzle(B, M, S) on an element offset: bits [M+S, M+S+B) are XORed into bits [M, M+B).
/// The identity is Swizzle(0, M, S). Any swizzle is a bijection on each aligned block of 2^(B+M+S) elements.
/// </summary>
public sealed record Swizzle(int Bits, int Base, int Shift)
{
    public static readonly Swizzle None = new(0, 4, 3);

    public bool IsIdentity => Bits == 0;

    /// <summary>The mask of the bits that get XORed: ((1 &lt;&lt; B) - 1) &lt;&lt; M.</summary>
    public int Mask => ((1 << Bits) - 1) << Base;

    /// <summary>Elements in the smallest block the swizzle permutes within.</summary>
    public int Span => 1 << (Bits + Base + Shift);

    public int Apply(int offset) => IsIdentity ? offset : offset ^ ((offset >> Shift) & Mask);

    public override string ToString() => $"Swizzle({Bits},{Base},{Shift})";
}

/// <summary>A tile of one operand in shared memory.</summary>
public sealed record SmemLayoutSpec(Operand Operand, Element Element, Swizzle Swizzle);

/// <summary>A declared copy atom for one operand.</summary>
public sealed record CopyAtomSpec(Operand Operand, CopyAtomKind Atom);

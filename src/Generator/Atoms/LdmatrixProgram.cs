using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Atoms;

/// <summary>How much one bit of the lane index moves the row address a lane supplies to ldmatrix.</summary>
/// <param name="Row">Rows added when the bit is set.</param>
/// <param name="Chunk">16-byte chunks added when the bit is set.</param>
public readonly record struct LaneBit(int Row, int Chunk)
{
    /// <summary>The row (or, with <paramref name="row"/> false, the 16-byte chunk) lane <paramref name="lane"/> addresses: its set bits' weights summed.</summary>
    public static int Sum(EquatableArray<LaneBit> bits, int lane, bool row)
    {
        var total = 0;
        for (var bit = 0; bit < bits.Count; bit++)
        {
            if (((lane >> bit) & 1) != 0)
            {
                total += row ? bits[bit].Row : bits[bit].Chunk;
            }
        }
        return total;
    }
}

/// <summary>A register-to-register step after the ldmatrix: a byte permute or a 16-bit transpose.</summary>
public abstract record RegisterOp(int Destination);

/// <summary><c>prmt.b32 d, a, b, selector</c>: result byte i is byte (selector nibble i) of the pair b:a.</summary>
public sealed record Prmt(int Destination, int A, int B, int Selector) : RegisterOp(Destination);

/// <summary><c>movmatrix.sync.aligned.m8n8.trans.b16 d, s</c>: the warp's 8×8 16-bit matrix, transposed.</summary>
public sealed record Movmatrix(int Destination, int Source) : RegisterOp(Destination);

/// <summary>
/// One shared → register copy for one warp, as data: an <c>ldmatrix.x4</c> (registers 0..3) whose row
/// addresses are an additive function of the lane bits, followed by register ops that define registers 4, 5, ...
/// <see cref="Fragments"/> lists, per MMA tile delivered, the registers that form its operand fragment.
/// The emitter writes exactly these instructions; <see cref="FragmentSimulator"/> runs them on labelled bytes.
/// </summary>
public sealed record LdmatrixProgram(
    string Name,
    bool Transposed,
    int Rows,
    int Chunks,
    EquatableArray<LaneBit> LaneBits,
    EquatableArray<RegisterOp> Ops,
    EquatableArray<EquatableArray<int>> Fragments)
{
    public int RowOf(int lane) => LaneBit.Sum(LaneBits, lane, true);

    public int ChunkOf(int lane) => LaneBit.Sum(LaneBits, lane, false);

    public int RegisterCount => 4 + Ops.Count;
}

using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Atoms;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Cuda;

/// <summary>
/// Writes an <see cref="LdmatrixProgram"/> as CUDA: the lane's row and chunk (from the same lane-bit weights the
/// simulator uses), the ldmatrix, then each prmt and movmatrix, naming registers <c>{prefix}0, {prefix}1, ...</c>.
/// </summary>
public static class CopyProgramWriter
{
    /// <summary>Declares <c>{name}_row</c> and <c>{name}_chunk</c>: where this lane's ldmatrix row address points.</summary>
    public static void WriteLaneOffsets(CodeWriter w, LdmatrixProgram program, string name) => WriteLaneOffsets(w, program.LaneBits, name);

    /// <summary>Declares <c>{name}_row</c> and <c>{name}_chunk</c>: where this lane's stmatrix row address points.</summary>
    public static void WriteLaneOffsets(CodeWriter w, StmatrixProgram program, string name) => WriteLaneOffsets(w, program.LaneBits, name);

    private static void WriteLaneOffsets(CodeWriter w, EquatableArray<LaneBit> bits, string name)
    {
        w.Line($"const int {name}_row = {Sum(bits, true)};");
        w.Line($"const int {name}_chunk = {Sum(bits, false)};");
    }

    /// <summary>Writes the store of registers <c>{prefix}{Sources[q]}</c> as matrices 0..3.</summary>
    public static void WriteStore(CodeWriter w, StmatrixProgram program, string prefix, string address) =>
        w.Line($"kdsl_stsm_x4({address}, {string.Join(", ", program.Sources.Select(r => prefix + r))});");

    /// <summary>Writes the loads and register ops; fragment registers are then <c>{prefix}{FragmentRegister}</c>.</summary>
    public static void WriteLoad(CodeWriter w, LdmatrixProgram program, string prefix, string address)
    {
        var ldsm = program.Transposed ? "kdsl_ldsm_x4_trans" : "kdsl_ldsm_x4";
        w.Line($"u32 {prefix}0, {prefix}1, {prefix}2, {prefix}3;");
        w.Line($"{ldsm}({prefix}0, {prefix}1, {prefix}2, {prefix}3, {address});");
        foreach (var op in program.Ops)
        {
            switch (op)
            {
                case Prmt p:
                    w.Line($"const u32 {prefix}{p.Destination} = kdsl_prmt({prefix}{p.A}, {prefix}{p.B}, 0x{p.Selector:x4}u);");
                    break;
                case Movmatrix m:
                    w.Line($"const u32 {prefix}{m.Destination} = kdsl_movm_trans({prefix}{m.Source});");
                    break;
            }
        }
    }

    private static string Sum(EquatableArray<LaneBit> bits, bool row)
    {
        var terms = new List<string>();
        for (var bit = 0; bit < bits.Count; bit++)
        {
            var weight = row ? bits[bit].Row : bits[bit].Chunk;
            if (weight != 0)
            {
                terms.Add(weight == 1 ? $"((lane >> {bit}) & 1)" : $"((lane >> {bit}) & 1) * {weight}");
            }
        }
        return terms.Count == 0 ? "0" : string.Join(" + ", terms.Select(t => t.Replace("(lane >> 0)", "lane")));
    }
}

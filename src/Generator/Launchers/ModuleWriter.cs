using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;

namespace KernelDsl.Generator.Launchers;

/// <summary>One entry point as the launcher section sees it.</summary>
public sealed record EntryPointInfo(string ConstantName, string Symbol, int Threads, int SharedMemoryBytes);

/// <summary>
/// The members every generated kernel type has: kernel names, threads, shared memory, minimum SM and the
/// <c>Module</c> definition the runtime compiles and caches.
/// </summary>
public static class ModuleWriter
{
    public const string Launching = "global::KernelDsl.Launching";

    public static void Write(CodeWriter w, KernelSpec spec, IReadOnlyList<EntryPointInfo> entries, IEnumerable<(string Name, int Value, string Doc)> constants)
    {
        var main = entries[0];
        var minSm = MinimumSm(spec);
        w.Line($"/// <summary>The <c>extern \"C\"</c> name of the main kernel.</summary>");
        w.Line($"public const string KernelName = {CSharpFile.Literal(main.Symbol)};");
        foreach (var entry in entries.Skip(1))
        {
            w.Line($"public const string {entry.ConstantName} = {CSharpFile.Literal(entry.Symbol)};");
        }
        w.Line($"/// <summary>Threads per block of the main kernel.</summary>");
        w.Line($"public const int ThreadsPerBlock = {main.Threads};");
        w.Line($"/// <summary>Dynamic shared memory per block of the main kernel, in bytes.</summary>");
        w.Line($"public const int SharedMemoryBytes = {main.SharedMemoryBytes};");
        w.Line($"/// <summary>The lowest compute capability (major·10 + minor) every atom of this variant runs on.</summary>");
        w.Line($"public const int MinimumSm = {minSm};");
        foreach (var (name, value, doc) in constants)
        {
            w.Line($"/// <summary>{doc}</summary>");
            w.Line($"public const int {name} = {value};");
        }
        w.Line();
        w.Line($"/// <summary>What the runtime compiles (NVRTC, for the device's SM), caches and launches.</summary>");
        w.Line($"public static {Launching}.KernelModuleDefinition Module {{ get; }} = new()");
        w.Raw("{");
        w.Indent();
        w.Line($"Name = {CSharpFile.Literal(spec.Type.FullName)},");
        w.Line($"CudaSource = CudaSource,");
        w.Line($"EntryPoints =");
        w.Line($"[");
        foreach (var entry in entries)
        {
            w.Line($"    new({(entry == main ? "KernelName" : entry.ConstantName)}, {entry.Threads}, {entry.SharedMemoryBytes}),");
        }
        w.Line($"],");
        w.Line($"Targets = {CSharpFile.StringArray(spec.Targets.Select(t => t.ArchName()))},");
        w.Line($"MinimumSm = MinimumSm,");
        w.Line($"RequiresArchSpecific = {(spec.Targets.Any(t => t.IsArchSpecific()) && spec.Targets.All(t => t.IsArchSpecific()) ? "true" : "false")},");
        w.Outdent();
        w.Raw("};");
    }

    /// <summary>The highest minimum SM among the declared atoms (sm_80 for cp.async and mma.sync) and the family's own instructions.</summary>
    public static int MinimumSm(KernelSpec spec)
    {
        var sm = spec.InstructionMinSm;
        foreach (var atom in spec.CopyAtoms)
        {
            sm = System.Math.Max(sm, SmFacts.MinimumCapability(Atoms.CopyAtom.Get(atom.Atom).MinSm));
        }
        foreach (var mma in new[] { spec.Mma, spec.PvMma })
        {
            if (mma is { } kind)
            {
                sm = System.Math.Max(sm, SmFacts.MinimumCapability(Atoms.MmaAtom.Get(kind).MinSm));
            }
        }
        return sm;
    }
}

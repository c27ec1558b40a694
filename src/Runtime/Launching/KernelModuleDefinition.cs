using System.Collections.Immutable;

namespace KernelDsl.Launching;

/// <summary>One <c>extern "C"</c> entry point of a generated module.</summary>
/// <param name="Name">The kernel's symbol name.</param>
/// <param name="ThreadsPerBlock">Threads per block the kernel was generated for (its <c>__launch_bounds__</c>).</param>
/// <param name="SharedMemoryBytes">Dynamic shared memory per block.</param>
public sealed record KernelEntryPoint(string Name, int ThreadsPerBlock, int SharedMemoryBytes);

/// <summary>
/// Everything the runtime needs to compile and launch one generated variant: its self-contained CUDA source,
/// entry points, the architectures it was declared for and the lowest one it can run on. Generated code creates
/// these; nothing here knows how the text was made.
/// </summary>
public sealed record KernelModuleDefinition
{
    /// <summary>The variant's name: the declaring type's full name.</summary>
    public required string Name { get; init; }
    /// <summary>Self-contained CUDA C++ (no toolkit includes).</summary>
    public required string CudaSource { get; init; }
    public required ImmutableArray<KernelEntryPoint> EntryPoints { get; init; }
    /// <summary>Declared targets as NVRTC architecture names: <c>sm_80</c>, <c>sm_90</c>, <c>sm_90a</c>.</summary>
    public required ImmutableArray<string> Targets { get; init; }
    /// <summary>The lowest compute capability (major·10 + minor) the module runs on.</summary>
    public required int MinimumSm { get; init; }
    /// <summary>Whether the module needs an architecture-specific target (sm_90a) rather than the plain one.</summary>
    public bool RequiresArchSpecific { get; init; }
    /// <summary>Extra NVRTC options from the declaration.</summary>
    public ImmutableArray<string> CompileOptions { get; init; } = [];

    /// <summary>
    /// Whether a device of this compute capability (major·10 + minor) can run the module: at least <see cref="MinimumSm"/>,
    /// and for an architecture-specific module (sm_90a) exactly a declared architecture, since its SASS runs nowhere else.
    /// </summary>
    public bool RunsOn(int computeCapability) => RequiresArchSpecific
        ? Targets.Contains(KernelTarget.ArchName(computeCapability) + "a")
        : computeCapability >= MinimumSm;

    public KernelEntryPoint EntryPoint(string name)
    {
        foreach (var entry in EntryPoints)
        {
            if (entry.Name == name)
            {
                return entry;
            }
        }
        throw new ArgumentException($"Module '{Name}' has no entry point '{name}'.", nameof(name));
    }
}

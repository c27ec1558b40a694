using KernelDsl.Launching;

namespace KernelDsl.Attention;

/// <summary>Every kernel variant this library declares (GEMMs, quantize kernels, attention, merge), for tools.</summary>
public static class DeclaredVariants
{
    public static IReadOnlyList<KernelModuleDefinition> All => Generated.DeclaredKernels.All;
}

using KernelDsl.Launching;

namespace KernelDsl;

/// <summary>
/// Hand-edited CUDA in place of a generated module's, for kernel experiments (Triton's <c>TRITON_KERNEL_OVERRIDE</c>
/// habit): with <c>KERNELDSL_KERNEL_OVERRIDE_DIR</c> set, a file named <c>&lt;variant name&gt;.cu</c> in that folder is
/// compiled instead of the generated source. The entry points and launcher stay the generated ones, so the edit must
/// keep the kernel's name and parameters. The cache keys on the source, so an edit never reuses a stale cubin.
/// </summary>
public static class KernelSourceOverride
{
    /// <summary>Environment variable naming the folder of replacement sources.</summary>
    public const string DirectoryVariable = "KERNELDSL_KERNEL_OVERRIDE_DIR";

    /// <summary>The folder named by <see cref="DirectoryVariable"/>, or null when it is unset.</summary>
    public static string? Directory =>
        Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } directory ? directory : null;

    /// <summary>The source to compile for <paramref name="module"/>: its replacement in <see cref="Directory"/>, else the generated one.</summary>
    public static string SourceFor(KernelModuleDefinition module) => SourceFor(module, Directory);

    /// <summary>The source to compile for <paramref name="module"/>: its replacement in <paramref name="directory"/> (null: none), else the generated one.</summary>
    public static string SourceFor(KernelModuleDefinition module, string? directory)
    {
        ArgumentNullException.ThrowIfNull(module);
        return PathFor(module, directory) is { } path ? File.ReadAllText(path) : module.CudaSource;
    }

    /// <summary>The replacement file of <paramref name="module"/> in <paramref name="directory"/>, or null when there is none.</summary>
    public static string? PathFor(KernelModuleDefinition module, string? directory)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (directory is null)
        {
            return null;
        }
        var path = Path.Combine(directory, module.Name + ".cu");
        return File.Exists(path) ? path : null;
    }
}

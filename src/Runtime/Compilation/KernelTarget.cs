using System.Globalization;
using KernelDsl.Launching;

namespace KernelDsl;

/// <summary>Chooses the NVRTC architecture a module is compiled for on a given device.</summary>
internal static class KernelTarget
{
    /// <summary>The NVRTC name of a compute capability: 90 gives <c>sm_90</c>.</summary>
    public static string ArchName(int computeCapability) =>
        string.Create(CultureInfo.InvariantCulture, $"sm_{computeCapability}");

    /// <summary>
    /// The device's own architecture (its exact SASS, not a declared target's), or its architecture-specific
    /// flavour (<c>sm_90a</c>) when the module needs one; that flavour runs only on that exact SM, so it must be declared.
    /// </summary>
    /// <exception cref="NotSupportedException">The device cannot run the module.</exception>
    public static string Select(KernelModuleDefinition module, int computeCapability, string deviceName)
    {
        if (computeCapability < module.MinimumSm)
        {
            throw new NotSupportedException(string.Create(CultureInfo.InvariantCulture,
                $"Variant '{module.Name}' needs compute capability {module.MinimumSm / 10}.{module.MinimumSm % 10} ({ArchName(module.MinimumSm)}) or newer; {deviceName} is {computeCapability / 10}.{computeCapability % 10} ({ArchName(computeCapability)})."));
        }
        var arch = ArchName(computeCapability);
        if (!module.RequiresArchSpecific)
        {
            return arch;
        }
        if (!module.RunsOn(computeCapability))
        {
            throw new NotSupportedException(
                $"Variant '{module.Name}' uses architecture-specific instructions and runs only on {string.Join(", ", module.Targets)}; {deviceName} is {arch}.");
        }
        return arch + "a";
    }
}

using System.Collections.Generic;
using System.Linq;
using KernelDsl.Generator.Helpers;

namespace KernelDsl.Generator.Model;

/// <summary>
/// What a KvSinglePass variant derives from its declaration: the statistics plan and the codes plan it fuses (their
/// thread mappings, summation order and tiles, unchanged), its occupancy, the synchronisation words and the signature.
/// The CUDA writer and the launcher writer both read this, so no number is computed twice.
/// </summary>
public sealed record KvSinglePassPlan(KvSinglePassSpec Spec)
{
    public KvStatisticsPlan Statistics => new(Spec.Statistics);
    public KvCodesPlan Codes => new(Spec.Codes);

    public int HeadDim => Spec.HeadDim;
    public int Threads => Spec.Threads;
    public int SliceTokens => Spec.SliceTokens;

    /// <summary>
    /// Blocks an SM should hold (__launch_bounds__): the codes blocks may wait for their head, and the statistics blocks
    /// keep DRAM busy meanwhile only if others are resident beside them. Three spilled 168–204 bytes (80 registers,
    /// NVRTC 11.8): the codes role holds a tile's K and V loads.
    /// </summary>
    public const int MinBlocksPerSm = 2;

    /// <summary>
    /// Tokens whose K and V loads a statistics thread issues before adding. At D = 128 the statistics pass's own 8 (64 KB in
    /// flight a block); at D = 64, 2 (a lane's tokens are twice as many and its loads half as wide): 4 and 8 spilled 4–24
    /// bytes beside the codes role, with the combine's 16 rows in flight then, under the 128 registers of two blocks an SM
    /// (NVRTC 11.8, sm_80 and sm_90); 2 with its 8 rows compiles without spills.
    /// </summary>
    public int LoadsInFlight => Spec.HeadDim >= 128 ? KvStatisticsPlan.LoadsInFlight : 2;

    /// <summary>Why a codes block's K and V come from L2, for the CUDA's comments.</summary>
    public const string LeadWhy = "where its head's statistics blocks, one device-full of statistics blocks earlier, are still there";

    public string Symbol => Spec.KernelPrefix + "_single_pass";

    /// <summary>
    /// The launcher's parameters and the kernel's: the codes pass's, with K's mean and V's scales written as the statistics
    /// pass writes them, then the lead, the scratch and the statistics pass's NaN/Inf counters.
    /// </summary>
    public KernelSignature Signature
    {
        get
        {
            var codes = Codes.Signature;
            var statistics = Statistics.Host;
            HostParameter StatisticsHost(string name) => statistics.First(p => p.Name == name);
            var host = codes.Host.Select(p => p.Name is "kMean" or "vScale" ? StatisticsHost(p.Name) : p).ToList();
            var kernel = codes.Kernel.Select(p => p.CudaName is "k_mean" or "v_scale" ? p with { CudaType = "float* __restrict__" } : p).ToList();
            kernel.Add(new KernelParameter("lead", "int", Passing.Value, "lead"));
            host.Add(new HostParameter("workspace", HostKind.Buffer, "float", false, "the slices' and groups' partial sums and maxima (WorkspaceLength)"));
            kernel.Add(new KernelParameter("partials", "float* __restrict__", Passing.Pointer, "workspace"));
            host.Add(new HostParameter("sync", HostKind.Buffer, "uint", false, "the blocks' ticket, arrival counts and ready flags (SyncLength; zeroed on the stream before the kernel)"));
            kernel.Add(new KernelParameter("sync", "unsigned int* __restrict__", Passing.Pointer, "sync"));
            foreach (var (name, cudaName) in new[] { ("kNonFinite", "k_nonfinite"), ("vNonFinite", "v_nonfinite") })
            {
                host.Add(StatisticsHost(name));
                kernel.Add(new KernelParameter(cudaName, "unsigned int*", Passing.Pointer, name));
            }
            return new KernelSignature(host.ToEquatableArray(), kernel.ToEquatableArray());
        }
    }
}

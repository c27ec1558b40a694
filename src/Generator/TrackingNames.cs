namespace KernelDsl.Generator;

/// <summary>Names of the generator's pipeline steps, for incrementality tests and diagnostics tooling.</summary>
public static class TrackingNames
{
    public const string GemmDeclarations = "KernelDsl.GemmDeclarations";
    public const string QuantizeDeclarations = "KernelDsl.QuantizeDeclarations";
    public const string AttentionDeclarations = "KernelDsl.AttentionDeclarations";
    public const string LseMergeDeclarations = "KernelDsl.LseMergeDeclarations";
    public const string KvAppendDeclarations = "KernelDsl.KvAppendDeclarations";
    public const string KvStatisticsDeclarations = "KernelDsl.KvStatisticsDeclarations";
    public const string KvCodesDeclarations = "KernelDsl.KvCodesDeclarations";
    public const string KvSinglePassDeclarations = "KernelDsl.KvSinglePassDeclarations";
    public const string PagedDecodeDeclarations = "KernelDsl.PagedDecodeDeclarations";
    public const string AttentionFamilies = "KernelDsl.AttentionFamilies";
    public const string Diagnostics = "KernelDsl.Diagnostics";
    public const string ValidSpecs = "KernelDsl.ValidSpecs";
    public const string EmittedSources = "KernelDsl.EmittedSources";
    public const string Registry = "KernelDsl.Registry";
    public const string UnavailableKernels = "KernelDsl.UnavailableKernels";
    public const string UnavailableSources = "KernelDsl.UnavailableSources";
}

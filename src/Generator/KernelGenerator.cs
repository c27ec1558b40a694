using System.Collections.Immutable;
using System.Linq;
using KernelDsl.Generator.Cuda;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Launchers;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Parsing;
using Microsoft.CodeAnalysis;

namespace KernelDsl.Generator;

/// <summary>One generated file.</summary>
public sealed record GeneratedSource(string HintName, string Text);

/// <summary>
/// The incremental generator: attributes → spec (+ diagnostics) → CUDA text and typed C# launcher.
/// Diagnostics are reported from their own step; emission sees only valid specs, so a change that only moves
/// a diagnostic re-emits nothing, and a comment anywhere leaves every step cached.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class KernelGenerator : IIncrementalGenerator
{
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var gemm = context.SyntaxProvider
            .ForAttributeWithMetadataName(DeclarationReader.GemmAttribute, DeclarationReader.IsTypeDeclaration,
                (c, ct) => DeclarationReader.Read(c, DeclarationReader.GemmAttribute, ct))
            .WithTrackingName(TrackingNames.GemmDeclarations);
        var quantize = context.SyntaxProvider
            .ForAttributeWithMetadataName(DeclarationReader.QuantizeAttribute, DeclarationReader.IsTypeDeclaration,
                (c, ct) => DeclarationReader.Read(c, DeclarationReader.QuantizeAttribute, ct))
            .WithTrackingName(TrackingNames.QuantizeDeclarations);

        // [FlashAttentionForward]: its kernel, and with AlsoCausal its causal twin nested in it.
        var attention = context.SyntaxProvider
            .ForAttributeWithMetadataName(DeclarationReader.AttentionAttribute, DeclarationReader.IsTypeDeclaration,
                (c, ct) => DeclarationReader.ReadAttention(c, ct))
            .SelectMany((results, _) => results)
            .WithTrackingName(TrackingNames.AttentionDeclarations);

        // [AttentionFamily(typeof(Forms))]: one attention kernel per form, nested in the family type.
        var attentionFamilies = context.SyntaxProvider
            .ForAttributeWithMetadataName(DeclarationReader.AttentionFamilyAttribute, DeclarationReader.IsTypeDeclaration,
                (c, ct) => DeclarationReader.ReadAttentionFamily(c, ct))
            .SelectMany((results, _) => results)
            .WithTrackingName(TrackingNames.AttentionFamilies);

        var merge = context.SyntaxProvider
            .ForAttributeWithMetadataName(DeclarationReader.LseMergeAttribute, DeclarationReader.IsTypeDeclaration,
                (c, ct) => DeclarationReader.Read(c, DeclarationReader.LseMergeAttribute, ct))
            .WithTrackingName(TrackingNames.LseMergeDeclarations);

        var kvAppend = context.SyntaxProvider
            .ForAttributeWithMetadataName(DeclarationReader.KvAppendAttribute, DeclarationReader.IsTypeDeclaration,
                (c, ct) => DeclarationReader.Read(c, DeclarationReader.KvAppendAttribute, ct))
            .WithTrackingName(TrackingNames.KvAppendDeclarations);

        var kvStatistics = context.SyntaxProvider
            .ForAttributeWithMetadataName(DeclarationReader.KvStatisticsAttribute, DeclarationReader.IsTypeDeclaration,
                (c, ct) => DeclarationReader.Read(c, DeclarationReader.KvStatisticsAttribute, ct))
            .WithTrackingName(TrackingNames.KvStatisticsDeclarations);

        var kvCodes = context.SyntaxProvider
            .ForAttributeWithMetadataName(DeclarationReader.KvCodesAttribute, DeclarationReader.IsTypeDeclaration,
                (c, ct) => DeclarationReader.Read(c, DeclarationReader.KvCodesAttribute, ct))
            .WithTrackingName(TrackingNames.KvCodesDeclarations);

        var kvSinglePass = context.SyntaxProvider
            .ForAttributeWithMetadataName(DeclarationReader.KvSinglePassAttribute, DeclarationReader.IsTypeDeclaration,
                (c, ct) => DeclarationReader.Read(c, DeclarationReader.KvSinglePassAttribute, ct))
            .WithTrackingName(TrackingNames.KvSinglePassDeclarations);

        var pagedDecode = context.SyntaxProvider
            .ForAttributeWithMetadataName(DeclarationReader.PagedDecodeAttribute, DeclarationReader.IsTypeDeclaration,
                (c, ct) => DeclarationReader.Read(c, DeclarationReader.PagedDecodeAttribute, ct))
            .WithTrackingName(TrackingNames.PagedDecodeDeclarations);

        var gemmSpecs = Register(context, gemm);
        var quantizeSpecs = Register(context, quantize);
        var attentionSpecs = Register(context, attention);
        var familySpecs = Register(context, attentionFamilies);
        var mergeSpecs = Register(context, merge);
        var kvAppendSpecs = Register(context, kvAppend);
        var kvStatisticsSpecs = Register(context, kvStatistics);
        var kvCodesSpecs = Register(context, kvCodes);
        var kvSinglePassSpecs = Register(context, kvSinglePass);
        var pagedDecodeSpecs = Register(context, pagedDecode);

        // Every family's valid specs, in declaration-family order, for the registry.
        var all = gemmSpecs.Collect();
        foreach (var family in new[] { quantizeSpecs, attentionSpecs, familySpecs, mergeSpecs, kvAppendSpecs, pagedDecodeSpecs, kvStatisticsSpecs, kvCodesSpecs, kvSinglePassSpecs })
        {
            all = all.Combine(family.Collect()).Select((pair, _) => pair.Left.AddRange(pair.Right));
        }
        var registry = all
            .Select((specs, _) => specs.Select(s => new RegisteredKernel(s.Type.FullName, s is AttentionSpec)).ToEquatableArray())
            .WithTrackingName(TrackingNames.Registry);
        context.RegisterSourceOutput(registry, (ctx, names) =>
        {
            if (!names.IsEmpty)
            {
                ctx.AddSource(RegistryWriter.HintName, RegistryWriter.Write(names));
            }
        });
    }

    private static IncrementalValuesProvider<KernelSpec> Register(IncrementalGeneratorInitializationContext context, IncrementalValuesProvider<DeclarationResult> results)
    {
        var diagnostics = results.Select((r, _) => r.Diagnostics).WithTrackingName(TrackingNames.Diagnostics);
        context.RegisterSourceOutput(diagnostics, (ctx, list) =>
        {
            foreach (var diagnostic in list)
            {
                ctx.ReportDiagnostic(diagnostic.ToDiagnostic());
            }
        });

        var specs = results.Where(r => r.CanEmit).Select((r, _) => r.Spec!).WithTrackingName(TrackingNames.ValidSpecs);
        var sources = specs.Select((spec, _) => Emit(spec)).WithTrackingName(TrackingNames.EmittedSources);
        context.RegisterSourceOutput(sources, AddSources);

        // A declaration with KDSL errors still gets its members, so its uses bind and the error is reported once (UnavailableKernelWriter).
        var unavailable = results.Where(r => !r.CanEmit && r.Spec is not null)
            .Select((r, _) => new UnavailableKernel(r.Spec!, r.FirstError!))
            .WithTrackingName(TrackingNames.UnavailableKernels);
        var placeholders = unavailable.Select((kernel, _) => UnavailableKernelWriter.Write(kernel)).WithTrackingName(TrackingNames.UnavailableSources);
        context.RegisterSourceOutput(placeholders, AddSources);
        return specs;
    }

    private static void AddSources(SourceProductionContext context, EquatableArray<GeneratedSource> files)
    {
        foreach (var file in files)
        {
            context.AddSource(file.HintName, file.Text);
        }
    }

    /// <summary>Spec → generated files: the CUDA module constant and the launcher.</summary>
    public static EquatableArray<GeneratedSource> Emit(KernelSpec spec)
    {
        var hint = spec.Type.FullName;
        return new[]
        {
            new GeneratedSource(hint + ".cu.g.cs", CudaSourceWriter.Write(spec, EmitCuda(spec))),
            new GeneratedSource(hint + ".g.cs", WriteLauncher(spec)),
        }.ToEquatableArray();
    }

    /// <summary>The C# launcher of a spec: its constants, <c>Module</c>, <c>Launch</c> and the family's other members.</summary>
    public static string WriteLauncher(KernelSpec spec) => spec switch
    {
        GemmSpec gemm => GemmLauncherWriter.Write(GemmPlan.Create(gemm)),
        QuantizeSpec quantize => QuantizeLauncherWriter.Write(new QuantizePlan(quantize)),
        AttentionSpec attention => AttentionLauncherWriter.Write(new AttentionPlan(attention)),
        LseMergeSpec merge => LseMergeLauncherWriter.Write(new LseMergePlan(merge)),
        KvAppendSpec append => KvAppendLauncherWriter.Write(new KvAppendPlan(append)),
        KvStatisticsSpec statistics => KvStatisticsLauncherWriter.Write(new KvStatisticsPlan(statistics)),
        KvCodesSpec codes => KvCodesLauncherWriter.Write(new KvCodesPlan(codes)),
        KvSinglePassSpec single => KvSinglePassLauncherWriter.Write(new KvSinglePassPlan(single)),
        PagedDecodeSpec decode => PagedDecodeLauncherWriter.Write(new PagedDecodePlan(decode)),
        _ => throw new System.ArgumentException("Unknown kernel family " + spec.Family, nameof(spec)),
    };

    /// <summary>The CUDA text of a spec alone, for tests and tools.</summary>
    public static string EmitCuda(KernelSpec spec) => spec switch
    {
        GemmSpec gemm => GemmEmitter.Emit(GemmPlan.Create(gemm)),
        QuantizeSpec quantize => QuantizeEmitter.Emit(new QuantizePlan(quantize)),
        AttentionSpec attention => AttentionEmitter.Emit(new AttentionPlan(attention)),
        LseMergeSpec merge => LseMergeWriter.WriteCuda(merge),
        KvAppendSpec append => KvAppendKernelWriter.Write(new KvAppendPlan(append)),
        KvStatisticsSpec statistics => KvStatisticsKernelWriter.Write(new KvStatisticsPlan(statistics)),
        KvCodesSpec codes => KvCodesKernelWriter.Write(new KvCodesPlan(codes)),
        KvSinglePassSpec single => KvSinglePassKernelWriter.Write(new KvSinglePassPlan(single)),
        PagedDecodeSpec decode => PagedDecodeKernelWriter.Write(new PagedDecodePlan(decode)),
        _ => throw new System.ArgumentException("Unknown kernel family " + spec.Family, nameof(spec)),
    };
}

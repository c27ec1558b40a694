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
        // A declaration of one family attribute, read into its spec (or its diagnostics).
        IncrementalValuesProvider<DeclarationResult> Declarations(string attribute, string trackingName) => context.SyntaxProvider
            .ForAttributeWithMetadataName(attribute, DeclarationReader.IsTypeDeclaration, (c, ct) => DeclarationReader.Read(c, attribute, ct))
            .WithTrackingName(trackingName);

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

        // Every family's valid specs, in this order in the registry.
        IncrementalValuesProvider<KernelSpec>[] families =
        [
            Register(context, Declarations(DeclarationReader.GemmAttribute, TrackingNames.GemmDeclarations)),
            Register(context, Declarations(DeclarationReader.QuantizeAttribute, TrackingNames.QuantizeDeclarations)),
            Register(context, attention),
            Register(context, attentionFamilies),
            Register(context, Declarations(DeclarationReader.LseMergeAttribute, TrackingNames.LseMergeDeclarations)),
            Register(context, Declarations(DeclarationReader.KvAppendAttribute, TrackingNames.KvAppendDeclarations)),
            Register(context, Declarations(DeclarationReader.PagedDecodeAttribute, TrackingNames.PagedDecodeDeclarations)),
            Register(context, Declarations(DeclarationReader.KvStatisticsAttribute, TrackingNames.KvStatisticsDeclarations)),
            Register(context, Declarations(DeclarationReader.KvCodesAttribute, TrackingNames.KvCodesDeclarations)),
            Register(context, Declarations(DeclarationReader.KvSinglePassAttribute, TrackingNames.KvSinglePassDeclarations)),
        ];
        var all = families[0].Collect();
        foreach (var family in families.Skip(1))
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

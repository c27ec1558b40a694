using System;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Threading;
using KernelDsl.Generator.Diagnostics;
using KernelDsl.Generator.Helpers;
using KernelDsl.Generator.Model;
using KernelDsl.Generator.Validation;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace KernelDsl.Generator.Parsing;

/// <summary>
/// Reads an attributed type into a <see cref="KernelSpec"/> and validates it. This is the only place Roslyn
/// symbols are touched; what leaves is values.
/// </summary>
public static class DeclarationReader
{
    public const string GemmAttribute = "KernelDsl.Int8GemmAttribute";
    public const string QuantizeAttribute = "KernelDsl.QuantizeAttribute";
    public const string AttentionAttribute = "KernelDsl.FlashAttentionForwardAttribute";
    public const string LseMergeAttribute = "KernelDsl.LseMergeAttribute";
    public const string KvAppendAttribute = "KernelDsl.KvCacheAppendAttribute";
    public const string KvStatisticsAttribute = "KernelDsl.KvStatisticsAttribute";
    public const string KvCodesAttribute = "KernelDsl.KvCodesAttribute";
    public const string KvSinglePassAttribute = "KernelDsl.KvSinglePassAttribute";
    public const string PagedDecodeAttribute = "KernelDsl.PagedDecodeAttribute";
    private const string SmemLayoutAttribute = "KernelDsl.SmemLayoutAttribute";
    private const string CopyAtomAttribute = "KernelDsl.CopyAtomAttribute";
    private const string MmaAtomAttribute = "KernelDsl.MmaAtomAttribute";
    public const string AttentionFamilyAttribute = "KernelDsl.AttentionFamilyAttribute";
    private const string AttentionFormsAttribute = "KernelDsl.AttentionFormsAttribute";

    /// <summary>Every family attribute's full name.</summary>
    public static readonly string[] FamilyAttributes = [GemmAttribute, QuantizeAttribute, AttentionAttribute, LseMergeAttribute, KvAppendAttribute, PagedDecodeAttribute, KvStatisticsAttribute, KvCodesAttribute, KvSinglePassAttribute];

    /// <summary>The generator's defaults, which a test keeps equal to the attributes' property initializers.</summary>
    public static readonly ImmutableArray<Sm> DefaultTargets = [Sm.Sm80, Sm.Sm90];

    public static bool IsTypeDeclaration(SyntaxNode node, CancellationToken _) => node is TypeDeclarationSyntax;

    public static DeclarationResult Read(GeneratorAttributeSyntaxContext context, string familyAttribute, CancellationToken cancellationToken)
    {
        var symbol = (INamedTypeSymbol)context.TargetSymbol;
        var syntax = (TypeDeclarationSyntax)context.TargetNode;
        var typeLocation = LocationInfo.From(syntax.Identifier.GetLocation());
        var attributes = symbol.GetAttributes();
        cancellationToken.ThrowIfCancellationRequested();

        var notPartial = NonPartialPart(syntax);
        if (notPartial is not null)
        {
            return Failed(Rules.NotPartial, typeLocation, symbol.Name, notPartial);
        }
        if (Unreachable(symbol) is { } why)
        {
            return Failed(Rules.UnsupportedType, typeLocation, symbol.Name, why);
        }
        // A kernel attribute that did not bind (missing or mistyped arguments, mid-edit) is the compiler's error to
        // report; reading it would only guess.
        if (Unbound(attributes))
        {
            return new DeclarationResult(null, EquatableArray<DiagnosticInfo>.Empty);
        }
        var families = FamilyAttributes.Where(f => attributes.Any(a => NameOf(a) == f)).ToArray();
        if (families.Length > 1)
        {
            // Both families' readers see this type; only the first reports it.
            return familyAttribute == families[0]
                ? Failed(Rules.TwoFamilies, typeLocation, symbol.Name, Short(families[0]), Short(families[1]))
                : new DeclarationResult(null, EquatableArray<DiagnosticInfo>.Empty);
        }

        if (familyAttribute == AttentionAttribute && symbol.ContainingType is { } holder && holder.GetAttributes().Any(a => NameOf(a) == AttentionFormsAttribute))
        {
            // A form of [AttentionFamily] types, not a kernel of its own: each family that names its holder declares it.
            return new DeclarationResult(null, EquatableArray<DiagnosticInfo>.Empty);
        }
        // Modifiers an [AttentionFamily] declares are reported with its first form; a kernel nested in the family (a decode
        // variant) applies them without reporting them again.
        var byFamily = ModifierReader.Hosts(symbol, cancellationToken).Any(h => h.GetAttributes().Any(a => NameOf(a) == AttentionFamilyAttribute));
        return ReadDeclaration(symbol, attributes, familyAttribute, Describe(symbol, syntax), typeLocation, symbol, context.SemanticModel.Compilation, cancellationToken,
            reportModifiers: !byFamily);
    }

    /// <summary>The nested type that <c>AlsoCausal = true</c> declares: the declaration's causal kernel.</summary>
    public const string CausalTwin = "Causal";

    /// <summary>
    /// The kernels a <c>[FlashAttentionForward]</c> type declares: its own, and with <c>AlsoCausal = true</c> the same
    /// declaration with causal masking, as the nested type <see cref="CausalTwin"/>. The twin is read like the declaration
    /// (so a rule that holds only for causal kernels is checked), and reports nothing the declaration already reports.
    /// </summary>
    public static EquatableArray<DeclarationResult> ReadAttention(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
    {
        var own = Read(context, AttentionAttribute, cancellationToken);
        var symbol = (INamedTypeSymbol)context.TargetSymbol;
        var attributes = symbol.GetAttributes();
        if (AlsoCausal(attributes) is not { } alsoCausal || own.Spec is not AttentionSpec spec)
        {
            return new[] { own }.ToEquatableArray();
        }
        var family = attributes.First(a => NameOf(a) == AttentionAttribute);
        var where = LocationInfo.From(family.ApplicationSyntaxReference?.GetSyntax(cancellationToken));
        DiagnosticInfo Refused(string why) => RefusedAlsoCausal(where, symbol.Name, why);
        // A name that is taken: no twin can be declared at all, so its uses are the compiler's errors.
        string? taken = symbol.Name == CausalTwin ? $"the causal kernel is a type '{CausalTwin}' nested in it, and a nested type cannot have its enclosing type's name; rename the declaration"
            : !symbol.GetMembers(CausalTwin).IsEmpty ? $"'{symbol.Name}' already has a member named '{CausalTwin}', the name of its causal kernel; rename that member"
            : null;
        if (taken is not null)
        {
            return new[] { own with { Diagnostics = own.Diagnostics.Concat([Refused(taken)]).ToEquatableArray() } }.ToEquatableArray();
        }
        var type = spec.Type.Nested(CausalTwin, isStatic: true, symbol.DeclaredAccessibility == Accessibility.Public ? "public " : "internal ");
        if (spec.Causal)
        {
            own = own with { Diagnostics = own.Diagnostics.Concat([Refused("the declaration is causal already (Causal = true, here or along its Like chain)")]).ToEquatableArray() };
        }
        DeclarationResult twin;
        if (own.FirstError is not null)
        {
            // Not emitted either, but given its placeholder members, so a use of the twin binds: the declaration's errors
            // (a refused AlsoCausal among them) are reported once, at the declaration.
            twin = new DeclarationResult(spec with { Type = type, Causal = true }, EquatableArray<DiagnosticInfo>.Empty) { ReportedElsewhere = own.Diagnostics.Concat(own.ReportedElsewhere).ToEquatableArray() };
        }
        else
        {
            // AlsoCausal's own `true` stands for Causal = true, winning over the declaration's and its Like chain's. The
            // declaration reports the modifiers' diagnostics.
            twin = ReadDeclaration(symbol, attributes, AttentionAttribute, type, where, symbol, context.SemanticModel.Compilation, cancellationToken,
                [new KeyValuePair<string, TypedConstant>("Causal", alsoCausal)], reportModifiers: false);
            // What the twin shares with the declaration (a layout's bank-conflict warning) is reported once, by the declaration.
            var reported = own.Diagnostics.Select(d => (d.Rule.Id, d.Arguments)).ToImmutableHashSet();
            twin = twin with { Diagnostics = twin.Diagnostics.Where(d => !reported.Contains((d.Rule.Id, d.Arguments))).ToEquatableArray() };
        }
        return new[] { own, twin }.ToEquatableArray();
    }

    /// <summary>KDSL0012 at <paramref name="where"/>: <paramref name="name"/>'s AlsoCausal refused, and why.</summary>
    private static DiagnosticInfo RefusedAlsoCausal(LocationInfo? where, string name, string why) =>
        new(Rules.InvalidAlsoCausal, where, new[] { name, why }.ToEquatableArray());

    /// <summary><c>AlsoCausal = true</c> of a declaration's own [FlashAttentionForward] (Like does not pass it on), or null.</summary>
    private static TypedConstant? AlsoCausal(ImmutableArray<AttributeData> attributes) =>
        attributes.FirstOrDefault(a => NameOf(a) == AttentionAttribute)?.NamedArguments.FirstOrDefault(n => n.Key == "AlsoCausal").Value is { Value: true } value ? value : null;

    /// <summary>
    /// The kernels an <c>[AttentionFamily(typeof(Forms))]</c> type declares: for each <c>[FlashAttentionForward]</c> type
    /// nested in Forms, a kernel of the same name nested in the family type, with that form's declaration and the family's
    /// modifiers.
    /// </summary>
    public static EquatableArray<DeclarationResult> ReadAttentionFamily(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
    {
        var symbol = (INamedTypeSymbol)context.TargetSymbol;
        var syntax = (TypeDeclarationSyntax)context.TargetNode;
        var typeLocation = LocationInfo.From(syntax.Identifier.GetLocation());
        var notPartial = NonPartialPart(syntax);
        if (notPartial is not null)
        {
            return new[] { Failed(Rules.NotPartial, typeLocation, symbol.Name, notPartial) }.ToEquatableArray();
        }
        if (Unreachable(symbol) is { } why)
        {
            return new[] { Failed(Rules.UnsupportedType, typeLocation, symbol.Name, why) }.ToEquatableArray();
        }
        var attribute = context.Attributes[0];
        if (attribute.ConstructorArguments.Length != 1 || attribute.ConstructorArguments[0].Value is not INamedTypeSymbol forms)
        {
            return EquatableArray<DeclarationResult>.Empty;  // the compiler reports the unbound attribute
        }
        var kernels = forms.GetTypeMembers().Where(t => t.GetAttributes().Any(a => NameOf(a) == AttentionAttribute)).ToArray();
        var where = LocationInfo.From(attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken)) ?? typeLocation;
        if (kernels.Length == 0)
        {
            return new[] { Failed(Rules.EmptyAttentionFamily, where, symbol.Name, forms.Name) }.ToEquatableArray();
        }
        var outer = Describe(symbol, syntax);
        var taken = symbol.GetTypeMembers().Select(t => t.Name).ToImmutableHashSet();
        // The family's kernels are new types nested in it: a name it already has (its own nested type, or the forms
        // themselves when a type is its own family) would be declared twice.
        if (kernels.FirstOrDefault(k => taken.Contains(k.Name)) is { } clash)
        {
            return new[] { Failed(Rules.FamilyKernelNameTaken, where, symbol.Name, clash.Name) }.ToEquatableArray();
        }
        var results = new List<DeclarationResult>();
        foreach (var form in kernels)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var type = outer.Nested(form.Name, form.IsStatic, symbol.DeclaredAccessibility == Accessibility.Public ? "public " : "internal ");
            // The family's modifiers are the same for every form: their diagnostics are reported with the first form only.
            var formAttributes = form.GetAttributes();
            var read = ReadDeclaration(form, formAttributes, AttentionAttribute, type, where, symbol, context.SemanticModel.Compilation, cancellationToken, attribute.NamedArguments,
                reportModifiers: results.Count == 0);
            if (AlsoCausal(formAttributes) is not null)
            {
                // Refused, but still declared (placeholder members), so the family's uses of this form bind.
                read = read with { Diagnostics = read.Diagnostics.Concat([RefusedAlsoCausal(where, form.Name,
                    $"it is a form of the [AttentionForms] type '{forms.Name}', whose families each say Causal; declare a causal family beside '{symbol.Name}' instead")]).ToEquatableArray() };
            }
            results.Add(read);
        }
        return results.ToEquatableArray();
    }

    /// <summary>
    /// A declaration's spec and diagnostics from its attributes (<paramref name="attributes"/>, those of
    /// <paramref name="symbol"/>), emitted as <paramref name="type"/>, with the modifiers found from <paramref name="modifierHost"/>.
    /// </summary>
    /// <param name="overrides">Named arguments that win over the declaration's own: an [AttentionFamily]'s (Causal), or a causal twin's Causal.</param>
    private static DeclarationResult ReadDeclaration(INamedTypeSymbol symbol, ImmutableArray<AttributeData> attributes, string familyAttribute, TypeDeclaration type,
        LocationInfo? typeLocation, INamedTypeSymbol modifierHost, Compilation compilation, CancellationToken cancellationToken,
        ImmutableArray<KeyValuePair<string, TypedConstant>> overrides = default, bool reportModifiers = true)
    {
        var family = attributes.First(a => NameOf(a) == familyAttribute);
        // Like = typeof(Other): the other declaration's layouts, atoms and parameters, this attribute's named ones on top.
        var like = Like(family, familyAttribute, typeLocation, out var likeError);
        if (likeError is not null)
        {
            return likeError;
        }
        // The layouts and atoms along the Like chain, farthest first, each nearer declaration's replacing the ones it names.
        var atomSource = like is null ? attributes : MergeAtoms(like.Value.Attributes.Reverse().Append(attributes));
        // A form's or a Like target's attribute that did not bind is the compiler's error too (reported at that type).
        if (Unbound(attributes) || Unbound(atomSource) || (like is { } chain && Unbound(chain.Families)))
        {
            return new DeclarationResult(null, EquatableArray<DiagnosticInfo>.Empty);
        }
        var layouts = atomSource.Where(a => NameOf(a) == SmemLayoutAttribute).ToArray();
        var atoms = atomSource.Where(a => NameOf(a) == CopyAtomAttribute).ToArray();
        var mmaAttributes = atomSource.Where(a => NameOf(a) == MmaAtomAttribute).ToArray();
        var findings = new List<Finding>();
        // Slots 0 and 1: the main product's atom and P·V's (FindingTarget.Mma / PvMma); slot 2: a duplicate, for its location.
        var mmaByProduct = new AttributeData?[3];
        foreach (var attribute in mmaAttributes)
        {
            var product = new NamedArguments(attribute, findings).Enum("Product", MmaProduct.Main);
            var slot = product == MmaProduct.PV ? 1 : 0;
            if (mmaByProduct[slot] is not null)
            {
                mmaByProduct[2] ??= attribute;
                findings.Add(Finding.Of(Rules.Duplicate, new FindingTarget(TargetKind.Mma, 2), symbol.Name, "[MmaAtom]", product == MmaProduct.PV ? "product PV" : "the main product"));
            }
            mmaByProduct[slot] ??= attribute;
        }
        var mma = mmaByProduct[0];
        var pvMma = mmaByProduct[1];

        var targets = ReadTargets(family, findings, like?.Families ?? []);
        var smemLayouts = layouts.Select((a, i) => new SmemLayoutSpec(
            Enum<Operand>(a.ConstructorArguments[0], findings, new FindingTarget(TargetKind.SmemLayout, i), "SmemLayout.Operand"),
            Enum<Element>(a.ConstructorArguments[1], findings, new FindingTarget(TargetKind.SmemLayout, i), "SmemLayout.Element"),
            new Swizzle(IntOf(a.ConstructorArguments[2]), IntOf(a.ConstructorArguments[3]), IntOf(a.ConstructorArguments[4])))).ToEquatableArray();
        var copyAtoms = atoms.Select((a, i) => new CopyAtomSpec(
            Enum<Operand>(a.ConstructorArguments[0], findings, new FindingTarget(TargetKind.CopyAtom, i), "CopyAtom.Operand"),
            Enum<CopyAtomKind>(a.ConstructorArguments[1], findings, new FindingTarget(TargetKind.CopyAtom, i), "CopyAtom.Atom"))).ToEquatableArray();
        MmaAtomKind? mmaKind = mma is null ? null : Enum<MmaAtomKind>(mma.ConstructorArguments[0], findings, FindingTarget.Mma, "MmaAtom.Atom");
        MmaAtomKind? pvMmaKind = pvMma is null ? null : Enum<MmaAtomKind>(pvMma.ConstructorArguments[0], findings, FindingTarget.PvMma, "MmaAtom.Atom");

        KernelSpec? spec = null;
        var modifierDiagnostics = new List<DiagnosticInfo>();
        var launcherDiagnostics = new List<DiagnosticInfo>();
        if (findings.Count == 0)
        {
            var named = new NamedArguments(family, findings, like?.Families ?? [], overrides);
            spec = familyAttribute switch
            {
                GemmAttribute => new GemmSpec
                {
                    Type = type, Targets = targets, SmemLayouts = smemLayouts, CopyAtoms = copyAtoms, Mma = mmaKind, PvMma = pvMmaKind,
                    BlockM = named.Int("BlockM", 128), BlockN = named.Int("BlockN", 128), BlockK = named.Int("BlockK", 64),
                    Warps = named.Int("Warps", 8), WarpsM = named.Int("WarpsM", 0), Stages = named.Int("Stages", 3),
                    Layout = named.Enum("Layout", GemmLayout.TN), Output = named.Enum("Output", GemmOutput.S32),
                },
                AttentionAttribute => new AttentionSpec
                {
                    Type = type, Targets = targets, SmemLayouts = smemLayouts, CopyAtoms = copyAtoms, Mma = mmaKind, PvMma = pvMmaKind,
                    HeadDim = named.Int("HeadDim", 128), BlockM = named.Int("BlockM", 128), QScaleRows = named.Int("QScaleRows", 0), QInput = named.Enum("QInput", Element.S8), BlockN = named.Int("BlockN", 64), KScaleKeys = named.Int("KScaleKeys", 0),
                    Warps = named.Int("Warps", 8), Stages = named.Int("Stages", 2), MinBlocksPerSm = named.Int("MinBlocksPerSm", 1), Pingpong = named.Bool("Pingpong", false), Persistent = named.Bool("Persistent", false), Causal = named.Bool("Causal", false),
                    Output = named.Enum("Output", Element.F16), Lse = named.Bool("Lse", true),
                },
                LseMergeAttribute => new LseMergeSpec
                {
                    Type = type, Targets = targets, SmemLayouts = smemLayouts, CopyAtoms = copyAtoms, Mma = mmaKind, PvMma = pvMmaKind,
                    HeadDim = named.Int("HeadDim", 128), Threads = named.Int("Threads", 128),
                },
                KvAppendAttribute => new KvAppendSpec
                {
                    Type = type, Targets = targets, SmemLayouts = smemLayouts, CopyAtoms = copyAtoms, Mma = mmaKind, PvMma = pvMmaKind,
                    HeadDim = named.Int("HeadDim", 128), PageSize = named.Int("PageSize", 64), Input = named.Enum("Input", Element.F16),
                    Threads = named.Int("Threads", 128),
                },
                KvStatisticsAttribute => new KvStatisticsSpec
                {
                    Type = type, Targets = targets, SmemLayouts = smemLayouts, CopyAtoms = copyAtoms, Mma = mmaKind, PvMma = pvMmaKind,
                    Input = named.Enum("Input", Element.F16), HeadDim = named.Int("HeadDim", 128), SliceTokens = named.Int("SliceTokens", 256),
                    VOutput = named.Enum("VOutput", Element.S8), Threads = named.Int("Threads", 256),
                },
                KvCodesAttribute => new KvCodesSpec
                {
                    Type = type, Targets = targets, SmemLayouts = smemLayouts, CopyAtoms = copyAtoms, Mma = mmaKind, PvMma = pvMmaKind,
                    Input = named.Enum("Input", Element.F16), HeadDim = named.Int("HeadDim", 128), KScaleKeys = named.Int("KScaleKeys", 64),
                    VOutput = named.Enum("VOutput", Element.S8), VTransposed = named.Bool("VTransposed", false),
                    TransposedOrder = named.Enum("TransposedOrder", TokenOrder.Pi), TransposePad = named.Int("TransposePad", 64), Threads = named.Int("Threads", 256),
                },
                KvSinglePassAttribute => new KvSinglePassSpec
                {
                    Type = type, Targets = targets, SmemLayouts = smemLayouts, CopyAtoms = copyAtoms, Mma = mmaKind, PvMma = pvMmaKind,
                    Input = named.Enum("Input", Element.F16), HeadDim = named.Int("HeadDim", 128), SliceTokens = named.Int("SliceTokens", 256),
                    KScaleKeys = named.Int("KScaleKeys", 64), VOutput = named.Enum("VOutput", Element.S8), VTransposed = named.Bool("VTransposed", false),
                    TransposedOrder = named.Enum("TransposedOrder", TokenOrder.Pi), TransposePad = named.Int("TransposePad", 64), Threads = named.Int("Threads", 256),
                },
                PagedDecodeAttribute => new PagedDecodeSpec
                {
                    Type = type, Targets = targets, SmemLayouts = smemLayouts, CopyAtoms = copyAtoms, Mma = mmaKind, PvMma = pvMmaKind,
                    HeadDim = named.Int("HeadDim", 128), PageSize = named.Int("PageSize", 64), StageKeys = named.Int("StageKeys", 64),
                    Input = named.Enum("Input", Element.F16), Warps = named.Int("Warps", 4), Stages = named.Int("Stages", 2),
                },
                _ => new QuantizeSpec
                {
                    Type = type, Targets = targets, SmemLayouts = smemLayouts, CopyAtoms = copyAtoms, Mma = mmaKind, PvMma = pvMmaKind,
                    Input = named.Enum("Input", Element.F16), Granularity = named.Enum("Granularity", QuantGranularity.PerRowBlock),
                    BlockRows = named.Int("BlockRows", 128), HeadDim = named.Int("HeadDim", 128),
                    SubtractChannelMean = named.Bool("SubtractChannelMean", false), Transposed = named.Bool("Transposed", false),
                    TransposedOrder = named.Enum("TransposedOrder", TokenOrder.Pi), TransposePad = named.Int("TransposePad", 64),
                    Threads = named.Int("Threads", 256), Output = named.Enum("Output", Element.S8),
                },
            };
            cancellationToken.ThrowIfCancellationRequested();
            if (spec is AttentionSpec or PagedDecodeSpec)
            {
                var (score, mask) = ModifierReader.Read(modifierHost, compilation, modifierDiagnostics, cancellationToken);
                if (modifierDiagnostics.Count > 0)
                {
                    // Not emitted, but its placeholder members keep the modifiers' runtime parameters (ModifierReader.Signatures).
                    var (scoreSignature, maskSignature) = ModifierReader.Signatures(modifierHost, compilation, cancellationToken);
                    (score, mask) = (score ?? scoreSignature, mask ?? maskSignature);
                }
                spec = spec switch
                {
                    AttentionSpec attention => attention with { Score = score, Mask = mask },
                    PagedDecodeSpec decode => decode with { Score = score, Mask = mask },
                    _ => spec,
                };
                // The clashes are this launcher's own: an attention family's forms share one launcher shape (reported with the
                // first form, as its modifiers are), a decode variant has its own.
                // An attention kernel's clash at the parameter it names (the spec keeps no locations, so that moving code
                // re-emits nothing); a decode variant's at the variant, whose launcher alone has the name.
                LocationInfo? ParameterLocation(ModifierSpec modifier, string name) =>
                    spec is not PagedDecodeSpec && ModifierReader.Hosts(modifierHost, cancellationToken).SelectMany(h => h.GetMembers(modifier.MethodName))
                        .OfType<IMethodSymbol>().SelectMany(m => m.Parameters).FirstOrDefault(p => p.Name == name)?.Locations.FirstOrDefault() is { } at
                        ? LocationInfo.From(at) : typeLocation;
                CheckModifierParameters(score, mask, LauncherNames(spec), ParameterLocation, spec is PagedDecodeSpec ? launcherDiagnostics : modifierDiagnostics);
            }
            if (findings.Count == 0)
            {
                findings.AddRange(spec switch
                {
                    GemmSpec gemm => GemmValidator.Validate(gemm),
                    QuantizeSpec quantize => QuantizeValidator.Validate(quantize),
                    AttentionSpec attention => AttentionValidator.Validate(attention),
                    LseMergeSpec merge => LseMergeValidator.Validate(merge),
                    KvAppendSpec append => KvAppendValidator.Validate(append),
                    KvStatisticsSpec statistics => KvStatisticsValidator.Validate(statistics),
                    KvCodesSpec codes => KvCodesValidator.Validate(codes),
                    KvSinglePassSpec single => KvSinglePassValidator.Validate(single),
                    PagedDecodeSpec decode => PagedDecodeValidator.Validate(decode),
                    _ => ImmutableArray<Finding>.Empty,
                });
            }
        }

        LocationInfo? Where(FindingTarget target) => target.Kind switch
        {
            TargetKind.Family => LocationInfo.From(family.ApplicationSyntaxReference?.GetSyntax(cancellationToken)),
            TargetKind.SmemLayout => LocationInfo.From(layouts[target.Index].ApplicationSyntaxReference?.GetSyntax(cancellationToken)),
            TargetKind.CopyAtom => LocationInfo.From(atoms[target.Index].ApplicationSyntaxReference?.GetSyntax(cancellationToken)),
            TargetKind.Mma => LocationInfo.From((mmaByProduct[target.Index] ?? family).ApplicationSyntaxReference?.GetSyntax(cancellationToken)),
            _ => typeLocation,
        };
        // The family's first form reports its modifiers' diagnostics; each other form is not emitted for them either.
        var diagnostics = findings.Select(f => new DiagnosticInfo(f.Rule, Where(f.Target), f.Arguments))
            .Concat(reportModifiers ? modifierDiagnostics : []).Concat(launcherDiagnostics).ToEquatableArray();
        return new DeclarationResult(spec, diagnostics) { ReportedElsewhere = reportModifiers ? EquatableArray<DiagnosticInfo>.Empty : modifierDiagnostics.ToEquatableArray() };
    }

    /// <summary>
    /// The modifiers' runtime parameters become launcher parameters: none may take a name the launcher already has, and a
    /// name both modifiers use is one argument, so it must have one type.
    /// </summary>
    private static void CheckModifierParameters(ModifierSpec? score, ModifierSpec? mask, IEnumerable<string> taken, Func<ModifierSpec, string, LocationInfo?> location,
        List<DiagnosticInfo> diagnostics)
    {
        var seen = new Dictionary<string, ModifierParameter>();
        var names = taken.ToImmutableHashSet();
        foreach (var modifier in new[] { score, mask })
        {
            foreach (var parameter in modifier?.Parameters.Where(p => p.Role == ParameterRole.Runtime) ?? [])
            {
                string? why = null;
                if (names.Contains(parameter.Name))
                {
                    why = "the kernel's generated launcher already has a parameter, local or member of that name; rename it";
                }
                else if (IsKeyword(parameter.Name))
                {
                    why = "it is a C# keyword, which the generated launcher cannot name as a parameter; rename it";
                }
                else if (seen.TryGetValue(parameter.Name, out var other) && (other.Type, other.IsArray) != (parameter.Type, parameter.IsArray))
                {
                    why = "the other modifier has a parameter of the same name with another type; both read one launch argument, so use one type or two names";
                }
                if (why is not null)
                {
                    diagnostics.Add(new DiagnosticInfo(Rules.ModifierParameterName, location(modifier!, parameter.Name), new[] { modifier!.MethodName, parameter.Name, why }.ToEquatableArray()));
                }
                seen[parameter.Name] = parameter;
            }
        }
    }

    /// <summary>Whether C# reads <paramref name="name"/> as a keyword, contextual ones included: KDSL0650 refuses it as a modifier parameter.</summary>
    internal static bool IsKeyword(string name) =>
        SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None || SyntaxFacts.GetContextualKeywordKind(name) != SyntaxKind.None;

    /// <summary>The names a modifier parameter would shadow or clash with in the family's generated launcher (KDSL0650).</summary>
    internal static IEnumerable<string> LauncherNames(KernelSpec spec) => spec is PagedDecodeSpec decode
        ? PagedDecodePlan.LauncherNames(decode)
        : AttentionSignature.Names.All.Concat(Launchers.AttentionLauncherWriter.ReservedNames);

    private static string? NameOf(AttributeData attribute) => attribute.AttributeClass?.ToDisplayString();

    private static bool IsKernelAttribute(AttributeData attribute) =>
        NameOf(attribute) is SmemLayoutAttribute or CopyAtomAttribute or MmaAtomAttribute || FamilyAttributes.Contains(NameOf(attribute));

    /// <summary>-1 for anything but an int: validation then reports the value as out of range.</summary>
    private static int IntOf(TypedConstant constant) => constant.Value is int value ? value : -1;

    /// <summary>Why generated code could not name the type (generic, or not visible to its own assembly), or null.</summary>
    private static string? Unreachable(INamedTypeSymbol symbol)
    {
        for (var type = symbol; type is not null; type = type.ContainingType)
        {
            if (type.IsGenericType)
            {
                return SymbolEqualityComparer.Default.Equals(type, symbol) ? "is generic" : $"is nested in the generic type '{type.Name}'";
            }
            if (type.DeclaredAccessibility is Accessibility.Private or Accessibility.Protected or Accessibility.ProtectedAndInternal)
            {
                return SymbolEqualityComparer.Default.Equals(type, symbol) ? $"is {type.DeclaredAccessibility.ToString().ToLowerInvariant()}" : $"is nested in the {type.DeclaredAccessibility.ToString().ToLowerInvariant()} type '{type.Name}'";
            }
        }
        return null;
    }

    private static string Short(string attribute) => attribute.Substring(attribute.LastIndexOf('.') + 1).Replace("Attribute", "");

    private static DeclarationResult Failed(Rule rule, LocationInfo? location, params string[] arguments) =>
        new(null, new[] { new DiagnosticInfo(rule, location, arguments.ToEquatableArray()) }.ToEquatableArray());

    /// <summary>The first of the type and its containing types that is not declared partial, described for the message.</summary>
    private static string? NonPartialPart(TypeDeclarationSyntax syntax)
    {
        for (SyntaxNode? node = syntax; node is TypeDeclarationSyntax type; node = node.Parent)
        {
            if (!type.Modifiers.Any(SyntaxKind.PartialKeyword))
            {
                return type == syntax ? "the type" : $"its containing type '{type.Identifier.Text}'";
            }
        }
        return null;
    }

    private static TypeDeclaration Describe(INamedTypeSymbol symbol, TypeDeclarationSyntax syntax)
    {
        var containing = new List<string>();
        for (var outer = symbol.ContainingType; outer is not null; outer = outer.ContainingType)
        {
            containing.Insert(0, new TypeDeclaration("", outer.Name, Keyword(outer), outer.IsStatic, EquatableArray<string>.Empty).Declaration);
        }
        return new TypeDeclaration(
            symbol.ContainingNamespace.IsGlobalNamespace ? "" : symbol.ContainingNamespace.ToDisplayString(),
            symbol.Name,
            Keyword(symbol),
            symbol.IsStatic,
            containing.ToEquatableArray());
    }

    private static string Keyword(INamedTypeSymbol type) => (type.IsRecord, type.TypeKind) switch
    {
        (true, TypeKind.Struct) => "record struct",
        (true, _) => "record",
        (_, TypeKind.Struct) => "struct",
        (_, TypeKind.Interface) => "interface",
        _ => "class",
    };

    private static EquatableArray<Sm> ReadTargets(AttributeData family, List<Finding> findings, ImmutableArray<AttributeData> like)
    {
        foreach (var pair in family.NamedArguments.Concat(like.SelectMany(l => l.NamedArguments)))
        {
            if (pair.Key == "Targets" && !pair.Value.IsNull)
            {
                return pair.Value.Values.Select(v => Enum<Sm>(v, findings, FindingTarget.Family, "Targets")).ToEquatableArray();
            }
        }
        return DefaultTargets.ToEquatableArray();
    }

    private static bool Unbound(IEnumerable<AttributeData> attributes) =>
        attributes.Any(a => IsKernelAttribute(a) && (a.AttributeConstructor is null
            || a.ConstructorArguments.Any(c => c.Kind == TypedConstantKind.Error)
            || a.NamedArguments.Any(n => n.Value.Kind == TypedConstantKind.Error)));

    /// <summary>
    /// The layout and atom attributes of a Like chain, farthest declaration first: a nearer declaration's layout replaces
    /// the one for its operand, a copy atom the one for its operand and direction, an MMA atom the one for its product;
    /// anything else it declares is added. Replacements keep their place, so a declaration that changes one atom yields
    /// the same spec order as one that spells them all. Within one declaration nothing is merged (duplicates stay KDSL0005).
    /// </summary>
    private static ImmutableArray<AttributeData> MergeAtoms(IEnumerable<ImmutableArray<AttributeData>> chain)
    {
        var merged = new List<(AttributeData Attribute, object? Key, int Level)>();
        var level = 0;
        foreach (var declaration in chain)
        {
            foreach (var attribute in declaration.Where(a => NameOf(a) is SmemLayoutAttribute or CopyAtomAttribute or MmaAtomAttribute))
            {
                var key = AtomKey(attribute);
                var replaced = key is null ? -1 : merged.FindIndex(m => m.Level < level && Equals(m.Key, key));
                if (replaced >= 0)
                {
                    merged[replaced] = (attribute, key, level);
                }
                else
                {
                    merged.Add((attribute, key, level));
                }
            }
            level++;
        }
        return merged.Select(m => m.Attribute).ToImmutableArray();
    }

    /// <summary>What a layout or atom attribute is for: (kind, operand) for a layout, (kind, operand, direction) for a copy atom, (kind, product) for an MMA atom; null when it cannot be told.</summary>
    private static object? AtomKey(AttributeData attribute)
    {
        var args = attribute.ConstructorArguments;
        return NameOf(attribute) switch
        {
            SmemLayoutAttribute when args.Length > 0 && args[0].Value is int operand => ("layout", operand),
            CopyAtomAttribute when args.Length > 1 && args[0].Value is int operand && args[1].Value is int atom && System.Enum.IsDefined(typeof(CopyAtomKind), atom)
                => ("copy", operand, Atoms.CopyAtom.Get((CopyAtomKind)atom).Direction),
            MmaAtomAttribute => ("mma", attribute.NamedArguments.FirstOrDefault(n => n.Key == "Product").Value.Value as int? ?? 0),
            _ => null,
        };
    }

    /// <summary>
    /// The declarations a family attribute's <c>Like</c> chain names, nearest first: their family attributes and all their
    /// attributes; null when there is no <c>Like</c>. A type that declares no such family, or a chain that comes back to
    /// a type it passed, is an error.
    /// </summary>
    private static (ImmutableArray<AttributeData> Families, ImmutableArray<ImmutableArray<AttributeData>> Attributes)? Like(
        AttributeData family, string familyAttribute, LocationInfo? location, out DeclarationResult? error)
    {
        error = null;
        var where = LocationInfo.From(family.ApplicationSyntaxReference?.GetSyntax()) ?? location;
        var families = ImmutableArray.CreateBuilder<AttributeData>();
        var attributes = ImmutableArray.CreateBuilder<ImmutableArray<AttributeData>>();
        var seen = new HashSet<INamedTypeSymbol>(SymbolEqualityComparer.Default);
        for (var current = family; ;)
        {
            var like = current.NamedArguments.FirstOrDefault(p => p.Key == "Like").Value;
            if (like.IsNull || like.Value is not INamedTypeSymbol other)
            {
                break;
            }
            if (!seen.Add(other))
            {
                error = Failed(Rules.InvalidLike, where, other.Name, "the Like chain comes back to it; name a declaration that is not Like this one");
                return null;
            }
            var otherAttributes = other.GetAttributes();
            var otherFamily = otherAttributes.FirstOrDefault(a => NameOf(a) == familyAttribute);
            if (otherFamily is null && other.TypeKind == TypeKind.Error && other.Name == CausalTwin && other.ContainingType is { } declaration)
            {
                // The generator's own compilation does not hold the types it declares: a twin is named by its declaration.
                error = Failed(Rules.InvalidLike, where, $"{declaration.Name}.{CausalTwin}",
                    $"it is the causal kernel that {declaration.Name}'s AlsoCausal declares, not a declaration; write Like = typeof({declaration.Name}), Causal = true");
                return null;
            }
            if (otherFamily is null)
            {
                error = Failed(Rules.InvalidLike, where, other.Name, $"it declares no [{Short(familyAttribute)}]");
                return null;
            }
            families.Add(otherFamily);
            attributes.Add(otherAttributes);
            current = otherFamily;
        }
        return families.Count == 0 ? null : (families.ToImmutable(), attributes.ToImmutable());
    }

    private static T Enum<T>(TypedConstant constant, List<Finding> findings, FindingTarget target, string name) where T : struct, Enum
    {
        var value = constant.Value is int i ? i : -1;
        if (!System.Enum.IsDefined(typeof(T), value))
        {
            findings.Add(Finding.Of(Rules.InvalidParameter, target, name, value, $"it is not a defined {typeof(T).Name} value"));
            return default;
        }
        return (T)(object)value;
    }

    /// <summary>Named attribute arguments with the attribute's defaults.</summary>
    /// <param name="like">The declarations along the <c>Like</c> chain, nearest first, whose arguments fill in those this one leaves out.</param>
    /// <param name="overrides">Arguments that win over this declaration's own: an [AttentionFamily]'s, or a causal twin's.</param>
    private sealed class NamedArguments(AttributeData attribute, List<Finding> findings, ImmutableArray<AttributeData> like = default,
        ImmutableArray<KeyValuePair<string, TypedConstant>> overrides = default)
    {
        private TypedConstant? Find(string name)
        {
            var chain = (overrides.IsDefault ? [] : overrides).Concat(attribute.NamedArguments).Concat(like.IsDefault ? [] : like.SelectMany(l => l.NamedArguments));
            foreach (var pair in chain)
            {
                if (pair.Key == name)
                {
                    return pair.Value;
                }
            }
            return null;
        }

        public int Int(string name, int fallback) => Find(name)?.Value is int value ? value : fallback;

        public bool Bool(string name, bool fallback) => Find(name)?.Value is bool value ? value : fallback;

        public T Enum<T>(string name, T fallback) where T : struct, Enum =>
            Find(name) is { } constant ? DeclarationReader.Enum<T>(constant, findings, FindingTarget.Family, name) : fallback;
    }
}

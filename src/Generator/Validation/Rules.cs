namespace KernelDsl.Generator.Validation;

public enum RuleSeverity { Error, Warning }

/// <summary>A build-time rule with a stable id. Ids are never reused or renumbered.</summary>
public sealed record Rule(string Id, string Title, string Message, RuleSeverity Severity = RuleSeverity.Error)
{
    /// <summary>The message with its arguments filled in, as the diagnostic shows it.</summary>
    public string Format(System.Collections.Generic.IEnumerable<string> arguments) =>
        string.Format(System.Globalization.CultureInfo.InvariantCulture, Message, System.Linq.Enumerable.ToArray<object>(arguments));
}

/// <summary>
/// Every KDSL diagnostic, in one place. KDSL00xx: declarations; KDSL01xx: swizzles and layouts;
/// KDSL02xx: resources; KDSL03xx: tiles; KDSL04xx: atoms and targets; KDSL05xx: fragment composition;
/// KDSL06xx: attention modifiers (the C# subset a [ScoreModifier] or [MaskModifier] body is translated from);
/// KDSL07xx: KV cache kernels.
/// </summary>
public static class Rules
{
    public static readonly Rule NotPartial = new("KDSL0001", "Kernel declarations must be partial",
        "'{0}' declares a kernel but {1} is not partial: add 'partial' so the generator can add the kernel's members");

    public static readonly Rule TwoFamilies = new("KDSL0002", "One kernel family per type",
        "'{0}' declares both [{1}] and [{2}]: declare each kernel on its own type");

    public static readonly Rule InvalidParameter = new("KDSL0003", "Invalid kernel parameter",
        "{0} = {1} is invalid: {2}");

    public static readonly Rule MissingLayout = new("KDSL0004", "Missing shared-memory layout",
        "'{0}' stages operand {1} in shared memory but declares no [SmemLayout(Operand.{1}, ...)] for it");

    public static readonly Rule Duplicate = new("KDSL0005", "Duplicate declaration",
        "'{0}' declares {1} for operand {2} more than once");

    public static readonly Rule UnknownOperand = new("KDSL0006", "Operand not in this family",
        "{0} has no operand {1}; its operands are {2}");

    public static readonly Rule MissingAtom = new("KDSL0007", "Missing copy or MMA atom",
        "'{0}' declares no {1}");

    public static readonly Rule UnsupportedType = new("KDSL0008", "Kernel type cannot be generated for",
        "'{0}' {1}: generated code names the kernel type from outside it, so declare kernels on non-generic types visible to their assembly");

    public static readonly Rule InvalidLike = new("KDSL0009", "Like names no usable declaration",
        "Like = typeof({0}) cannot be used: {1}");

    public static readonly Rule EmptyAttentionFamily = new("KDSL0010", "Attention family with no forms",
        "'{0}' is an [AttentionFamily] of '{1}', which declares no [FlashAttentionForward] type nested in it: list the family's kernels there, each a [FlashAttentionForward] type");

    public static readonly Rule FamilyKernelNameTaken = new("KDSL0011", "Attention family kernel name taken",
        "'{0}' is an [AttentionFamily] whose form '{1}' would become the nested type '{0}.{1}', but '{0}' already has a type of that name: rename one, or keep the forms in their own [AttentionForms] type");

    public static readonly Rule InvalidAlsoCausal = new("KDSL0012", "AlsoCausal cannot be used here",
        "'{0}' cannot declare AlsoCausal = true: {1}");

    public static readonly Rule ModifierParameterName = new("KDSL0650", "Modifier parameter name clashes",
        "parameter '{1}' of modifier '{0}' cannot become a launcher argument: {2}");

    public static readonly Rule SwizzleBreaksChunks = new("KDSL0101", "Swizzle breaks 16-byte chunks",
        "{0} on {1} keeps only 2^{2} = {3} together, but cp.async and ldmatrix move 16-byte chunks: use M = {4} for {1}, e.g. {5}");

    public static readonly Rule SwizzleSpan = new("KDSL0102", "Swizzle does not tile the layout",
        "{0} permutes blocks of {1} bytes, but the {2} tile is {3} bytes per stage: the tile must be a whole number of swizzle blocks");

    public static readonly Rule BankConflicts = new("KDSL0103", "Shared-memory bank conflicts",
        "ldmatrix of operand {0} ({1}-byte rows, {2}) has {3}-way bank conflicts; {4}", RuleSeverity.Warning);

    public static readonly Rule LayoutElement = new("KDSL0104", "Layout element does not match the MMA",
        "the [SmemLayout] of operand {0} holds {1}, but {2} reads {3} for it");

    public static readonly Rule TmaSwizzle = new("KDSL0105", "Layout is not the swizzle TMA and wgmma use",
        "operand {0} is written by {1} in {2}-byte rows, but its [SmemLayout] declares {3}: {4}");

    public static readonly Rule SharedMemoryLimit = new("KDSL0201", "Shared memory over the target's limit",
        "'{0}' needs {1} bytes of shared memory per block ({2}), but {3} allows at most {4}: use fewer stages or smaller tiles");

    public static readonly Rule TileNotDivisible = new("KDSL0301", "Tile not divisible by the atom or warp layout",
        "{0}");

    public static readonly Rule AtomTargetMismatch = new("KDSL0401", "Atom not available on a target",
        "{0} ({1}) needs {2}, but '{3}' targets {4}");

    public static readonly Rule AtomNotForFamily = new("KDSL0402", "Atom not usable here",
        "{0} cannot be used for {1}: {2}");

    public static readonly Rule FragmentMismatch = new("KDSL0501", "Copy atom does not feed the MMA",
        "copy atom {0} for operand {1} does not deliver the fragment {2} consumes; {3}. Why: {4}");

    public static readonly Rule ModifierSignature = new("KDSL0601", "Invalid modifier signature",
        "[{0}] method '{1}' {2}");

    public static readonly Rule ModifierLoop = new("KDSL0602", "Loop in a modifier",
        "'{0}' loops are not supported in a modifier: it runs once per score inside the attention kernel; use the conditional operator or closed-form arithmetic");

    public static readonly Rule ModifierStatement = new("KDSL0603", "Statement not supported in a modifier",
        "{0} is not supported in a modifier, whose body is local declarations and one final return: {1}");

    public static readonly Rule ModifierCall = new("KDSL0604", "Call not translatable to CUDA",
        "the call to '{0}' is not supported in a modifier: {1}");

    public static readonly Rule ModifierAllocation = new("KDSL0605", "Allocation in a modifier",
        "'{0}' allocates, which a modifier cannot: it runs once per score inside the attention kernel, where there is no managed heap; pass tables as ReadOnlySpan<int>, ReadOnlySpan<float>, int[] or float[] parameters");

    public static readonly Rule ModifierType = new("KDSL0606", "Unsupported type in a modifier",
        "'{0}' {1} type '{2}': a modifier computes with bool, int, float and double only, and reads int and float arrays passed as parameters");

    public static readonly Rule ModifierExternalState = new("KDSL0607", "Modifier reads state outside its parameters",
        "'{0}' is not supported in a modifier: {1}; the modifier becomes a CUDA device function that sees only its parameters, so pass the value as a runtime parameter or make it const");

    public static readonly Rule DuplicateModifier = new("KDSL0608", "Duplicate modifier",
        "'{0}' declares more than one [{1}] method ('{2}' and '{3}'): attention kernels apply one of each kind, so merge them into one");

    public static readonly Rule ModifierNotInSource = new("KDSL0609", "Modifier not available as source",
        "[{0}] method '{1}' has no source in this compilation, so its body cannot be translated to CUDA: declare the modifier in the project that declares the kernel");

    public static readonly Rule ModifierExpression = new("KDSL0610", "Expression not supported in a modifier",
        "'{0}' is not supported in a modifier: {1}");

    public static readonly Rule ModifierNondecreasing = new("KDSL0611", "Nondecreasing on a parameter that is not an array",
        "[Nondecreasing] on parameter '{0}' of modifier '{1}' promises that an array's elements never decrease, but '{0}' is {2}: remove the attribute");

    public static readonly Rule ModifierPositive = new("KDSL0612", "Positive on a parameter that is not a runtime scalar",
        "[Positive] on parameter '{0}' of modifier '{1}' is a rule on a value the caller passes, but '{0}' is {2}: remove the attribute");

    public static readonly Rule KvPageTooLarge = new("KDSL0701", "KV cache page does not fit the append kernel",
        "'{0}' appends into pages of {1} tokens × {2} channels: a block holds a page's 16-bit originals in shared memory, {3} bytes with its statistics, but a kernel may declare at most {4} statically; use PageSize ≤ {5} for HeadDim {2}");

    public static readonly Rule KvStatisticsSharedMemory = new("KDSL0703", "K/V statistics block does not fit shared memory",
        "'{0}' combines its {1} threads' K sums and V maxima in shared memory, in a fixed order: {2} bytes for HeadDim {3}, but a kernel may declare at most {4} statically; use Threads ≤ {5}");
    public static readonly Rule DecodeStagesTooLarge = new("KDSL0702", "Decode page stages do not fit shared memory",
        "'{0}' keeps {1} page stage(s) of K and V for each of its {2} warps: {3} bytes of shared memory a block, but {4} allows at most {5}; {6}");

    public static readonly Rule[] All =
    [
        NotPartial, TwoFamilies, InvalidParameter, MissingLayout, Duplicate, UnknownOperand, MissingAtom, UnsupportedType, InvalidLike, EmptyAttentionFamily, FamilyKernelNameTaken, InvalidAlsoCausal, ModifierParameterName,
        SwizzleBreaksChunks, SwizzleSpan, BankConflicts, LayoutElement, TmaSwizzle, SharedMemoryLimit, TileNotDivisible,
        AtomTargetMismatch, AtomNotForFamily, FragmentMismatch,
        ModifierSignature, ModifierLoop, ModifierStatement, ModifierCall, ModifierAllocation, ModifierType,
        ModifierExternalState, DuplicateModifier, ModifierNotInSource, ModifierExpression, ModifierNondecreasing, ModifierPositive,
        KvPageTooLarge, DecodeStagesTooLarge, KvStatisticsSharedMemory,
    ];
}

using System.Collections.Immutable;
using System.Globalization;

namespace KernelDsl.Launching;

/// <summary>One runtime parameter of a variant's modifiers: a scalar (int, float) or a read-only device array of one.</summary>
/// <param name="Name">The C# parameter name, which is also the launcher's and the key callers bind it by.</param>
/// <param name="ElementType">typeof(int) or typeof(float).</param>
/// <param name="IsArray">A <c>DeviceBuffer&lt;T&gt;</c> on the device side; a scalar otherwise.</param>
/// <param name="Covers">
/// For an array: the launch extents it must hold one element per, as the modifiers index it by b, h, q or k
/// (<see cref="AttentionArgumentNames.Batch"/>, <see cref="AttentionArgumentNames.HeadsQ"/>, <see cref="AttentionArgumentNames.SeqQ"/>,
/// <see cref="AttentionArgumentNames.SeqK"/>); empty when the bodies index it otherwise.
/// </param>
/// <param name="Positive">A scalar its modifier declares [Positive]: bound and launched only when greater than zero and finite.</param>
public sealed record AttentionModifierParameter(string Name, Type ElementType, bool IsArray, ImmutableArray<string> Covers, bool Positive = false)
{
    /// <summary>Whether <paramref name="value"/> keeps the parameter's rule: with <see cref="Positive"/>, an int above 0 or a finite float above 0.</summary>
    public bool Allows(object value) => !Positive || value is int and > 0 || value is float f && LaunchGuard.IsPositive(f);

    /// <summary>The rule as error messages state it ("must be positive and finite (its modifier declares it [Positive])"); empty without one.</summary>
    public string Rule => Positive ? $"must be positive{(ElementType == typeof(float) ? " and finite" : "")} (its modifier declares it [Positive])" : "";
}

/// <summary>
/// What the generator says of one declared attention kernel, for hosts that choose among kernels at run time: what it
/// computes, its modes, its tile, its modifiers and their parameters, and a launch that reads its arguments by name.
/// Every declaration in any assembly registers one in <see cref="AttentionCatalog"/> when its assembly loads.
/// </summary>
public sealed record AttentionKernelInfo
{
    /// <summary>The declaring type's full name.</summary>
    public required string Name { get; init; }
    public required KernelModuleDefinition Module { get; init; }
    /// <summary>The element of q, k, v and o: F16 or BF16.</summary>
    public required Element Input { get; init; }
    public required int HeadDim { get; init; }
    public required int BlockM { get; init; }
    public required int BlockN { get; init; }
    /// <summary>Query rows per Q scale and keys per K scale: the quantize kernels must use these.</summary>
    public required int QScaleRows { get; init; }
    /// <summary>
    /// The kernel takes Q as it comes (the <see cref="Input"/> type, with strides) and quantizes it itself, one scale per
    /// row: no Q quantize kernel runs, and <see cref="QScaleRows"/> is 1.
    /// </summary>
    public bool QuantizesQ { get; init; }
    public required int KScaleKeys { get; init; }
    public required bool Causal { get; init; }
    /// <summary>
    /// What P is rounded to for P·V: U8 (int8 V), E4M3 (fp8 V with per-channel scales), or the input's 16-bit float type
    /// on the unquantized V (the accuracy mode).
    /// </summary>
    public required Element PElement { get; init; }
    /// <summary>P·V in 16-bit floats on the unquantized V (the accuracy mode).</summary>
    public bool FloatPv => PElement is Element.F16 or Element.BF16;
    /// <summary>How V reaches P·V: "TransPrmt", "Movmatrix", "Pretransposed" or "InKernelTranspose".</summary>
    public required string VStrategy { get; init; }
    /// <summary>V arrives transposed [B][Hkv][D][S_pad] in π order from its quantize kernel.</summary>
    public required bool PretransposedV { get; init; }
    public required bool Lse { get; init; }
    /// <summary>The tile configuration in words, as the autotuner reports it.</summary>
    public required string Tile { get; init; }
    /// <summary><see cref="Tile"/> as a short ASCII name for command lines, e.g. "128x64-w8-s2" or "wgmma-s3" (the generator's AttentionPlan.TileName).</summary>
    public required string TileName { get; init; }
    /// <summary>The score modifier's C# method ("Ns.Type.Method"), or null.</summary>
    public string? ScoreModifier { get; init; }
    /// <summary>The mask's C# method, or null.</summary>
    public string? MaskModifier { get; init; }
    /// <summary>
    /// The longest sequence (queries and keys) the kernel takes: 2^22 tokens where its score modifier reads positions as
    /// exact floats (the generator's per-score forms), else no limit of its own.
    /// </summary>
    public int MaxSequence { get; init; } = int.MaxValue;
    /// <summary>The modifiers' runtime parameters, in the launcher's order.</summary>
    public ImmutableArray<AttentionModifierParameter> Parameters { get; init; } = [];
    /// <summary>The generated <c>Launch</c>, reading each argument from the bag by its parameter name.</summary>
    public required Action<AttentionKernelArguments> Launch { get; init; }

    /// <summary>Whether a device of this compute capability runs it.</summary>
    public bool RunsOn(int computeCapability) => Module.RunsOn(computeCapability);

    public override string ToString() => Name;
}

/// <summary>
/// The arguments of one attention launch by name: the launcher's fixed ones (<c>q</c>, <c>kScale</c>, <c>seqQ</c>, …)
/// and the modifiers' runtime parameters. A generated <c>LaunchWith</c> reads each by its parameter name and type, so a
/// missing or mistyped argument is an error naming it, never a wrong launch.
/// </summary>
public sealed class AttentionKernelArguments
{
    private readonly Dictionary<string, object?> _values = new(StringComparer.Ordinal);

    public required CudaStream Stream { get; init; }

    public AttentionKernelArguments Set(string name, object? value)
    {
        _values[name] = value;
        return this;
    }

    public bool Has(string name) => _values.ContainsKey(name);

    /// <summary>The argument <paramref name="name"/> as <typeparamref name="T"/>; null is allowed only where T is nullable.</summary>
    public T Get<T>(string name)
    {
        if (!_values.TryGetValue(name, out var value))
        {
            throw new ArgumentException($"The kernel needs an argument '{name}' of type {Describe(typeof(T))}, and none was given.", name);
        }
        return value switch
        {
            T typed => typed,
            null when default(T) is null => default!,
            _ => throw new ArgumentException($"Argument '{name}' must be {Describe(typeof(T))}; it is {(value is null ? "null" : Describe(value.GetType()))}.", name),
        };
    }

    private static string Describe(Type type) => type.IsGenericType
        ? $"{type.Name[..type.Name.IndexOf('`')]}<{string.Join(", ", type.GetGenericArguments().Select(Describe))}>"
        : type.Name;
}

/// <summary>
/// Every attention kernel declared in any loaded assembly: each assembly's generated module initializer adds its own,
/// so the host API and tools select from declarations, never from a list kept by hand.
/// </summary>
public static class AttentionCatalog
{
    private static readonly object Gate = new();
    private static readonly List<AttentionKernelInfo> Kernels = [];
    private static int _version;

    /// <summary>Changes whenever a kernel is registered, so views of the catalog can be cached until then.</summary>
    public static int Version => Volatile.Read(ref _version);

    /// <summary>Called by generated code, in declaration order; a second registration of the same name keeps the first.</summary>
    public static void Register(AttentionKernelInfo kernel)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        lock (Gate)
        {
            if (!Kernels.Any(k => k.Name == kernel.Name))
            {
                Kernels.Add(kernel);
                Volatile.Write(ref _version, _version + 1);
            }
        }
    }

    /// <summary>The registered kernels: each assembly's in its declaration order, assemblies in the order they loaded.</summary>
    public static IReadOnlyList<AttentionKernelInfo> All
    {
        get
        {
            lock (Gate)
            {
                return Kernels.ToArray();
            }
        }
    }

    public static AttentionKernelInfo? Find(string name) => All.FirstOrDefault(k => k.Name == name);
}

/// <summary>
/// The names of the attention launcher's fixed parameters, the keys of <see cref="AttentionKernelArguments"/>; the
/// generator's signature model spells the same (a test holds the two equal).
/// </summary>
public static class AttentionArgumentNames
{
    public const string Q = "q", K = "k", V = "v", QScale = "qScale", KScale = "kScale", VScale = "vScale",
        KMean = "kMean", O = "o", Lse = "lse", Batch = "batch", HeadsQ = "headsQ", HeadsKv = "headsKv", SeqQ = "seqQ", SeqK = "seqK",
        VStrideB = "vStrideB", VStrideH = "vStrideH", VLd = "vLd", OStrideB = "oStrideB", OStrideH = "oStrideH", OStrideS = "oStrideS",
        QStrideB = "qStrideB", QStrideH = "qStrideH", QStrideS = "qStrideS", QScaleMultiplier = "qScaleMultiplier", NonFiniteQ = "nonFiniteQ";
}

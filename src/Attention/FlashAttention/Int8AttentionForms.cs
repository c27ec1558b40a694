using KernelDsl.Launching;
using System.Globalization;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>What <see cref="Int8Attention.Fastest"/> chose: the kernel, and the tuner's decision (every form's time).</summary>
/// <param name="Key">The tuning key: the forms, the GPU, the input type, head dim, masking and the problem's sizes.</param>
/// <param name="Kernel">The fastest form.</param>
/// <param name="Result">The tuner's decision: every form's time, the date, and whether it was timed now or read from disk.</param>
public sealed record AttentionFormTuning(string Key, AttentionKernelInfo Kernel, TuningResult Result);

// Choosing among the forms of one variant (a family's kernels: 128-row or 64-row wgmma blocks, Q quantized by a pass or
// in the kernel, mma.sync), which differ in speed by shape and card (docs/PERF.md, session 12) but not in what they compute.
public sealed partial class Int8Attention
{
    /// <summary>The decision behind the latest <see cref="Fastest"/> call, or null if there was none.</summary>
    public AttentionFormTuning? LastFormTuning { get; private set; }

    /// <summary>
    /// The kernels declared in the family type <paramref name="family"/> (an <c>[AttentionFamily]</c>, or any type that
    /// nests attention declarations with the same modifiers) whose P·V is <paramref name="pv"/> (by default the 8-bit
    /// u8 mode; F16/BF16 for the 16-bit accuracy mode, E4M3 for fp8), in catalog order: e.g.
    /// <c>FormsOf(typeof(SlidingWindow))</c>. Forms of every input type are listed; <see cref="Fastest"/> takes those of its tensors.
    /// </summary>
    /// <exception cref="ArgumentException">No attention kernel is nested in <paramref name="family"/>, or none has <paramref name="pv"/> P·V.</exception>
    public static IReadOnlyList<AttentionKernelInfo> FormsOf(Type family, Element pv = Element.U8)
    {
        ArgumentNullException.ThrowIfNull(family);
        var name = family.FullName ?? throw new ArgumentException($"{family} is a generic parameter, not a type that declares kernels.", nameof(family));
        return FormsNamed(name.Replace('+', '.'), pv, nameof(family));
    }

    /// <summary>The kernels nested directly in the type named <paramref name="family"/> (dots for nesting) with <paramref name="pv"/> P·V.</summary>
    internal static IReadOnlyList<AttentionKernelInfo> FormsNamed(string family, Element pv, string argument = "family")
    {
        var nested = NestedIn(family);
        if (nested.Length == 0)
        {
            throw new ArgumentException($"No declared attention kernel is nested in {family}.", argument);
        }
        var forms = nested.Where(k => k.PElement == pv).ToArray();
        if (forms.Length == 0)
        {
            throw new ArgumentException($"No kernel of {family} has {pv} P·V; its kernels have {string.Join(", ", nested.Select(k => k.PElement).Distinct())}.", nameof(pv));
        }
        return forms;
    }

    /// <summary>The declared kernels whose declaring type is nested directly in the type named <paramref name="family"/>.</summary>
    internal static AttentionKernelInfo[] NestedIn(string family) =>
        Kernels.Where(k => k.Name.StartsWith(family + ".", StringComparison.Ordinal) && k.Name.IndexOf('.', family.Length + 1) < 0).ToArray();

    /// <summary>
    /// The fastest of <paramref name="forms"/> for these tensors and arguments on this stream's device, to pass to
    /// <c>Forward</c>. The forms must compute the same attention at the same precision: the same modifiers, masking and
    /// P·V mode (a family's kernels, <see cref="FormsOf"/>). Those that do not take these tensors, that write no LSE when
    /// <paramref name="lse"/> is given, or that the device does not run are left out. Every form left is checked as
    /// <c>Forward</c> checks it before anything is timed. On the key's first use each is timed end to end, its quantize
    /// kernels with it (CUDA events, 2 warm-ups, median of 5), and <see cref="Tuner"/> keeps the decision, in this process
    /// and beside the module cache. The key holds the forms, the device, the sizes and the scalar modifier arguments (a
    /// window's size changes which form wins); array arguments enter it by length only. The timed calls write
    /// <paramref name="o"/> and <paramref name="lse"/>, so run <c>Forward</c> with the result for the output; NaN and Inf are
    /// not looked for while timing.
    /// </summary>
    /// <exception cref="ArgumentException">The tensors or arguments are wrong for the forms, the forms differ in what they compute, or none is left.</exception>
    public AttentionKernelInfo Fastest(CudaStream stream, IReadOnlyList<AttentionKernelInfo> forms, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v,
        TensorView<Half> o, ModifierArguments arguments, AttentionOptions? options = null, DeviceBuffer<float>? lse = null) =>
        Fastest(stream, forms, q, k, v, o, arguments, options, lse, (kernel, timing) => Forward(stream, kernel, q, k, v, o, arguments, timing, lse));

    /// <summary>The same for bf16 tensors, given as their raw 16-bit patterns.</summary>
    /// <exception cref="ArgumentException">The tensors or arguments are wrong for the forms, the forms differ in what they compute, or none is left.</exception>
    public AttentionKernelInfo FastestBf16(CudaStream stream, IReadOnlyList<AttentionKernelInfo> forms, TensorView<ushort> q, TensorView<ushort> k, TensorView<ushort> v,
        TensorView<ushort> o, ModifierArguments arguments, AttentionOptions? options = null, DeviceBuffer<float>? lse = null) =>
        Fastest(stream, forms, q, k, v, o, arguments, options, lse, (kernel, timing) => ForwardBf16(stream, kernel, q, k, v, o, arguments, timing, lse));

    private AttentionKernelInfo Fastest<T>(CudaStream stream, IReadOnlyList<AttentionKernelInfo> forms, TensorView<T> q, TensorView<T> k, TensorView<T> v,
        TensorView<T> o, ModifierArguments arguments, AttentionOptions? options, DeviceBuffer<float>? lse, Action<AttentionKernelInfo, AttentionOptions> run)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(arguments);
        var shape = AttentionArguments.Check(q, k, v, o, lse);
        var input = InputOf<T>();
        var candidates = FormCandidates(forms, input, shape.HeadDim, stream.Device.ComputeCapability, writesLse: lse is not null);
        var timing = (options ?? new AttentionOptions()) with { NonFinite = NonFiniteInputs.Ignore };
        foreach (var kernel in candidates)
        {
            var bound = Bind(kernel, arguments, options, input);
            bound.Arguments.CheckArrays(kernel, shape, nameof(arguments));
            _ = Choose<T>(stream, shape, timing, bound);
        }
        var key = FormsKey(candidates, arguments, TuningKey(stream.Device, input, shape, candidates[0].Causal));
        var byName = candidates.ToDictionary(c => c.Name, StringComparer.Ordinal);
        // Under the instance's lock, as Autotune's timing is, so another thread's calls do not run between the timed ones.
        return Serialized(stream, () =>
        {
            var result = Tuner.Choose(key, candidates.Select(c => c.Name).ToArray(), name =>
                Autotuner.MedianOnStream(stream, () => run(byName[name], timing)));
            var winner = byName[result.Winner];
            LastFormTuning = new AttentionFormTuning(key, winner, result);
            return winner;
        });
    }

    /// <summary>
    /// The forms that compete. All must compute the same attention at the same precision: the same modifiers, masking
    /// and P·V mode (so a faster, less accurate mode is never picked unasked). Of those, the ones that take these tensors
    /// (input type and head dim) and that this device runs.
    /// </summary>
    internal static IReadOnlyList<AttentionKernelInfo> FormCandidates(IReadOnlyList<AttentionKernelInfo> forms, Element input, int headDim, int computeCapability,
        bool writesLse = false)
    {
        ArgumentNullException.ThrowIfNull(forms);
        if (forms.Count == 0 || forms.Any(f => f is null))
        {
            throw new ArgumentException("forms must hold at least one kernel, and no null.", nameof(forms));
        }
        var first = forms[0];
        foreach (var form in forms.Skip(1))
        {
            var differs = form.ScoreModifier != first.ScoreModifier || form.MaskModifier != first.MaskModifier ? "modifiers"
                : form.Causal != first.Causal ? "causal masking"
                : form.PElement != first.PElement ? "P·V mode"
                : null;
            if (differs is not null)
            {
                throw new ArgumentException($"forms must compute the same attention at the same precision: {form.Name} and {first.Name} differ in their {differs}.", nameof(forms));
            }
        }
        if (forms.GroupBy(f => f.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new ArgumentException($"forms lists {twice.Key} {twice.Count()} times.", nameof(forms));
        }
        var matching = forms.Where(f => f.Input == input && f.HeadDim == headDim && (f.Lse || !writesLse)).ToArray();
        if (matching.Length == 0)
        {
            throw new ArgumentException($"None of the forms takes {input} tensors with head dim {headDim}{(writesLse ? " and writes an LSE" : "")}: they take " +
                string.Join(", ", forms.Select(f => $"{f.Input} D = {f.HeadDim}{(f.Lse ? "" : " without LSE")}").Distinct()) + ".", nameof(forms));
        }
        var running = matching.Where(f => f.RunsOn(computeCapability)).ToArray();
        if (running.Length == 0)
        {
            throw new ArgumentException($"None of the forms for these tensors runs on sm_{computeCapability}: " +
                string.Join("; ", matching.Select(f => $"{f.Name} is built for {string.Join(", ", f.Module.Targets)}")) + ".", nameof(forms));
        }
        return running;
    }

    /// <summary>
    /// The tuning key of a choice among forms: their names (sorted), the modifiers' arguments by name (scalars by value,
    /// arrays by length), then the shape's key.
    /// </summary>
    internal static string FormsKey(IReadOnlyList<AttentionKernelInfo> candidates, ModifierArguments arguments, string shapeKey)
    {
        var names = candidates.Select(c => c.Name).Order(StringComparer.Ordinal);
        var values = arguments.Values.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => a.Value switch
        {
            DeviceBuffer<int> ints => $"{a.Key}=int[{ints.Length}]",
            DeviceBuffer<float> floats => $"{a.Key}=float[{floats.Length}]",
            float f => $"{a.Key}={f.ToString("R", CultureInfo.InvariantCulture)}",
            var x => string.Create(CultureInfo.InvariantCulture, $"{a.Key}={x}"),
        });
        return $"forms|{string.Join(",", names)}|{string.Join(",", values)}|{shapeKey}";
    }
}

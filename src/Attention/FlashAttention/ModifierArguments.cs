using KernelDsl.Launching;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>
/// The runtime arguments of a kernel's modifiers, by the C# parameter names of the modifier methods: scalars (a window,
/// a cap) and device arrays (ALiBi slopes, document ids). <see cref="Int8Attention"/> checks them against the kernel's
/// parameters before anything is queued.
/// </summary>
public sealed class ModifierArguments
{
    private readonly Dictionary<string, object> _values = new(StringComparer.Ordinal);

    /// <summary>No arguments, for a kernel whose modifiers take none (a fresh bag each time: bags are mutable).</summary>
    public static ModifierArguments None => new();

    public ModifierArguments Set(string name, int value) => Add(name, value);

    public ModifierArguments Set(string name, float value) => Add(name, value);

    public ModifierArguments Set(string name, DeviceBuffer<int> values) => Add(name, values);

    public ModifierArguments Set(string name, DeviceBuffer<float> values) => Add(name, values);

    /// <summary>The values by name, for the host API's CPU references and tools.</summary>
    public IReadOnlyDictionary<string, object> Values => _values;

    private ModifierArguments Add(string name, object value)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(value, name);
        _values[name] = value;
        return this;
    }

    /// <summary>
    /// The checks <see cref="Int8Attention"/>'s Forward makes of these arguments before it queues anything, without a GPU:
    /// exactly <paramref name="kernel"/>'s modifier parameters, each of its type and within its rule (a [Positive] cap
    /// positive and finite).
    /// </summary>
    /// <exception cref="ArgumentException">An argument is missing, unknown, of another type or outside its rule; the message names it.</exception>
    public void Check(AttentionKernelInfo kernel)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        CheckFor(kernel, "arguments");
    }

    /// <summary>Throws, naming the parameter, unless the values are exactly the kernel's modifier parameters with their types.</summary>
    internal void CheckFor(AttentionKernelInfo kernel, string argumentName)
    {
        foreach (var parameter in kernel.Parameters)
        {
            var expected = parameter.IsArray ? typeof(DeviceBuffer<>).MakeGenericType(parameter.ElementType) : parameter.ElementType;
            var what = parameter.IsArray ? $"a DeviceBuffer<{parameter.ElementType.Name}>" : $"a {parameter.ElementType.Name}";
            if (!_values.TryGetValue(parameter.Name, out var value))
            {
                throw new ArgumentException($"Kernel {kernel.Name} needs the modifier argument '{parameter.Name}' ({what}); none was given.", argumentName);
            }
            if (value.GetType() != expected)
            {
                throw new ArgumentException($"Modifier argument '{parameter.Name}' of {kernel.Name} must be {what}; it is a {value.GetType().Name}.", argumentName);
            }
            if (!parameter.Allows(value))
            {
                throw new ArgumentException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"Modifier argument '{parameter.Name}' of {kernel.Name} {parameter.Rule}; it is {value}."), argumentName);
            }
        }
        foreach (var name in _values.Keys)
        {
            if (!kernel.Parameters.Any(p => p.Name == name))
            {
                var known = kernel.Parameters.Length == 0 ? "none" : string.Join(", ", kernel.Parameters.Select(p => p.Name));
                throw new ArgumentException($"Kernel {kernel.Name} has no modifier parameter '{name}'; its parameters: {known}.", argumentName);
            }
        }
    }

    /// <summary>A copy, so that the values checked are the values launched even if the caller's bag changes.</summary>
    internal ModifierArguments Copy()
    {
        var copy = new ModifierArguments();
        foreach (var (name, value) in _values)
        {
            copy._values[name] = value;
        }
        return copy;
    }

    /// <summary>
    /// Each device array is live and holds what the kernel's modifiers index it by (one element per batch entry, query head,
    /// query or key token, as their bodies show), checked before anything is queued.
    /// </summary>
    internal void CheckArrays(AttentionKernelInfo kernel, AttentionDims shape, string argumentName)
    {
        foreach (var parameter in kernel.Parameters.Where(p => p.IsArray))
        {
            var (buffer, length) = _values[parameter.Name] switch
            {
                DeviceBuffer<int> ints => ((object)ints, ints.IsDisposed ? -1 : ints.Length),
                DeviceBuffer<float> floats => (floats, floats.IsDisposed ? -1 : floats.Length),
                _ => throw new InvalidOperationException("CheckFor has checked the types."),
            };
            if (length < 0)
            {
                throw new ObjectDisposedException(parameter.Name, $"Modifier argument '{parameter.Name}' of {kernel.Name} is a disposed device buffer.");
            }
            foreach (var extent in parameter.Covers)
            {
                var needed = extent switch
                {
                    AttentionArgumentNames.Batch => shape.Batch,
                    AttentionArgumentNames.HeadsQ => shape.HeadsQ,
                    AttentionArgumentNames.SeqQ => shape.SeqQ,
                    AttentionArgumentNames.SeqK => shape.SeqK,
                    _ => throw new InvalidOperationException($"Unknown extent '{extent}'."),
                };
                if (length < needed)
                {
                    throw new ArgumentException($"Modifier argument '{parameter.Name}' of {kernel.Name} holds {length} elements; its modifier indexes it per {extent}, so it needs at least {needed}.", argumentName);
                }
            }
        }
    }

    internal void AddTo(AttentionKernelArguments arguments)
    {
        foreach (var (name, value) in _values)
        {
            arguments.Set(name, value);
        }
    }
}

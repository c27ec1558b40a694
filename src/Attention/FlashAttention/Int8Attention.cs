namespace KernelDsl.Attention.FlashAttention;

/// <summary>Choices for <see cref="Int8Attention.Forward"/>.</summary>
public sealed record AttentionOptions
{
    /// <summary>Causal masking, bottom-right aligned when the query and key lengths differ (FlashAttention 2).</summary>
    public bool Causal { get; init; }
    public PvPrecision Pv { get; init; } = PvPrecision.U8;
    /// <summary>How V reaches the P·V MMA (int8 modes).</summary>
    public VStrategy V { get; init; } = VStrategy.TransPrmt;
    /// <summary>The softmax scale; 1/√D when null.</summary>
    public float? SoftmaxScale { get; init; }
    /// <summary>
    /// With <see cref="PvPrecision.U8"/>: ignore <see cref="V"/> and use the fastest declared strategy for the GPU and
    /// shape, timed on first use and remembered on disk (<see cref="Int8Attention.Tuner"/>, <see cref="Int8Attention.LastTuning"/>).
    /// Has no effect on the float P·V mode.
    /// </summary>
    public bool Autotune { get; init; }
}

/// <summary>
/// INT8 attention forward on the GPU: quantizes Q, K (smoothed) and V on the stream, picks the declared variant for the
/// shape, mode and GPU, and launches it. Scratch buffers are kept and reused between calls; dispose to free them.
/// Tensors are [B, H, S, D] views whose last stride is 1 (BHSD and BSHD are just strides).
/// </summary>
public sealed partial class Int8Attention(CudaDevice device) : IDisposable
{
    private readonly Dictionary<string, IDisposable> _scratch = [];

    /// <summary>The head dims some declared variant supports.</summary>
    public static IReadOnlyList<int> HeadDims { get; } = AttentionVariant.All.Select(v => v.HeadDim).Distinct().Order().ToArray();

    /// <summary>O = softmax(σ·Q·Kᵀ [+ causal mask])·V for f16 tensors; <paramref name="lse"/> (natural log, [B][Hq][Sq]) is optional.</summary>
    public void Forward(CudaStream stream, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v, TensorView<Half> o,
        AttentionOptions options, DeviceBuffer<float>? lse = null) => Run(stream, q, k, v, o, options, lse);

    /// <summary>The same for bf16 tensors, given as their raw 16-bit patterns (.NET has no bf16 type).</summary>
    public void ForwardBf16(CudaStream stream, TensorView<ushort> q, TensorView<ushort> k, TensorView<ushort> v, TensorView<ushort> o,
        AttentionOptions options, DeviceBuffer<float>? lse = null) => Run(stream, q, k, v, o, options, lse);

    private void Run<T>(CudaStream stream, TensorView<T> q, TensorView<T> k, TensorView<T> v, TensorView<T> o,
        AttentionOptions options, DeviceBuffer<float>? lse) where T : unmanaged
    {
        // One set of scratch buffers: calls are serialized, and a call on another stream first waits for the last
        // stream's work, which may still be reading the scratch this call is about to overwrite.
        lock (_gate)
        {
            if (_lastStream is { IsDisposed: false } previous && !ReferenceEquals(previous, stream))
            {
                previous.Synchronize();
            }
            _lastStream = stream;
            var (variant, launch) = Prepare(stream, q, k, v, o, options, lse);
            variant.Launch(launch);
        }
    }

    private readonly object _gate = new();
    private CudaStream? _lastStream;

    /// <summary>Checks, selects the variant and quantizes on the stream; the returned launch runs the kernel alone (benchmarks time it).</summary>
    internal (AttentionVariant Variant, AttentionLaunch<T> Launch) Prepare<T>(CudaStream stream, TensorView<T> q, TensorView<T> k, TensorView<T> v, TensorView<T> o,
        AttentionOptions options, DeviceBuffer<float>? lse) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(options);
        var shape = AttentionArguments.Check(q, k, v, o, lse);
        var input = typeof(T) == typeof(Half) ? Element.F16 : Element.BF16;
        if (options.Autotune && options.Pv == PvPrecision.U8)
        {
            options = Autotuned(stream, q, k, v, o, options, lse, input, shape);
        }
        var variant = Select(input, shape.HeadDim, options);
        var scale = options.SoftmaxScale ?? 1f / MathF.Sqrt(shape.HeadDim);
        if (!(scale > 0f) || float.IsInfinity(scale))
        {
            throw new ArgumentOutOfRangeException(nameof(options), scale, "options.SoftmaxScale must be a finite positive number.");
        }
        var (b, hq, hkv, sq, sk, d) = (shape.Batch, shape.HeadsQ, shape.HeadsKv, shape.SeqQ, shape.SeqK, shape.HeadDim);
        var quantizers = Quantizers<T>.For(d);

        var q8 = Scratch<sbyte>("q8", (long)b * hq * sq * d);
        var qScale = Scratch<float>("qScale", quantizers.QScaleCount(b, hq, sq));
        var k8 = Scratch<sbyte>("k8", (long)b * hkv * sk * d);
        var kScale = Scratch<float>("kScale", quantizers.KScaleCount(b, hkv, sk));
        var kMean = Scratch<float>("kMean", (long)b * hkv * d);
        // Softmax scale · log2 e goes into Q's scale, so the kernel's softmax runs on exp2.
        quantizers.Q(stream, q.Buffer, q.Strides[0], q.Strides[1], q.Strides[2], b, hq, sq, q8, qScale, scale * 1.44269504f);
        quantizers.K(stream, k.Buffer, k.Strides[0], k.Strides[1], k.Strides[2], b, hkv, sk, k8, kScale, kMean, 1f);

        DeviceBuffer<sbyte>? v8 = null;
        DeviceBuffer<float>? vScale = null;
        long vStrideB, vStrideH, vLd;
        if (variant.Pv == PvPrecision.Float16)
        {
            (vStrideB, vStrideH, vLd) = (v.Strides[0], v.Strides[1], v.Strides[2]);
        }
        else if (variant.V == VStrategy.Pretransposed)
        {
            // Recipe C: [B][Hkv][D][S_pad], tokens π-ordered within 16-token groups.
            var padded = quantizers.VPiPaddedTokens!(sk);
            v8 = Scratch<sbyte>("v8", (long)b * hkv * d * padded);
            vScale = Scratch<float>("vScale", (long)b * hkv * d);
            quantizers.VPi!(stream, v.Buffer, v.Strides[0], v.Strides[1], v.Strides[2], b, hkv, sk, v8, vScale, 1f);
            (vStrideB, vStrideH, vLd) = ((long)hkv * d * padded, (long)d * padded, padded);
        }
        else
        {
            v8 = Scratch<sbyte>("v8", (long)b * hkv * sk * d);
            vScale = Scratch<float>("vScale", (long)b * hkv * d);
            quantizers.V(stream, v.Buffer, v.Strides[0], v.Strides[1], v.Strides[2], b, hkv, sk, v8, vScale, 1f);
            (vStrideB, vStrideH, vLd) = ((long)hkv * sk * d, (long)sk * d, d);
        }

        return (variant, new AttentionLaunch<T>(stream, q8, k8, v8, variant.Pv == PvPrecision.Float16 ? v.Buffer : null, qScale, kScale, vScale, kMean,
            o.Buffer, lse, b, hq, hkv, sq, sk, vStrideB, vStrideH, vLd, o.Strides[0], o.Strides[1], o.Strides[2]));
    }

    /// <summary>
    /// Combines partial results over disjoint key ranges (split-KV, context parallelism) by their LSE:
    /// <paramref name="partialO"/> is [partials][rows][headDim] f16, <paramref name="partialLse"/> [partials][rows], rows = B·H·S.
    /// </summary>
    public static void Merge(CudaStream stream, int headDim, DeviceBuffer<Half> partialO, DeviceBuffer<float> partialLse, int partials, long rows,
        DeviceBuffer<Half> o, DeviceBuffer<float> lse)
    {
        switch (headDim)
        {
            case 128: LseMergeD128.Launch(stream, partialO, partialLse, partials, rows, o, lse); break;
            case 64: LseMergeD64.Launch(stream, partialO, partialLse, partials, rows, o, lse); break;
            default: throw new ArgumentException($"No merge kernel is declared for head dim {headDim}; declared: 64, 128.", nameof(headDim));
        }
    }

    /// <summary>The declared variant for a head dim and options, or a clear error listing what is declared.</summary>
    internal static AttentionVariant Select(Element input, int headDim, AttentionOptions options)
    {
        var match = AttentionVariant.All.FirstOrDefault(v => v.Input == input && v.HeadDim == headDim && v.Causal == options.Causal && v.Pv == options.Pv
            && (v.Pv == PvPrecision.Float16 || v.V == options.V));
        if (match is null)
        {
            var declared = string.Join(", ", AttentionVariant.All.Select(v => $"{v.Input} D={v.HeadDim}{(v.Causal ? " causal" : "")} {v.Pv}{(v.Pv == PvPrecision.U8 ? " " + v.V : "")}"));
            throw new ArgumentException($"No attention variant is declared for {input} head dim {headDim} with {options}. Declared: {declared}.", nameof(options));
        }
        return match;
    }

    private DeviceBuffer<T> Scratch<T>(string name, long length) where T : unmanaged
    {
        if (_scratch.TryGetValue(name, out var existing) && existing is DeviceBuffer<T> buffer && buffer.Length >= length)
        {
            return buffer;
        }
        existing?.Dispose();
        var fresh = device.Allocate<T>(Math.Max(length, 1));
        _scratch[name] = fresh;
        return fresh;
    }

    public void Dispose()
    {
        foreach (var buffer in _scratch.Values)
        {
            buffer.Dispose();
        }
        _scratch.Clear();
    }
}

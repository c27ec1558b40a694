using KernelDsl.Launching;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>Choices for <see cref="Int8Attention"/>'s Forward.</summary>
public sealed record AttentionOptions
{
    /// <summary>Causal masking, bottom-right aligned when the query and key lengths differ (FlashAttention 2).</summary>
    public bool Causal { get; init; }
    public PvPrecision Pv { get; init; } = PvPrecision.U8;
    /// <summary>
    /// How V reaches the P·V MMA (int8 modes). Null takes the default kernel's strategy: that of the first declared kernel
    /// of the mode built for the device's own architecture (at D = 64 and 128 with f16 on an H100, the wgmma form, which
    /// reads V pretransposed), else of the first declared one (TransPrmt). A strategy given keeps declaration order: its
    /// first declared tile the device runs.
    /// </summary>
    public VStrategy? V { get; init; }
    /// <summary>
    /// The tile configuration (a declared variant's Tile, e.g. "128×64 / 8 warps / 3 stages / 1 block/SM"); null picks the
    /// default: with no <see cref="V"/>, the first one declared for the mode that is built for the device's own
    /// architecture (sm_90a on an H100), else the first one declared. <see cref="Int8Attention.TilesFor"/> lists them, the
    /// default first.
    /// </summary>
    public string? Tile { get; init; }
    /// <summary>The softmax scale; 1/√D when null.</summary>
    public float? SoftmaxScale { get; init; }
    /// <summary>
    /// With <see cref="PvPrecision.U8"/>: ignore <see cref="V"/> and <see cref="Tile"/> and use the fastest declared
    /// strategy and tile for the GPU and shape, timed on first use and remembered on disk (<see cref="Int8Attention.Tuner"/>, <see cref="Int8Attention.LastTuning"/>).
    /// Has no effect on the float P·V mode.
    /// </summary>
    public bool Autotune { get; init; }
    /// <summary>
    /// What a NaN or ±Inf in q, k or v does. Int8 codes cannot hold them, so by default (<see cref="NonFiniteInputs.Throw"/>)
    /// the quantize kernels count them and the call throws <see cref="NonFiniteInputException"/>, at the price of one
    /// stream synchronization per call; <see cref="NonFiniteInputs.Ignore"/> keeps the call asynchronous.
    /// </summary>
    public NonFiniteInputs NonFinite { get; init; } = NonFiniteInputs.Throw;

    /// <summary>The members as error messages print them: an unset strategy, tile or scale says it is the default.</summary>
    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append(System.Globalization.CultureInfo.InvariantCulture,
            $"Causal = {Causal}, Pv = {Pv}, V = {V?.ToString() ?? "default"}, Tile = {Tile ?? "default"}, SoftmaxScale = {SoftmaxScale?.ToString("R", System.Globalization.CultureInfo.InvariantCulture) ?? "1/√D"}, " +
            $"Autotune = {Autotune}, NonFinite = {NonFinite}");
        return true;
    }
}

/// <summary>
/// What <see cref="Int8Attention"/> does with NaN and ±Inf in q, k and v (<see cref="AttentionOptions.NonFinite"/>), and
/// <see cref="KvCache.PagedKvCache"/>'s Append with its new k and v (which it checks before appending anything).
/// </summary>
public enum NonFiniteInputs
{
    /// <summary>
    /// Count them while quantizing (q, k and v each in its own counter; in the 16-bit P·V mode, where v is not quantized,
    /// a count-only kernel reads v), wait for the call's work on the stream, and throw <see cref="NonFiniteInputException"/>
    /// if any count is nonzero. O and the LSE are then written but not meaningful.
    /// </summary>
    Throw,
    /// <summary>
    /// Neither count nor wait: bad values get the quantizers' treatment. A NaN quantizes to 0; in k it also makes its
    /// channel's mean NaN, so that channel of k quantizes to 0 and the LSE of the query heads that read it is NaN.
    /// An Inf makes its scale Inf and every code under that scale 0: in q its tile of 128 query rows (the Q scale tile; the row alone for a kernel that quantizes Q itself),
    /// in k (through the channel mean) every key of its head, in v its channel. The query rows that read such a q tile
    /// or k head lose every score (0 · Inf): with int8 P·V their O and LSE are finite but meaningless (O is usually near
    /// 0; the LSE may be −∞ or NaN), with 16-bit P·V their O is NaN. An Inf in v makes its channel of O NaN. In the 16-bit P·V mode v is used as it is, so a NaN or Inf in v
    /// reaches its channel of O.
    /// </summary>
    Ignore,
}

/// <summary>
/// INT8 attention forward on the GPU: quantizes Q, K (smoothed) and V on the stream, picks the declared variant for the
/// shape, mode and GPU, and launches it. Scratch buffers are kept and reused between calls; dispose to free them.
/// Tensors are [B, H, S, D] views whose last stride is 1 (BHSD and BSHD are just strides).
/// By default a call waits for its work and throws <see cref="NonFiniteInputException"/> when q, k or v holds a NaN or
/// ±Inf (<see cref="AttentionOptions.NonFinite"/>); with <see cref="NonFiniteInputs.Ignore"/> it returns once queued.
/// </summary>
public sealed partial class Int8Attention(CudaDevice device) : IDisposable
{
    private readonly IReusedBuffers _scratch = new ScratchBuffers(device);

    /// <summary>
    /// With <paramref name="retainReplaced"/>, a scratch buffer a larger call replaces is kept until disposal instead of
    /// freed: a free synchronizes the whole device, and a context-parallel rank must not wait there on a transfer that a
    /// failed peer will never complete.
    /// </summary>
    internal Int8Attention(CudaDevice device, bool retainReplaced) : this(device)
    {
        if (retainReplaced)
        {
            _scratch.Dispose();  // empty: nothing was allocated yet
            _scratch = new RetainingBuffers(device);
        }
    }

    /// <summary>The head dims some declared variant supports.</summary>
    public static IReadOnlyList<int> HeadDims => AttentionVariant.All.Select(v => v.HeadDim).Distinct().Order().ToArray();

    /// <summary>O = softmax(σ·Q·Kᵀ [+ causal mask])·V for f16 tensors; <paramref name="lse"/> (natural log, [B][Hq][Sq]) is optional.</summary>
    /// <exception cref="NonFiniteInputException">q, k or v holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public void Forward(CudaStream stream, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v, TensorView<Half> o,
        AttentionOptions options, DeviceBuffer<float>? lse = null) => Run(stream, q, k, v, o, options, lse);

    /// <summary>The same for bf16 tensors, given as their raw 16-bit patterns (.NET has no bf16 type).</summary>
    /// <exception cref="NonFiniteInputException">q, k or v holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public void ForwardBf16(CudaStream stream, TensorView<ushort> q, TensorView<ushort> k, TensorView<ushort> v, TensorView<ushort> o,
        AttentionOptions options, DeviceBuffer<float>? lse = null) => Run(stream, q, k, v, o, options, lse);

    /// <summary>
    /// Attention through one declared kernel, with its modifiers (a user's [ScoreModifier]/[MaskModifier] methods, or the
    /// library's): <paramref name="kernel"/> is a generated <c>Info</c> (or an entry of <see cref="Kernels"/>), and
    /// <paramref name="arguments"/> binds the modifiers' runtime parameters by name. The kernel fixes the masking, P·V mode,
    /// V strategy and tile; <paramref name="options"/> gives the softmax scale and the NaN/Inf policy, and may not ask for
    /// causal masking, another P·V mode, V strategy or tile, or autotuning, since the kernel decides those.
    /// A query row the mask leaves with no key gets O = 0 and LSE = −∞.
    /// </summary>
    /// <exception cref="NonFiniteInputException">q, k or v holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public void Forward(CudaStream stream, AttentionKernelInfo kernel, TensorView<Half> q, TensorView<Half> k, TensorView<Half> v, TensorView<Half> o,
        ModifierArguments arguments, AttentionOptions? options = null, DeviceBuffer<float>? lse = null) =>
        Run(stream, q, k, v, o, options ?? new AttentionOptions(), lse, Bind(kernel, arguments, options, Element.F16));

    /// <summary>The same for bf16 tensors, given as their raw 16-bit patterns.</summary>
    /// <exception cref="NonFiniteInputException">q, k or v holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public void ForwardBf16(CudaStream stream, AttentionKernelInfo kernel, TensorView<ushort> q, TensorView<ushort> k, TensorView<ushort> v, TensorView<ushort> o,
        ModifierArguments arguments, AttentionOptions? options = null, DeviceBuffer<float>? lse = null) =>
        Run(stream, q, k, v, o, options ?? new AttentionOptions(), lse, Bind(kernel, arguments, options, Element.BF16));

    /// <summary>
    /// Quantizes f16 K and V once, for the kernel <paramref name="options"/> select, into a <see cref="QuantizedKeysValues"/>
    /// that later calls attend to with only Q quantized: a prompt's prefix, a cross-attention memory. Their options must
    /// select a kernel that reads V in the same layout (the same options do). NaN and Inf follow
    /// <paramref name="options"/>.NonFinite here: with Throw, this call waits and throws for k or v.
    /// </summary>
    /// <exception cref="NonFiniteInputException">k or v holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public QuantizedKeysValues QuantizeKeysValues(CudaStream stream, TensorView<Half> k, TensorView<Half> v, AttentionOptions options) =>
        QuantizeKeysValues(stream, k, v, options, null);

    /// <summary>The same for bf16 tensors, given as their raw 16-bit patterns.</summary>
    /// <exception cref="NonFiniteInputException">k or v holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public QuantizedKeysValues QuantizeKeysValuesBf16(CudaStream stream, TensorView<ushort> k, TensorView<ushort> v, AttentionOptions options) =>
        QuantizeKeysValues(stream, k, v, options, null);

    /// <summary>The same for one declared kernel (<see cref="Kernels"/>), to be used with the Forward overload that takes it.</summary>
    /// <exception cref="NonFiniteInputException">k or v holds a NaN or ±Inf and <paramref name="nonFinite"/> is Throw.</exception>
    public QuantizedKeysValues QuantizeKeysValues(CudaStream stream, AttentionKernelInfo kernel, TensorView<Half> k, TensorView<Half> v,
        NonFiniteInputs nonFinite = NonFiniteInputs.Throw) =>
        QuantizeKeysValues(stream, k, v, new AttentionOptions { NonFinite = nonFinite }, BindForKeysValues(kernel, Element.F16));

    /// <summary>The same for bf16 tensors, given as their raw 16-bit patterns.</summary>
    /// <exception cref="NonFiniteInputException">k or v holds a NaN or ±Inf and <paramref name="nonFinite"/> is Throw.</exception>
    public QuantizedKeysValues QuantizeKeysValuesBf16(CudaStream stream, AttentionKernelInfo kernel, TensorView<ushort> k, TensorView<ushort> v,
        NonFiniteInputs nonFinite = NonFiniteInputs.Throw) =>
        QuantizeKeysValues(stream, k, v, new AttentionOptions { NonFinite = nonFinite }, BindForKeysValues(kernel, Element.BF16));

    /// <summary>O = softmax(σ·Q·Kᵀ [+ causal mask])·V with K and V quantized beforehand (<see cref="QuantizeKeysValues(CudaStream, TensorView{Half}, TensorView{Half}, AttentionOptions)"/>).</summary>
    /// <exception cref="NonFiniteInputException">q holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public void Forward(CudaStream stream, TensorView<Half> q, QuantizedKeysValues kv, TensorView<Half> o, AttentionOptions options, DeviceBuffer<float>? lse = null) =>
        Run(stream, q, kv, o, options, lse);

    /// <summary>The same for bf16 tensors, given as their raw 16-bit patterns.</summary>
    /// <exception cref="NonFiniteInputException">q holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public void ForwardBf16(CudaStream stream, TensorView<ushort> q, QuantizedKeysValues kv, TensorView<ushort> o, AttentionOptions options, DeviceBuffer<float>? lse = null) =>
        Run(stream, q, kv, o, options, lse);

    /// <summary>One declared kernel with its modifiers, with K and V quantized beforehand for that kernel.</summary>
    /// <exception cref="NonFiniteInputException">q holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public void Forward(CudaStream stream, AttentionKernelInfo kernel, TensorView<Half> q, QuantizedKeysValues kv, TensorView<Half> o,
        ModifierArguments arguments, AttentionOptions? options = null, DeviceBuffer<float>? lse = null) =>
        Run(stream, q, kv, o, options ?? new AttentionOptions(), lse, Bind(kernel, arguments, options, Element.F16));

    /// <summary>The same for bf16 tensors, given as their raw 16-bit patterns.</summary>
    /// <exception cref="NonFiniteInputException">q holds a NaN or ±Inf and <see cref="AttentionOptions.NonFinite"/> is Throw.</exception>
    public void ForwardBf16(CudaStream stream, AttentionKernelInfo kernel, TensorView<ushort> q, QuantizedKeysValues kv, TensorView<ushort> o,
        ModifierArguments arguments, AttentionOptions? options = null, DeviceBuffer<float>? lse = null) =>
        Run(stream, q, kv, o, options ?? new AttentionOptions(), lse, Bind(kernel, arguments, options, Element.BF16));

    /// <summary>Every attention kernel the host API can run: the library's and those declared in loaded assemblies.</summary>
    public static IReadOnlyList<AttentionKernelInfo> Kernels => AttentionVariant.Catalog.Select(v => v.Kernel).ToArray();

    /// <summary>
    /// The int8 CPU reference's parameters that repeat what <see cref="Forward(CudaStream, TensorView{Half}, TensorView{Half}, TensorView{Half}, TensorView{Half}, AttentionOptions?, DeviceBuffer{float}?)"/>
    /// computes with <paramref name="kernel"/> (from f16 tensors): its Q scale rows (one row where it quantizes Q itself), its
    /// online-softmax step and K scales, its P·V mode, and the summation order of K's channel mean in the statistics pass.
    /// </summary>
    public static Reference.Int8AttentionOptions ReferenceOptions(AttentionKernelInfo kernel)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        var quantizers = Quantizers<Half>.For(kernel.HeadDim);
        return new Reference.Int8AttentionOptions
        {
            BlockM = kernel.QuantizesQ ? 1 : kernel.QScaleRows,
            // The kernel's online-softmax step where its K scales divide it (the reference's rounding follows its blocks).
            BlockN = kernel.BlockN % kernel.KScaleKeys == 0 && kernel.BlockN < 512 ? kernel.BlockN : kernel.KScaleKeys,
            KScaleKeys = kernel.KScaleKeys,
            Pv = kernel.PElement switch { Element.U8 => Reference.PvMode.U8, Element.E4M3 => Reference.PvMode.E4M3, _ => Reference.PvMode.F16 },
            KMeanSlices = quantizers.KMeanSlices,
            KMeanSliceTokens = quantizers.KMeanSliceTokens,
            KMeanSliceGroup = quantizers.KMeanSliceGroup,
        };
    }

    /// <summary>A kernel chosen by the caller and its modifier arguments, checked before anything is queued.</summary>
    private sealed record BoundKernel(AttentionVariant Variant, ModifierArguments Arguments);

    private static BoundKernel Bind(AttentionKernelInfo kernel, ModifierArguments arguments, AttentionOptions? options, Element input, bool checkArguments = true)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        ArgumentNullException.ThrowIfNull(arguments);
        if ((!kernel.QuantizesQ && kernel.QScaleRows != AttentionVariant.QScaleRows) || kernel.KScaleKeys != AttentionVariant.KScaleKeys)
        {
            throw new ArgumentException($"Kernel {kernel.Name} reads Q scales per {kernel.QScaleRows} rows and K scales per {kernel.KScaleKeys} keys; " +
                $"Int8Attention quantizes per {AttentionVariant.QScaleRows} and {AttentionVariant.KScaleKeys}: declare QScaleRows = {AttentionVariant.QScaleRows} and KScaleKeys = {AttentionVariant.KScaleKeys}.", nameof(kernel));
        }
        if (kernel.Input != input)
        {
            throw new ArgumentException($"Kernel {kernel.Name} takes {kernel.Input} tensors; these are {input}.", nameof(kernel));
        }
        if (options is { } o && (o.Causal || o.Autotune || o.Tile is not null || o.Pv != PvPrecision.U8 || o.V is not null))
        {
            throw new ArgumentException($"options may not set Causal, Pv, V, Tile or Autotune with an explicit kernel: {kernel.Name} fixes them " +
                $"({(kernel.Causal ? "causal, " : "")}{kernel.PElement switch { Element.U8 => "u8", Element.E4M3 => "fp8", _ => "16-bit" }} P·V, {kernel.VStrategy}, {kernel.Tile}).", nameof(options));
        }
        if (checkArguments)
        {
            arguments.CheckFor(kernel, nameof(arguments));
        }
        return new BoundKernel(new AttentionVariant(kernel), arguments.Copy());
    }

    /// <summary>A kernel to quantize K and V for: its modifiers' arguments come with each Forward call.</summary>
    private static BoundKernel BindForKeysValues(AttentionKernelInfo kernel, Element input)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        return Bind(kernel, new ModifierArguments(), null, input, checkArguments: false);
    }

    private void Run<T>(CudaStream stream, TensorView<T> q, QuantizedKeysValues kv, TensorView<T> o,
        AttentionOptions options, DeviceBuffer<float>? lse, BoundKernel? bound = null) where T : unmanaged =>
        Launch(stream, (out NonFiniteCounters? counters) => Prepare(stream, q, kv, o, options, lse, bound, out counters));

    private void Run<T>(CudaStream stream, TensorView<T> q, TensorView<T> k, TensorView<T> v, TensorView<T> o,
        AttentionOptions options, DeviceBuffer<float>? lse, BoundKernel? bound = null) where T : unmanaged =>
        Launch(stream, (out NonFiniteCounters? counters) => Prepare(stream, q, k, v, o, options, lse, bound, out counters));

    private delegate (AttentionVariant Variant, AttentionKernelArguments Launch) Preparation(out NonFiniteCounters? counters);

    /// <summary>Prepares (checks, selects, quantizes), launches, and with NonFinite = Throw waits and reports bad inputs.</summary>
    private void Launch(CudaStream stream, Preparation prepare) =>
        Serialized(stream, () =>
        {
            var (variant, launch) = prepare(out var counters);
            variant.Launch(launch);
            counters?.ThrowIfAny(stream);
            return true;
        });

    /// <summary>
    /// Counts the NaN/Inf of <paramref name="q"/> and of <paramref name="kv"/>'s K and V (either may be left out) with the quantize kernels a call with NonFinite = Throw runs, their codes into scratch, and waits for
    /// <paramref name="stream"/> alone: context-parallel ranks check their inputs so before any transfer is posted.
    /// </summary>
    internal (long Q, long K, long V) CountNonFinite(CudaStream stream, TensorView<Half>? q, (TensorView<Half> K, TensorView<Half> V)? kv) =>
        Serialized(stream, () =>
        {
            var counters = Counters(stream, new AttentionOptions { NonFinite = NonFiniteInputs.Throw })!;
            if (q is { } queries)
            {
                var (b, hq, sq, d) = ((int)queries.Shape[0], (int)queries.Shape[1], (int)queries.Shape[2], (int)queries.Shape[3]);
                var quantizers = Quantizers<Half>.For(d);
                quantizers.Q(stream, queries.Buffer, queries.Strides[0], queries.Strides[1], queries.Strides[2], b, hq, sq,
                    _scratch.Get<sbyte>("q8", (long)b * hq * sq * d), _scratch.Get<float>("qScale", quantizers.QScaleCount(b, hq, sq)), 1f, counters.Q);
            }
            if (kv is var (k, v))
            {
                var (b, hkv, sk, d) = AttentionArguments.CheckKeysValues(k, v);
                // The 16-bit P·V path: the statistics pass counts K and V, K's codes land in scratch, V is not quantized.
                QuantizeKv(stream, k, v, new AttentionDims(b, hkv, hkv, 1, sk, d), null, counters, _scratch);
            }
            return counters.Read(stream);
        });

    /// <summary>
    /// One call at a time over one set of scratch buffers: a call on another stream first waits for the last stream's
    /// work, which may still be reading the scratch this call is about to overwrite.
    /// </summary>
    private TResult Serialized<TResult>(CudaStream stream, Func<TResult> work)
    {
        ArgumentNullException.ThrowIfNull(stream);
        lock (_gate)
        {
            if (_lastStream is { IsDisposed: false } previous && !ReferenceEquals(previous, stream))
            {
                previous.Synchronize();
            }
            _lastStream = stream;
            return work();
        }
    }

    /// <summary>One NaN/Inf counter per input tensor, zeroed on the stream before the quantize kernels add to them.</summary>
    private sealed record NonFiniteCounters(DeviceBuffer<uint> Q, DeviceBuffer<uint> K, DeviceBuffer<uint> V)
    {
        public void Zero(CudaStream stream)
        {
            stream.FillBytes(Q, 0);
            stream.FillBytes(K, 0);
            stream.FillBytes(V, 0);
        }

        /// <summary>Waits for the call's work (the counts are final only then) and throws if any tensor had a NaN or Inf.</summary>
        public void ThrowIfAny(CudaStream stream)
        {
            var (q, k, v) = Read(stream);
            if (q + k + v != 0)
            {
                throw new NonFiniteInputException(q, k, v);
            }
        }

        /// <summary>
        /// The counts, read in the stream's order: a synchronous copy would run on the legacy default stream and wait for
        /// every blocking stream of the device, one of them perhaps holding an NCCL receive that a failed peer never sends.
        /// </summary>
        public (long Q, long K, long V) Read(CudaStream stream)
        {
            var counts = new uint[3];
            stream.CopyToHost(Q, counts.AsSpan(0, 1));
            stream.CopyToHost(K, counts.AsSpan(1, 1));
            stream.CopyToHost(V, counts.AsSpan(2, 1));
            stream.Synchronize();
            return (counts[0], counts[1], counts[2]);
        }
    }

    private readonly object _gate = new();
    private CudaStream? _lastStream;

    /// <summary>Checks, selects the variant and quantizes on the stream; the returned launch runs the kernel alone (benchmarks time it).</summary>
    internal (AttentionVariant Variant, AttentionKernelArguments Launch) Prepare<T>(CudaStream stream, TensorView<T> q, TensorView<T> k, TensorView<T> v, TensorView<T> o,
        AttentionOptions options, DeviceBuffer<float>? lse) where T : unmanaged => Prepare(stream, q, k, v, o, options, lse, null, out _);

    /// <summary>The same for a kernel the caller chose, with its modifier arguments (benchmarks time the kernel alone).</summary>
    internal (AttentionVariant Variant, AttentionKernelArguments Launch) Prepare<T>(CudaStream stream, AttentionKernelInfo kernel, TensorView<T> q, TensorView<T> k,
        TensorView<T> v, TensorView<T> o, ModifierArguments arguments, DeviceBuffer<float>? lse) where T : unmanaged =>
        Prepare(stream, q, k, v, o, new AttentionOptions { NonFinite = NonFiniteInputs.Ignore }, lse,
            Bind(kernel, arguments, null, InputOf<T>()), out _);

    /// <summary>The same, also returning the NaN/Inf counters the quantize kernels add to (null with <see cref="NonFiniteInputs.Ignore"/>).</summary>
    private (AttentionVariant Variant, AttentionKernelArguments Launch) Prepare<T>(CudaStream stream, TensorView<T> q, TensorView<T> k, TensorView<T> v, TensorView<T> o,
        AttentionOptions options, DeviceBuffer<float>? lse, BoundKernel? bound, out NonFiniteCounters? counters) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(options);
        var shape = AttentionArguments.Check(q, k, v, o, lse);
        bound?.Arguments.CheckArrays(bound.Variant.Kernel, shape, "arguments");
        var scale = SoftmaxScale(options, shape.HeadDim);  // before the autotuner times anything
        if (bound is null && options.Autotune && options.Pv == PvPrecision.U8)
        {
            options = Autotuned(stream, q, k, v, o, options, lse, InputOf<T>(), shape);
        }
        var variant = Choose<T>(stream, shape, options, bound);
        counters = Counters(stream, options);
        var queries = Queries(stream, q, shape, scale, counters, variant);
        var kv = QuantizeKv(stream, k, v, shape, variant.VLayout, counters, _scratch);
        return (variant, Arguments(stream, shape, queries, kv, o, lse, bound));
    }

    /// <summary>The same with K and V quantized beforehand: only Q is quantized here.</summary>
    private (AttentionVariant Variant, AttentionKernelArguments Launch) Prepare<T>(CudaStream stream, TensorView<T> q, QuantizedKeysValues kv, TensorView<T> o,
        AttentionOptions options, DeviceBuffer<float>? lse, BoundKernel? bound, out NonFiniteCounters? counters) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(kv);
        ObjectDisposedException.ThrowIf(kv.IsDisposed, kv);
        if (kv.Input != InputOf<T>())
        {
            throw new ArgumentException($"kv was quantized from {kv.Input} tensors; q is {InputOf<T>()}.", nameof(kv));
        }
        if (bound is null && options.Autotune)
        {
            throw new ArgumentException(AutotuneWithKeysValues, nameof(options));
        }
        var shape = AttentionArguments.Check(q, kv, o, lse);
        bound?.Arguments.CheckArrays(bound.Variant.Kernel, shape, "arguments");
        var scale = SoftmaxScale(options, shape.HeadDim);
        var variant = Choose<T>(stream, shape, options, bound);
        if (!kv.Serves(variant))
        {
            throw new ArgumentException(variant.Pv == PvPrecision.Float16
                ? $"{variant.Kernel.Name} runs P·V in 16 bits and reads V unquantized; kv holds int8 V: pass v itself."
                : $"kv holds V in the {kv.VLayout} layout; {variant.Kernel.Name} ({variant.Pv} P·V{(variant.Pv == PvPrecision.U8 ? ", " + variant.V : "")}) reads the {variant.VLayout} layout: quantize K and V with the options (or kernel) of this call.",
                nameof(kv));
        }
        counters = Counters(stream, options);
        var queries = Queries(stream, q, shape, scale, counters, variant);
        return (variant, Arguments(stream, shape, queries, kv.Codes, o, lse, bound));
    }

    /// <summary>K and V quantized into buffers of their own, for the variant <paramref name="options"/> or <paramref name="bound"/> selects.</summary>
    private QuantizedKeysValues QuantizeKeysValues<T>(CudaStream stream, TensorView<T> k, TensorView<T> v, AttentionOptions options, BoundKernel? bound) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(options);
        if (bound is null && options.Autotune)
        {
            throw new ArgumentException(AutotuneWithKeysValues, nameof(options));
        }
        var (b, hkv, sk, d) = AttentionArguments.CheckKeysValues(k, v);
        var shape = new AttentionDims(b, hkv, hkv, 1, sk, d);
        SoftmaxScale(options, d);  // unused here, but options that Forward would refuse are refused now
        var variant = Choose<T>(stream, shape, options, bound, "k");
        if (variant.VLayout is not { } layout)
        {
            throw new ArgumentException($"{variant.Kernel.Name} runs P·V in 16 bits and reads V unquantized, so K and V cannot be quantized for it beforehand.",
                bound is null ? nameof(options) : "kernel");
        }
        var buffers = new OwnedBuffers(stream.Device);
        try
        {
            return Serialized(stream, () =>
            {
                var counters = Counters(stream, options);
                var codes = QuantizeKv(stream, k, v, shape, layout, counters, buffers);
                // Waits for the codes (once per K and V, not per query), so a call on any stream may read them, even
                // after this stream is gone; with NonFinite = Throw it also reads the counts.
                stream.Synchronize();
                counters?.ThrowIfAny(stream);
                return new QuantizedKeysValues(buffers, InputOf<T>(), KvCodesLayout.For<T>(b, hkv, sk, d, layout), codes);
            });
        }
        catch
        {
            buffers.Dispose();
            throw;
        }
    }

    private static Element InputOf<T>() => typeof(T) == typeof(Half) ? Element.F16 : Element.BF16;

    private const string AutotuneWithKeysValues = "options.Autotune may pick a kernel that reads V in another layout than the quantized K and V: " +
        "autotune a call on the tensors, then quantize K and V with the options it chose (Int8Attention.LastTuning).";

    /// <summary>
    /// The caller's kernel (checked against the shape and device) or the declared variant the options select, after every
    /// check that needs no GPU: a quantizer for the V layout the variant reads. Messages name
    /// <c>tensor</c>, the tensor whose head dim the shape took ("q", or "k" when only K and V are given).
    /// </summary>
    private static AttentionVariant Choose<T>(CudaStream stream, AttentionDims shape, AttentionOptions options, BoundKernel? bound, string tensor = "q")
        where T : unmanaged
    {
        AttentionVariant variant;
        if (bound is null)
        {
            variant = Select(InputOf<T>(), shape.HeadDim, options, stream.Device.ComputeCapability);
        }
        else
        {
            CheckRuns(bound.Variant, shape, stream.Device.ComputeCapability, tensor);
            variant = bound.Variant;
        }
        var quantizers = Quantizers<T>.For(shape.HeadDim);
        if (variant.VLayout == VLayout.Pretransposed && quantizers.VPi is null)
        {
            throw new ArgumentException($"{variant.Kernel.Name} reads V pretransposed (Recipe C), and no π-transposed V quantizer is declared for " +
                $"{InputOf<T>()} head dim {shape.HeadDim}: choose a kernel that reads V as [S][D].", bound is null ? "options" : "kernel");
        }
        if (variant.VLayout == VLayout.PretransposedE4M3 && quantizers.VPiE4M3 is null)
        {
            throw new ArgumentException($"{variant.Kernel.Name} runs P·V in fp8 and reads V as e4m3 codes, and no e4m3 V quantizer is declared for " +
                $"{InputOf<T>()} head dim {shape.HeadDim}: choose the u8 or 16-bit P·V mode.", bound is null ? "options" : "kernel");
        }
        return variant;
    }

    /// <summary>The softmax scale: options.SoftmaxScale, else 1/√D; it must be finite and positive.</summary>
    internal static float SoftmaxScale(AttentionOptions options, int headDim)
    {
        var scale = options.SoftmaxScale ?? 1f / MathF.Sqrt(headDim);
        if (!(scale > 0f) || float.IsInfinity(scale))
        {
            throw new ArgumentOutOfRangeException(nameof(options), scale, "options.SoftmaxScale must be a finite positive number.");
        }
        return scale;
    }

    private NonFiniteCounters? Counters(CudaStream stream, AttentionOptions options)
    {
        var counters = options.NonFinite == NonFiniteInputs.Throw
            ? new NonFiniteCounters(_scratch.Get<uint>("nonFiniteQ", 1), _scratch.Get<uint>("nonFiniteK", 1), _scratch.Get<uint>("nonFiniteV", 1))
            : null;
        counters?.Zero(stream);
        return counters;
    }

    /// <summary>
    /// Q as <paramref name="variant"/> takes it, as the launch arguments that carry it: for a kernel that quantizes Q
    /// itself, Q as it is with the multiplier and the NaN/Inf counter; otherwise Q quantized here per 128 rows. Either
    /// way softmax scale · log2 e is folded into Q's scales, so the kernel's softmax runs on exp2.
    /// </summary>
    private Action<AttentionKernelArguments> Queries<T>(CudaStream stream, TensorView<T> q, AttentionDims shape, float scale,
        NonFiniteCounters? counters, AttentionVariant variant) where T : unmanaged
    {
        var multiplier = scale * Log2E;
        if (variant.QuantizesQ)
        {
            return launch => launch.Set(AttentionArgumentNames.Q, q.Buffer).Set(AttentionArgumentNames.QStrideB, q.Strides[0])
                .Set(AttentionArgumentNames.QStrideH, q.Strides[1]).Set(AttentionArgumentNames.QStrideS, q.Strides[2])
                .Set(AttentionArgumentNames.QScaleMultiplier, multiplier).Set(AttentionArgumentNames.NonFiniteQ, counters?.Q);
        }
        var (b, hq, sq, d) = (shape.Batch, shape.HeadsQ, shape.SeqQ, shape.HeadDim);
        var quantizers = Quantizers<T>.For(d);
        var q8 = _scratch.Get<sbyte>("q8", (long)b * hq * sq * d);
        var qScale = _scratch.Get<float>("qScale", quantizers.QScaleCount(b, hq, sq));
        quantizers.Q(stream, q.Buffer, q.Strides[0], q.Strides[1], q.Strides[2], b, hq, sq, q8, qScale, multiplier, counters?.Q);
        return launch => launch.Set(AttentionArgumentNames.Q, q8).Set(AttentionArgumentNames.QScale, qScale);
    }

    /// <summary>The float nearest log2 e.</summary>
    private const float Log2E = 1.44269504f;

    /// <summary>
    /// K smoothed per 64 keys and V per channel, in the layout <paramref name="vLayout"/> (null: the 16-bit P·V mode,
    /// which reads V as it is), into buffers from <paramref name="buffers"/>. Two passes over K and V: the statistics pass
    /// reads both once (K's channel mean, V's channel scales, and the NaN/Inf counts of both), then the codes pass reads
    /// each once more: one KvCodes launch where one is declared for the layout, else K's and V's LaunchCodes (docs/PERF_NOTES.md §10).
    /// The single pass (KvSinglePass, §15) gives the same codes but measured slower, so it is not taken here.
    /// </summary>
    private static KvCodes QuantizeKv<T>(CudaStream stream, TensorView<T> k, TensorView<T> v, AttentionDims shape, VLayout? vLayout,
        NonFiniteCounters? counters, IDeviceBufferSource buffers) where T : unmanaged
    {
        var (b, hkv, sk, d) = (shape.Batch, shape.HeadsKv, shape.SeqK, shape.HeadDim);
        var quantizers = Quantizers<T>.For(d);
        // The 16-bit P·V mode reads V as it is: no buffer for V's codes. Choose refused a pretransposed layout without its quantizers.
        var codes = KvCodesLayout.For<T>(b, hkv, sk, d, vLayout ?? VLayout.Natural).Allocate(buffers, vCodes: vLayout is not null);
        var (k8, kScale, kMean, vScale) = (codes.K, codes.KScale, codes.KMean, codes.VScale!);
        // fp8 P·V's V is scaled for e4m3 codes (Choose refused a kernel without its quantizers); every other mode's for int8.
        var statistics = vLayout == VLayout.PretransposedE4M3 ? quantizers.StatisticsE4M3! : quantizers.Statistics;
        var workspace = buffers.Get<float>("kvStatistics", statistics.WorkspaceLength(b, hkv, sk));
        // The counts come from this pass, which reads every element of K and V once; the codes kernels count nothing. The
        // 16-bit P·V mode reads V as it is: V is read here only to count it, and not at all without counters.
        var vRead = vLayout is null && counters is null ? null : v.Buffer;
        statistics.Launch(stream, k.Buffer, k.Strides[0], k.Strides[1], k.Strides[2], vRead, v.Strides[0], v.Strides[1], v.Strides[2], b, hkv, sk,
            kMean, vScale, workspace, counters?.K, counters?.V);
        switch (vLayout)
        {
            case null:
                // V reaches the kernel unquantized; the statistics pass counted its NaN/Inf (with counters), and vScale goes unused.
                KCodes();
                return codes with { V = v.Buffer, VScale = null, VStrideB = v.Strides[0], VStrideH = v.Strides[1], VLd = v.Strides[2] };
            case VLayout.PretransposedE4M3:
            {
                // The fp8 P·V kernels' V: Recipe C's layout of e4m3 codes.
                var e4m3 = (DeviceBuffer<byte>)codes.V;
                Both(quantizers.CodesPiE4M3, e4m3, () => quantizers.VPiE4M3!(stream, v.Buffer, v.Strides[0], v.Strides[1], v.Strides[2], b, hkv, sk, e4m3, vScale, 1f, null));
                return codes;
            }
            case VLayout.Pretransposed:
            {
                // Recipe C: [B][Hkv][D][S_pad], tokens π-ordered within 16-token groups.
                var v8 = (DeviceBuffer<sbyte>)codes.V;
                Both(quantizers.CodesPi, v8, () => quantizers.VPi!(stream, v.Buffer, v.Strides[0], v.Strides[1], v.Strides[2], b, hkv, sk, v8, vScale, 1f, null));
                return codes;
            }
            default:
            {
                var v8 = (DeviceBuffer<sbyte>)codes.V;
                Both(quantizers.Codes, v8, () => quantizers.V(stream, v.Buffer, v.Strides[0], v.Strides[1], v.Strides[2], b, hkv, sk, v8, vScale, 1f, null));
                return codes;
            }
        }

        void KCodes() => quantizers.K(stream, k.Buffer, k.Strides[0], k.Strides[1], k.Strides[2], b, hkv, sk, k8, kScale, kMean, 1f, null);

        // K's and V's codes: in one launch where a KvCodes variant is declared for this layout, else the two per-operand kernels.
        void Both<TCode>(KvCodesLauncher<T, TCode>? together, DeviceBuffer<TCode> vCodes, Action vAlone) where TCode : unmanaged
        {
            if (together is not null)
            {
                together(stream, k.Buffer, k.Strides[0], k.Strides[1], k.Strides[2], v.Buffer, v.Strides[0], v.Strides[1], v.Strides[2], b, hkv, sk,
                    kMean, vScale, k8, kScale, vCodes);
                return;
            }
            KCodes();
            vAlone();
        }
    }

    /// <summary>The kernel's arguments by name (<see cref="AttentionArgumentNames"/>), the modifiers' included.</summary>
    private static AttentionKernelArguments Arguments<T>(CudaStream stream, AttentionDims shape, Action<AttentionKernelArguments> queries, KvCodes kv,
        TensorView<T> o, DeviceBuffer<float>? lse, BoundKernel? bound) where T : unmanaged
    {
        var launch = new AttentionKernelArguments { Stream = stream }
            .Set(AttentionArgumentNames.K, kv.K).Set(AttentionArgumentNames.V, kv.V)
            .Set(AttentionArgumentNames.KScale, kv.KScale).Set(AttentionArgumentNames.VScale, kv.VScale)
            .Set(AttentionArgumentNames.KMean, kv.KMean).Set(AttentionArgumentNames.O, o.Buffer).Set(AttentionArgumentNames.Lse, lse)
            .Set(AttentionArgumentNames.Batch, shape.Batch).Set(AttentionArgumentNames.HeadsQ, shape.HeadsQ).Set(AttentionArgumentNames.HeadsKv, shape.HeadsKv)
            .Set(AttentionArgumentNames.SeqQ, shape.SeqQ).Set(AttentionArgumentNames.SeqK, shape.SeqK)
            .Set(AttentionArgumentNames.VStrideB, kv.VStrideB).Set(AttentionArgumentNames.VStrideH, kv.VStrideH).Set(AttentionArgumentNames.VLd, kv.VLd)
            .Set(AttentionArgumentNames.OStrideB, o.Strides[0]).Set(AttentionArgumentNames.OStrideH, o.Strides[1]).Set(AttentionArgumentNames.OStrideS, o.Strides[2]);
        queries(launch);
        bound?.Arguments.AddTo(launch);
        return launch;
    }

    /// <summary>A caller's kernel must be one this device runs, for this head dim.</summary>
    private static void CheckRuns(AttentionVariant variant, AttentionDims shape, int computeCapability, string tensor)
    {
        if (variant.HeadDim != shape.HeadDim)
        {
            throw new ArgumentException($"Kernel {variant.Kernel.Name} has head dim {variant.HeadDim}; {tensor}'s is {shape.HeadDim}.", "kernel");
        }
        if (!variant.RunsOn(computeCapability))
        {
            throw new ArgumentException($"Kernel {variant.Kernel.Name} is built for {string.Join(", ", variant.Module.Targets)}; this device is sm_{computeCapability}.", "kernel");
        }
        var longest = variant.Kernel.MaxSequence;
        if (shape.SeqQ > longest || shape.SeqK > longest)
        {
            throw new ArgumentException($"Kernel {variant.Kernel.Name} takes sequences of at most {longest} tokens (its score modifier reads positions as exact floats); " +
                $"{(shape.SeqQ > longest ? $"{tensor} has {shape.SeqQ}" : $"k has {shape.SeqK}")}.", shape.SeqQ > longest ? tensor : "k");
        }
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
            default: throw new ArgumentException($"No merge kernel is declared for head dim {headDim}; declared: {string.Join(", ", MergeHeadDims)}.", nameof(headDim));
        }
    }

    /// <summary>The head dims <see cref="Merge"/> has a kernel for.</summary>
    public static IReadOnlyList<int> MergeHeadDims { get; } = new[] { LseMergeD64.HeadDim, LseMergeD128.HeadDim };

    /// <summary>
    /// The declared variant for a head dim and options, or a clear error listing what is declared. With a compute
    /// capability, only variants that device runs count (the wgmma form runs on sm_90 alone), and a mode declared only
    /// for other devices is refused naming what this one can run.
    /// </summary>
    internal static AttentionVariant Select(Element input, int headDim, AttentionOptions options, int? computeCapability = null)
    {
        bool Matches(AttentionVariant v) => OfMode(v, input, headDim, options) && (options.Tile is null || v.Tile == options.Tile);
        var match = OfModeDefaultFirst(input, headDim, options, computeCapability).FirstOrDefault(v => options.Tile is null || v.Tile == options.Tile);
        if (match is not null)
        {
            return match;
        }
        if (computeCapability is { } capability && AttentionVariant.All.FirstOrDefault(Matches) is { } elsewhere)
        {
            var runnable = TilesFor(input, headDim, options with { Tile = null }, capability);
            throw new ArgumentException(
                $"The attention variant for {input} head dim {headDim} with {options} is built for {string.Join(", ", elsewhere.Module.Targets)}; this device is sm_{capability}. " +
                (runnable.Count > 0 ? $"Tiles it runs for this mode: {string.Join(", ", runnable.Select(t => $"[{t}]"))}." : "It runs no declared tile of this mode."), nameof(options));
        }
        var declared = string.Join(", ", AttentionVariant.All.Select(v => $"{v.Input} D={v.HeadDim}{(v.Causal ? " causal" : "")} {v.Pv}{(v.Pv == PvPrecision.U8 ? " " + v.V : "")} [{v.Tile}]"));
        throw new ArgumentException($"No attention variant is declared for {input} head dim {headDim} with {options}. Declared: {declared}.", nameof(options));
    }

    /// <summary>
    /// The tile configurations declared for a mode, default first (values for <see cref="AttentionOptions.Tile"/>); with a
    /// compute capability, only those a device of it runs.
    /// </summary>
    public static IReadOnlyList<string> TilesFor(Element input, int headDim, AttentionOptions options, int? computeCapability = null) =>
        OfModeDefaultFirst(input, headDim, options, computeCapability).Select(v => v.Tile).Distinct().ToArray();

    /// <summary>
    /// Whether a variant serves this input, head dim and mode (the V strategy matters for u8 P·V only, and only when
    /// given); any tile.
    /// </summary>
    private static bool OfMode(AttentionVariant v, Element input, int headDim, AttentionOptions options) =>
        v.Input == input && v.HeadDim == headDim && v.Causal == options.Causal && v.Pv == options.Pv && (v.Pv != PvPrecision.U8 || options.V is null || v.V == options.V);

    /// <summary>
    /// The variants of a mode (any tile) that a device runs, in the order defaults are taken. With no V strategy given and a device known, those built for its
    /// architecture alone (sm_90a, which run nowhere else) come first, each group in declaration order: on an H100 the u8
    /// default at D = 128 is then the wgmma kernel, 2.1× the first mma.sync one at S = 4096 (709 against 345 TOPS, run
    /// 76), where declaration order alone gave the mma.sync kernel. A V strategy given keeps declaration order, so
    /// <c>V = Pretransposed</c> alone still names the first declared kernel of that strategy.
    /// </summary>
    private static IEnumerable<AttentionVariant> OfModeDefaultFirst(Element input, int headDim, AttentionOptions options, int? computeCapability)
    {
        var variants = AttentionVariant.All.Where(v => OfMode(v, input, headDim, options) && (computeCapability is not { } cc || v.RunsOn(cc)));
        return options.V is not null || computeCapability is null ? variants : variants.OrderBy(v => v.Module.RequiresArchSpecific ? 0 : 1);
    }

    public void Dispose() => _scratch.Dispose();
}

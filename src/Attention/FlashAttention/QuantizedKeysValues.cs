using KernelDsl.Launching;

namespace KernelDsl.Attention.FlashAttention;

/// <summary>
/// K and V quantized once on the GPU (K smoothed, with its scales and channel mean; V per channel, in the layout its
/// kernels read), for attending to them from many <see cref="Int8Attention.Forward(CudaStream, TensorView{Half}, QuantizedKeysValues, TensorView{Half}, AttentionOptions, DeviceBuffer{float}?)"/>
/// calls: a prompt's prefix, a cross-attention memory. Each such call then quantizes only Q. Made by
/// <see cref="Int8Attention.QuantizeKeysValues(CudaStream, TensorView{Half}, TensorView{Half}, AttentionOptions)"/>, which waits for
/// the codes, so calls on any stream may read them. It owns its device buffers: keep it alive (undisposed) until the
/// streams that read it are done.
/// </summary>
public sealed class QuantizedKeysValues : IDisposable
{
    private readonly OwnedBuffers? _buffers;

    // buffers: those the codes lie in, freed with this; null when another object owns them (a ring's receive slot).
    internal QuantizedKeysValues(OwnedBuffers? buffers, Element input, KvCodesLayout layout, KvCodes codes)
    {
        _buffers = buffers;
        (Input, Layout, Codes) = (input, layout, codes);
    }

    /// <summary>F16 or BF16: the type of the K and V it was made from, which q must share.</summary>
    public Element Input { get; }
    public int Batch => Layout.Batch;
    public int HeadsKv => Layout.HeadsKv;
    public int SeqK => Layout.SeqK;
    public int HeadDim => Layout.HeadDim;

    /// <summary>How V's codes are stored: which kernels can read them (<see cref="FlashAttention.VLayout"/>).</summary>
    public VLayout VLayout => Layout.VLayout;

    /// <summary>The codes' buffers: their lengths and V's strides.</summary>
    internal KvCodesLayout Layout { get; }

    internal KvCodes Codes { get; }

    public bool IsDisposed { get; private set; }

    /// <summary>Whether a variant reads V in this layout (the 16-bit P·V mode reads V unquantized, so never).</summary>
    internal bool Serves(AttentionVariant variant) => variant.VLayout == VLayout;

    /// <summary>
    /// Buffers from <paramref name="destination"/> shaped for codes of <paramref name="layout"/>, not yet filled, as K and
    /// V that do not own them: where a ring step receives the codes another rank sends.
    /// </summary>
    internal static QuantizedKeysValues Receiving(Element input, KvCodesLayout layout, IDeviceBufferSource destination) =>
        new(null, input, layout, layout.Allocate(destination));

    public void Dispose()
    {
        IsDisposed = true;
        _buffers?.Dispose();
    }
}

/// <summary>
/// What an attention kernel reads for K and V: K's codes, scales and channel mean; V's codes (int8 or e4m3 bytes, or, for
/// the 16-bit P·V mode, V itself: a DeviceBuffer of the input type) and scales; and V's batch, head and row strides in elements.
/// </summary>
internal sealed record KvCodes(DeviceBuffer<sbyte> K, DeviceBuffer<float> KScale, DeviceBuffer<float> KMean, object V, DeviceBuffer<float>? VScale,
    long VStrideB, long VStrideH, long VLd);

/// <summary>
/// The buffers of K and V quantized once, for one shape and V layout: the quantizer allocates them and a ring moves
/// exactly these elements, so sender and receiver agree from the chunk's length alone. V's codes are [B][Hkv][S][D]
/// (<see cref="VLayout.Natural"/>) or [B][Hkv][D][S_pad] (pretransposed), K's scales one per 64 keys, K's mean and V's
/// scales one per channel.
/// </summary>
internal sealed record KvCodesLayout(int Batch, int HeadsKv, int SeqK, int HeadDim, VLayout VLayout, long KScales, int VTokens)
{
    public static KvCodesLayout For<T>(int batch, int headsKv, int seqK, int headDim, VLayout vLayout) where T : unmanaged
    {
        var quantizers = Quantizers<T>.For(headDim);
        var vTokens = vLayout == VLayout.Natural ? seqK
            : quantizers.VPiPaddedTokens?.Invoke(seqK) ?? throw new ArgumentException($"No pretransposed V quantizer is declared for {typeof(T).Name} head dim {headDim}.", nameof(vLayout));
        return new(batch, headsKv, seqK, headDim, vLayout, quantizers.KScaleCount(batch, headsKv, seqK), vTokens);
    }

    public long KCodes => (long)Batch * HeadsKv * SeqK * HeadDim;

    /// <summary>K's mean and V's scales: one per (batch, head, channel).</summary>
    public long Channels => (long)Batch * HeadsKv * HeadDim;

    public long VCodes => Channels * VTokens;

    /// <summary>V's codes are e4m3 bytes (fp8 P·V), else int8.</summary>
    public bool VE4M3 => VLayout == VLayout.PretransposedE4M3;

    /// <summary>K's buffers, and V's codes and scales unless <paramref name="vCodes"/> is false (the 16-bit P·V mode reads V as it is).</summary>
    public KvCodes Allocate(IDeviceBufferSource buffers, bool vCodes = true)
    {
        object? v = !vCodes ? null : VE4M3 ? buffers.Get<byte>("v8e4m3", VCodes) : buffers.Get<sbyte>("v8", VCodes);
        return new KvCodes(buffers.Get<sbyte>("k8", KCodes), buffers.Get<float>("kScale", KScales), buffers.Get<float>("kMean", Channels), v!,
            buffers.Get<float>("vScale", Channels), (long)HeadsKv * VTokens * HeadDim, (long)VTokens * HeadDim, VLayout == VLayout.Natural ? HeadDim : VTokens);
    }
}

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
    private readonly OwnedBuffers _buffers;

    internal QuantizedKeysValues(OwnedBuffers buffers, Element input, int batch, int headsKv, int seqK, int headDim, VLayout vLayout, KvCodes codes)
    {
        _buffers = buffers;
        (Input, Batch, HeadsKv, SeqK, HeadDim, VLayout, Codes) = (input, batch, headsKv, seqK, headDim, vLayout, codes);
    }

    /// <summary>F16 or BF16: the type of the K and V it was made from, which q must share.</summary>
    public Element Input { get; }
    public int Batch { get; }
    public int HeadsKv { get; }
    public int SeqK { get; }
    public int HeadDim { get; }

    /// <summary>How V's codes are stored: which kernels can read them (<see cref="FlashAttention.VLayout"/>).</summary>
    public VLayout VLayout { get; }

    internal KvCodes Codes { get; }

    public bool IsDisposed { get; private set; }

    /// <summary>Whether a variant reads V in this layout (the 16-bit P·V mode reads V unquantized, so never).</summary>
    internal bool Serves(AttentionVariant variant) => variant.VLayout == VLayout;

    public void Dispose()
    {
        IsDisposed = true;
        _buffers.Dispose();
    }
}

/// <summary>
/// What an attention kernel reads for K and V: K's codes, scales and channel mean; V's codes (int8 or e4m3 bytes, or, for
/// the 16-bit P·V mode, V itself: a DeviceBuffer of the input type) and scales; and V's batch, head and row strides in elements.
/// </summary>
internal sealed record KvCodes(DeviceBuffer<sbyte> K, DeviceBuffer<float> KScale, DeviceBuffer<float> KMean, object V, DeviceBuffer<float>? VScale,
    long VStrideB, long VStrideH, long VLd);

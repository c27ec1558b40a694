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
    internal QuantizedKeysValues(OwnedBuffers? buffers, Element input, int batch, int headsKv, int seqK, int headDim, VLayout vLayout, KvCodes codes)
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

    /// <summary>
    /// Queues copying the codes into buffers from <paramref name="destination"/> (another rank's memory, in a simulated
    /// ring) and returns them as K and V that do not own their buffers: what a ring step sends to the next rank.
    /// </summary>
    internal QuantizedKeysValues CopyTo(CudaStream stream, IDeviceBufferSource destination)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        var c = Codes;
        var v = c.V switch
        {
            DeviceBuffer<sbyte> s8 => (object)Copy(s8, "v"),
            DeviceBuffer<byte> e4m3 => Copy(e4m3, "v"),
            _ => throw new InvalidOperationException("K and V quantized once hold V as int8 or e4m3 codes."),
        };
        var codes = c with
        {
            K = Copy(c.K, "k"), KScale = Copy(c.KScale, "kScale"), KMean = Copy(c.KMean, "kMean"), V = v,
            VScale = c.VScale is null ? null : Copy(c.VScale, "vScale"),
        };
        return new QuantizedKeysValues(null, Input, Batch, HeadsKv, SeqK, HeadDim, VLayout, codes);

        DeviceBuffer<T> Copy<T>(DeviceBuffer<T> source, string name) where T : unmanaged
        {
            var target = destination.Get<T>(name, source.Length);
            stream.Copy(source, 0, target, 0, source.Length);
            return target;
        }
    }

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

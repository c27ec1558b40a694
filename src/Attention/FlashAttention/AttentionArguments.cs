namespace KernelDsl.Attention.FlashAttention;

/// <summary>The shape every attention entry point agrees on, checked once.</summary>
internal readonly record struct AttentionDims(int Batch, int HeadsQ, int HeadsKv, int SeqQ, int SeqK, int HeadDim);

/// <summary>Checks Q, K, V, O (and LSE) before anything reaches the GPU; every message names the argument and the rule.</summary>
internal static class AttentionArguments
{
    public static AttentionDims Check<T>(TensorView<T> q, TensorView<T> k, TensorView<T> v, TensorView<T> o, DeviceBuffer<float>? lse) where T : unmanaged
    {
        Rank4(q, nameof(q));
        Rank4(k, nameof(k));
        Rank4(v, nameof(v));
        Rank4(o, nameof(o));
        var (b, hq, sq, d) = ((int)q.Shape[0], (int)q.Shape[1], (int)q.Shape[2], (int)q.Shape[3]);
        var (hkv, sk) = ((int)k.Shape[1], (int)k.Shape[2]);
        DeclaredHeadDim(d, nameof(q));
        Same(k, nameof(k), [b, hkv, sk, d], "[B, Hkv, Sk, D] with B and D equal to q's");
        Same(v, nameof(v), [b, hkv, sk, d], "k's shape");
        return CheckQueries(q, hkv, sk, o, lse, nameof(k));
    }

    /// <summary>Q, O (and LSE) against K and V quantized beforehand.</summary>
    public static AttentionDims Check<T>(TensorView<T> q, QuantizedKeysValues kv, TensorView<T> o, DeviceBuffer<float>? lse) where T : unmanaged
    {
        Rank4(q, nameof(q));
        Rank4(o, nameof(o));
        var (b, d) = ((int)q.Shape[0], (int)q.Shape[3]);
        if (kv.Batch != b || kv.HeadDim != d)
        {
            throw new ArgumentException($"kv was quantized from K with batch {kv.Batch} and head dim D = {kv.HeadDim}; q has batch {b} and D = {d}.", nameof(kv));
        }
        return CheckQueries(q, kv.HeadsKv, kv.SeqK, o, lse, nameof(kv));
    }

    /// <summary>K and V alone, to be quantized before any query comes.</summary>
    public static (int Batch, int HeadsKv, int SeqK, int HeadDim) CheckKeysValues<T>(TensorView<T> k, TensorView<T> v) where T : unmanaged
    {
        Rank4(k, nameof(k));
        Rank4(v, nameof(v));
        var (b, hkv, sk, d) = ((int)k.Shape[0], (int)k.Shape[1], (int)k.Shape[2], (int)k.Shape[3]);
        DeclaredHeadDim(d, nameof(k));
        Same(v, nameof(v), [b, hkv, sk, d], "k's shape");
        return (b, hkv, sk, d);
    }

    private static AttentionDims CheckQueries<T>(TensorView<T> q, int hkv, int sk, TensorView<T> o, DeviceBuffer<float>? lse, string keys) where T : unmanaged
    {
        var (b, hq, sq, d) = ((int)q.Shape[0], (int)q.Shape[1], (int)q.Shape[2], (int)q.Shape[3]);
        Same(o, nameof(o), [b, hq, sq, d], "q's shape");
        if (hq % hkv != 0)
        {
            throw new ArgumentException($"q has {hq} heads and {keys} {hkv}: the query heads must be a whole multiple of the KV heads (GQA).", keys);
        }
        if (lse is not null)
        {
            Launching.LaunchGuard.Buffer(lse, nameof(lse));
            Launching.LaunchGuard.Holds(lse, (long)b * hq * sq, nameof(lse), "[B][Hq][Sq]");
        }
        return new AttentionDims(b, hq, hkv, sq, sk, d);
    }

    private static void DeclaredHeadDim(int d, string name)
    {
        if (!Int8Attention.HeadDims.Contains(d))
        {
            throw new ArgumentException($"{name}'s head dim is {d}; declared variants support {string.Join(", ", Int8Attention.HeadDims)}.", name);
        }
    }

    private static void Rank4<T>(TensorView<T> view, string name) where T : unmanaged
    {
        if (view.Buffer is null)
        {
            throw new ArgumentNullException(name, $"'{name}' has no device buffer.");
        }
        Launching.LaunchGuard.Buffer(view.Buffer, name);
        if (view.Rank != 4)
        {
            throw new ArgumentException($"'{name}' must be a rank-4 [B, H, S, D] view; it has rank {view.Rank}.", name);
        }
        for (var i = 0; i < 4; i++)
        {
            if (view.Shape[i] < 1)
            {
                throw new ArgumentException($"'{name}' dimension {i} is {view.Shape[i]}; every dimension must be at least 1.", name);
            }
            if (view.Shape[i] > int.MaxValue)
            {
                throw new ArgumentException($"'{name}' dimension {i} is {view.Shape[i]}; it must fit in a 32-bit int.", name);
            }
        }
        for (var i = 0; i < 3; i++)
        {
            if (view.Strides[i] % 8 != 0)
            {
                throw new ArgumentException($"'{name}' stride {i} is {view.Strides[i]} elements; strides must be multiples of 8 so rows stay 16-byte aligned.", name);
            }
        }
    }

    private static void Same<T>(TensorView<T> view, string name, long[] shape, string rule) where T : unmanaged
    {
        if (!view.Shape.SequenceEqual(shape))
        {
            throw new ArgumentException($"'{name}' has shape [{string.Join(", ", view.Shape)}] but must be [{string.Join(", ", shape)}] ({rule}).", name);
        }
    }
}

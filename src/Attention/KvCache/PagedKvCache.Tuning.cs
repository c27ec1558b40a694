using System.Globalization;
using System.Numerics;
using KernelDsl.Launching;

namespace KernelDsl.Attention.KvCache;

/// <summary>What <see cref="PagedKvCache.Autotune"/> chose for one call.</summary>
/// <param name="Key">The tuning key: GPU, element, head dim, heads, and the batch's size, longest length and most queries, each rounded up to a power of two.</param>
/// <param name="Kernel">The declared decode configuration used (its declaring type's full name).</param>
/// <param name="Result">The tuner's decision: every candidate's time, the date, and whether it was timed now or read from disk.</param>
public sealed record DecodeTuning(string Key, string Kernel, TuningResult Result);

// The autotuning of the plain calls: which declared configurations compete, the key, and how one is timed.
public sealed partial class PagedKvCache
{
    private static readonly Lazy<Autotuner> SharedTuner = new(Autotuner.CreateDefault);

    /// <summary>
    /// When set, the plain Decode, Attend and Prefill calls run the fastest declared decode configuration of this cache's head
    /// dim and element that this device runs (for D = 128 f16: four warps, two warps, eight warps on half-page steps, and four
    /// or two warps of three stages) instead of the first. Each configuration's whole attention call is timed (CUDA events,
    /// 2 warm-ups, median of 5) the first time a shape bucket is seen, on the call's own arguments (attention does not change
    /// the cache, so repeating it is safe). Later calls reuse the decision: from this cache's record of it, from the tuner's
    /// memory, or from the tuner's file in another process. The first call of a bucket is therefore slower. Calls with a
    /// kernel given are never tuned.
    /// </summary>
    public bool Autotune { get; set; }

    /// <summary>The tuner <see cref="Autotune"/> uses: by default one per process, keeping its decisions beside the module cache.</summary>
    public Autotuner Tuner
    {
        get => _tuner;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            (_tuner, _decided) = (value, []);  // the decisions below were this tuner's
        }
    }

    private Autotuner _tuner = SharedTuner.Value;

    /// <summary>
    /// This cache's decisions by key: a decode step asks the same question every call, so after the first it is answered here,
    /// with no copy of the batch for the tuner's measuring function and no call into the tuner.
    /// </summary>
    private Dictionary<string, DecodeTuning> _decided = [];

    /// <summary>The decision behind the latest autotuned call, or null if there was none.</summary>
    public DecodeTuning? LastTuning { get; private set; }

    /// <summary>
    /// The declared plain configurations for <paramref name="headDim"/> and <paramref name="input"/>, the default first; with
    /// <paramref name="device"/>, only those it runs (some need sm_90's shared memory).
    /// </summary>
    internal static IReadOnlyList<PagedDecodeKernel<T>> Configurations<T>(int headDim, Element input, CudaDevice? device = null) where T : unmanaged =>
        DecodeVariants.Where(v => v.HeadDim == headDim && v.Input == input).Select(v => v.Kernel).OfType<PagedDecodeKernel<T>>()
            .Where(k => device is null || k.RunsOn(device)).ToArray();

    /// <summary>
    /// E.g. <c>decode|sm_90|NVIDIA H100 80GB HBM3|F16|D128|Hq=64|Hkv=8|B≤16|L≤4096|q≤1|splits=auto</c>: the batch, its longest
    /// length and its largest query count rounded up to powers of two, so a growing sequence is timed once per doubling.
    /// </summary>
    internal static string TuningKey(string arch, string gpu, Element input, int headDim, int headsQ, int headsKv, int batch, int longest, int mostQueries,
        int? splits) => string.Create(CultureInfo.InvariantCulture,
        $"decode|{arch}|{gpu}|{input}|D{headDim}|Hq={headsQ}|Hkv={headsKv}|B≤{Bucket(batch)}|L≤{Bucket(longest)}|q≤{Bucket(mostQueries)}|splits={(splits is { } s ? s.ToString(CultureInfo.InvariantCulture) : "auto")}");

    /// <summary>The power of two at or above <paramref name="x"/> (at least 1).</summary>
    internal static long Bucket(int x) => x <= 1 ? 1 : (long)BitOperations.RoundUpToPowerOf2((uint)x);

    /// <summary>
    /// The fastest of <paramref name="candidates"/> for the call's key, timing each by <paramref name="launch"/> (the call
    /// itself, with that configuration) the first time the key is seen.
    /// </summary>
    private PagedDecodeKernel<T> Tuned<T>(IReadOnlyList<PagedDecodeKernel<T>> candidates, string key, CudaStream stream, Action<PagedDecodeKernel<T>> launch)
        where T : unmanaged
    {
        var result = Tuner.Choose(key, candidates.Select(c => c.Name).ToArray(), name =>
            Autotuner.MedianOnStream(stream, () => launch(candidates.First(c => c.Name == name))));
        LastTuning = _decided[key] = new DecodeTuning(key, result.Winner, result);
        return candidates.First(c => c.Name == result.Winner);
    }

    /// <summary>
    /// The configurations this cache's device runs, the plain default first, which <see cref="Autotune"/> chooses among (found
    /// once; a cache has one element type, so a call with the other finds none and is refused).
    /// </summary>
    private IReadOnlyList<PagedDecodeKernel<T>> Candidates<T>() where T : unmanaged
    {
        if (_candidates is IReadOnlyList<PagedDecodeKernel<T>> known)
        {
            return known;
        }
        var runs = Configurations<T>(HeadDim, Input, Device);
        if (runs.Count == 0)
        {
            throw NoConfiguration<T>();
        }
        _candidates = runs;
        return runs;
    }

    private object? _candidates;

    /// <summary>This cache's earlier decision for <paramref name="key"/>, if it made one with its current tuner.</summary>
    private PagedDecodeKernel<T>? Decided<T>(IReadOnlyList<PagedDecodeKernel<T>> candidates, string key) where T : unmanaged
    {
        if (!_decided.TryGetValue(key, out var decision))
        {
            return null;
        }
        LastTuning = decision;
        return candidates.First(c => c.Name == decision.Kernel);
    }
}

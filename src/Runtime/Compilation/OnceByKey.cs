using System.Collections.Concurrent;

namespace KernelDsl;

/// <summary>
/// A value per key, created once however many threads ask for it at the same time. A failed creation is
/// forgotten, so the next request tries again instead of rethrowing a stale error forever.
/// </summary>
internal sealed class OnceByKey<TKey, TValue> where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, Lazy<TValue>> _entries;

    public OnceByKey(IEqualityComparer<TKey>? comparer = null) => _entries = new ConcurrentDictionary<TKey, Lazy<TValue>>(comparer);

    /// <summary>The values created so far.</summary>
    public IEnumerable<TValue> Created => _entries.Values.Where(entry => entry.IsValueCreated).Select(entry => entry.Value);

    /// <summary>Gets or creates the value; <paramref name="created"/> says whether this call was the one that created it.</summary>
    public TValue GetOrCreate(TKey key, Func<TKey, TValue> create, out bool created)
    {
        var mine = new Lazy<TValue>(() => create(key), LazyThreadSafetyMode.ExecutionAndPublication);
        var entry = _entries.GetOrAdd(key, mine);
        created = ReferenceEquals(entry, mine);
        try
        {
            return entry.Value;
        }
        catch
        {
            _entries.TryRemove(new KeyValuePair<TKey, Lazy<TValue>>(key, entry));
            throw;
        }
    }

    public void Clear() => _entries.Clear();
}

namespace KernelDsl;

/// <summary>A snapshot of a <see cref="ModuleCache"/>'s counters.</summary>
/// <param name="Compilations">Times the compiler ran.</param>
/// <param name="MemoryHits">Requests answered from memory.</param>
/// <param name="DiskHits">Requests answered by a verified disk entry.</param>
/// <param name="RejectedEntries">Disk entries found corrupt or truncated, deleted and recompiled.</param>
/// <param name="Warnings">Warnings raised (e.g. the cache directory is not writable).</param>
/// <param name="LastColdCompile">Duration of the latest compilation.</param>
/// <param name="LastWarmLoad">Duration of the latest load of a disk entry (read and verify).</param>
public sealed record ModuleCacheStatistics(
    long Compilations,
    long MemoryHits,
    long DiskHits,
    long RejectedEntries,
    long Warnings,
    TimeSpan? LastColdCompile,
    TimeSpan? LastWarmLoad);

namespace KernelDsl;

/// <summary>A compiled cubin as the cache hands it out.</summary>
/// <param name="Key">The cache key (SHA-256, lowercase hex) it is stored under.</param>
/// <param name="Arch">The architecture it was compiled for.</param>
/// <param name="Cubin">The cubin bytes; shared, so read-only.</param>
public sealed record ModuleImage(string Key, string Arch, ReadOnlyMemory<byte> Cubin);
